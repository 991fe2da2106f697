"""Microsoft Graph for the Teams app: find people by email and install the app for them, as the bot's own app.

Teams lets a bot message someone only once the app is installed for them (personally, or in a
team they are in). Graph installs it for them: ``GET /users/{email}``, then
``POST /users/{id}/teamwork/installedApps`` with the app's id in the organisation's catalog.
Two calls do not justify Microsoft's Graph SDK (a large dependency of its own); they go
through aiohttp, to a configurable base URL (MICROSOFT_GRAPH_URL), so tests and national
clouds point it elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlparse

import aiohttp
import msal
import msal.exceptions
import requests

__all__ = ["AppToken", "Graph", "GraphError"]

log = logging.getLogger(__name__)

RETRYABLE = frozenset({429, 503, 504})  # Graph's throttling and passing outages; Retry-After says when
MAX_RETRY_AFTER = 30.0  # seconds; longer than this, the operator is better told than kept waiting


class GraphError(Exception):
    """Graph or the token endpoint refused or failed; the message is for the operator.
    ``status`` is Graph's HTTP status, when Graph answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AppToken:
    """App-only tokens for Graph from the Microsoft identity platform: MSAL's client-credentials
    flow with MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD in MICROSOFT_APP_TENANT_ID.

    MSAL talks to the authority with blocking requests, so every call runs in a thread; it keeps
    the token and fetches a new one only when it is about to expire."""

    def __init__(self, client_id: str, secret: str, tenant: str, login_url: str, graph_url: str) -> None:
        self._client_id, self._secret = client_id, secret
        self.authority = login_url.rstrip("/") + "/" + tenant
        graph = urlparse(graph_url)
        self._scope = f"{graph.scheme}://{graph.netloc}/.default"  # the application permissions granted for Graph
        self._app: msal.ConfidentialClientApplication | None = None

    async def __call__(self) -> str:
        return await asyncio.to_thread(self._acquire)

    def _acquire(self) -> str:
        try:
            if self._app is None:
                # instance_discovery=False: the authority is the configured one (MICROSOFT_LOGIN_URL),
                # trusted as it is, never checked against Microsoft's list of hosts.
                self._app = msal.ConfidentialClientApplication(
                    self._client_id, client_credential=self._secret, authority=self.authority, instance_discovery=False, timeout=30
                )
            result: dict[str, Any] = self._app.acquire_token_for_client(scopes=[self._scope])
        except requests.RequestException as exc:
            raise GraphError(f"cannot reach {self.authority} for a token ({exc.__class__.__name__})") from None
        except (ValueError, msal.exceptions.MsalError) as exc:  # a wrong tenant, or the endpoint failing
            first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
            raise GraphError(f"cannot get a token from {self.authority}: {first}") from None
        if "access_token" not in result:
            description = str(result.get("error_description") or "").strip().splitlines()
            raise GraphError(
                f"{self.authority} refused a token for Microsoft Graph: {result.get('error')}: {description[0] if description else ''}"
            )
        return str(result["access_token"])


class Graph:
    """The Graph calls Reinforce makes, each returning what the caller needs to decide."""

    def __init__(self, base_url: str, token: Callable[[], Awaitable[str]], timeout: float = 30.0, retries: int = 3) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retries = retries
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Graph:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def user_id(self, email: str) -> str | None:
        """The directory id of the user whose user principal name is ``email``; None when there is none."""
        status, body = await self._request("GET", f"users/{quote(email, safe='@')}?$select=id", expect={200, 404})
        return str(body["id"]) if status == 200 else None

    async def install_app(self, user_id: str, catalog_id: str) -> bool:
        """Install the catalog app ``catalog_id`` in the user's personal scope. False when it was
        already installed (Graph answers 409 Conflict), so running this again installs nothing twice."""
        bind = {"teamsApp@odata.bind": f"{self.base_url}appCatalogs/teamsApps/{quote(catalog_id, safe='')}"}
        status, _body = await self._request("POST", f"users/{quote(user_id, safe='')}/teamwork/installedApps", json=bind, expect={201, 409})
        return status == 201

    async def _request(self, method: str, path: str, *, expect: set[int], json: Any = None) -> tuple[int, dict[str, Any]]:
        """One call; throttling and passing outages are retried after Retry-After, a status
        outside ``expect`` raises GraphError with Graph's own explanation."""
        if self._session is None:
            raise RuntimeError("use Graph as an async context manager")
        attempt = 0
        while True:
            headers = {"Authorization": f"Bearer {await self._token()}"}
            try:
                async with self._session.request(method, self.base_url + path, json=json, headers=headers) as response:
                    status, retry_after, body = response.status, response.headers.get("Retry-After"), _json(await response.text())
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise GraphError(f"Microsoft Graph at {self.base_url} did not answer ({exc.__class__.__name__})") from None
            if status in expect:
                return status, body
            if status not in RETRYABLE or attempt >= self._retries:
                raise GraphError(f"Microsoft Graph answered {status} to {method} {path.split('?')[0]}: {_error(body)}", status)
            await asyncio.sleep(_delay(retry_after, attempt))
            attempt += 1


def _json(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text) if text.strip() else {}
    except ValueError:  # a proxy's HTML error page, say
        return {}
    return body if isinstance(body, dict) else {}


def _delay(retry_after: str | None, attempt: int) -> float:
    try:
        return min(max(float(retry_after or ""), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return min(2.0**attempt, MAX_RETRY_AFTER)


def _error(body: dict[str, Any]) -> str:
    """Graph's own words: ``{"error": {"code": ..., "message": ...}}``."""
    error = body.get("error")
    if not isinstance(error, dict):
        return "no error description"
    return f"{error.get('code', '?')}: {str(error.get('message', '')).strip()[:300]}"
