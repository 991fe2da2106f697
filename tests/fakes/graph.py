"""A fake Microsoft Graph on 127.0.0.1: the directory's users and the Teams apps installed for them, answering as Graph does.

It answers ``GET /v1.0/users/{id | userPrincipalName}`` (404 ``Request_ResourceNotFound`` for
nobody) and ``POST /v1.0/users/{id}/teamwork/installedApps`` (201 and no body; 409 ``Conflict``
when the app is already installed; 404 for an app not in the catalog; 403 without the
application permission), accepts only tokens the fake identity platform issued, records every
call, and can be told to throttle (429 with Retry-After).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.fakes.identity import FakeIdentity

INSTALL_PERMISSIONS = frozenset({"TeamsAppInstallation.ReadWriteSelfForUser.All", "TeamsAppInstallation.ReadWriteForUser.All"})


@dataclass
class GraphCall:
    method: str
    path: str
    body: Any
    token: str


@dataclass
class FakeGraph:
    identity: FakeIdentity
    users: dict[str, str] = field(default_factory=dict)  # user principal name (lower case) -> object id
    catalog: set[str] = field(default_factory=set)  # the org catalog's app ids
    installed: set[tuple[str, str]] = field(default_factory=set)  # (user id, catalog app id)
    granted: set[str] = field(default_factory=lambda: {"User.Read.All", "TeamsAppInstallation.ReadWriteSelfForUser.All"})
    throttle: dict[str, int] = field(default_factory=dict)  # "GET" / "POST" -> how many 429s to answer first
    calls: list[GraphCall] = field(default_factory=list)
    url: str = ""  # the base URL to configure as MICROSOFT_GRAPH_URL

    def add_user(self, upn: str, user_id: str) -> None:
        self.users[upn.lower()] = user_id

    def installs(self, method: str = "POST") -> list[GraphCall]:
        return [c for c in self.calls if c.method == method and c.path.endswith("/teamwork/installedApps")]

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        body = await request.json() if request.can_read_body else None
        self.calls.append(GraphCall(request.method, request.path, body, token))
        if token not in self.identity.issued:
            return _error(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
        if self.throttle.get(request.method):
            self.throttle[request.method] -= 1
            return _error(429, "TooManyRequests", "Too many requests.", headers={"Retry-After": "0"})
        user = self.users.get(request.match_info["user"].lower()) or (
            request.match_info["user"] if request.match_info["user"] in self.users.values() else None
        )
        if user is None:
            return _error(
                404,
                "Request_ResourceNotFound",
                f"Resource '{request.match_info['user']}' does not exist or one of its queried reference-property objects are not present.",
            )
        if request.method == "GET":
            if "User.Read.All" not in self.granted:
                return _error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
            return web.json_response({"@odata.context": f"{self.url}$metadata#users(id)/$entity", "id": user})
        return self._install(user, body)

    def _install(self, user: str, body: Any) -> web.Response:
        if not self.granted & INSTALL_PERMISSIONS:
            required = ", ".join(sorted(INSTALL_PERMISSIONS))
            return _error(403, "Forbidden", f"Missing role permissions on the request. API requires one of '{required}'.")
        bind = body.get("teamsApp@odata.bind", "") if isinstance(body, dict) else ""
        app = bind.removeprefix(f"{self.url}appCatalogs/teamsApps/")
        if not bind.startswith(f"{self.url}appCatalogs/teamsApps/") or app not in self.catalog:
            return _error(404, "NotFound", f"The definition for app '{app}' was not found in the org-wide catalog.")
        if (user, app) in self.installed:
            return _error(409, "Conflict", "App is already installed for this user.")
        self.installed.add((user, app))
        return web.Response(status=201)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"code": code, "message": message, "innerError": {"date": "2026-01-05T09:00:00", "request-id": "fake"}}}
    return web.json_response(body, status=status, headers=headers)


@asynccontextmanager
async def running_fake_graph(identity: FakeIdentity) -> AsyncIterator[FakeGraph]:
    """Serve a FakeGraph on 127.0.0.1 that accepts ``identity``'s tokens; ``fake.url`` is its v1.0 base URL."""
    fake = FakeGraph(identity)
    app = web.Application()
    app.router.add_get("/v1.0/users/{user}", fake._handle)
    app.router.add_post("/v1.0/users/{user}/teamwork/installedApps", fake._handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("/v1.0/"))
    try:
        yield fake
    finally:
        await server.close()
