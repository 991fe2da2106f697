"""A fake Slack Web API on 127.0.0.1, and Slack's request signing, for driving the real SDK.

The fake answers the Web API methods Reinforce calls with Slack's wire format (``ok``,
``error``, HTTP 429 with ``Retry-After``), records every call, and can be told to fail.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str | None


@dataclass
class Failure:
    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    times: int = 1


@dataclass
class FakeSlack:
    """State of the fake workspace(s): a user directory, sent messages, scripted failures."""

    users: dict[str, tuple[str, str]] = field(default_factory=dict)  # email -> (team, user id)
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (channel, ts) -> params
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    oauth_teams: list[tuple[str, str]] = field(default_factory=list)  # (team id, bot token) handed out by oauth.v2.access
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    url: str = ""

    def add_user(self, email: str, team: str, user: str) -> None:
        self.users[email] = (team, user)

    def fail(self, method: str, *, status: int = 200, error: str | None = None, retry_after: int | None = None, times: int = 1) -> None:
        self.failures.setdefault(method, []).append(Failure(status, error, retry_after, times))

    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            params.update(dict(await request.post()))
        for key in ("blocks", "view"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else params.get("token")
        self.calls.append(Call(method, params, token))
        queued = self.failures.get(method)
        if queued:
            failure = queued[0]
            failure.times -= 1
            if failure.times <= 0:
                queued.pop(0)
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            body = {"ok": False, "error": failure.error or ("ratelimited" if failure.status == 429 else "internal_error")}
            return web.json_response(body, status=failure.status, headers=headers)
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        return web.json_response({"ok": True, **handler(params, token)})

    def _auth_test(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        return {"team_id": "T0001", "user_id": "UBOT", "bot_id": "BBOT", "team": "Fake", "url": "https://fake.slack/"}

    def _users_lookupByEmail(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        found = self.users.get(params.get("email", ""))
        if found is None:
            raise _SlackError("users_not_found")
        team, user = found
        return {"user": {"id": user, "team_id": team, "profile": {"email": params["email"]}}}

    def _conversations_open(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        return {"channel": {"id": "D" + str(params["users"])}}

    def _chat_postMessage(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel = str(params["channel"])
        ts = f"{1767600000 + next(self._ts)}.000100"
        self.messages[(channel, ts)] = params
        return {"channel": channel, "ts": ts, "message": {"text": params.get("text")}}

    def _chat_update(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        key = (str(params["channel"]), str(params["ts"]))
        if key not in self.messages:
            raise _SlackError("message_not_found")
        self.messages[key] = {**self.messages[key], **params}
        return {"channel": key[0], "ts": key[1]}

    def _chat_postEphemeral(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        return {"message_ts": f"{time.time():.6f}"}

    def _views_open(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        return {"view": {"id": "V1", **params["view"]}}

    def _views_publish(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        return {"view": {"id": "VHOME", **params["view"]}}

    def _oauth_v2_access(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        team, bot_token = self.oauth_teams.pop(0)
        return {
            "app_id": "A0001", "authed_user": {"id": "UINSTALLER"}, "scope": "chat:write,commands",
            "token_type": "bot", "access_token": bot_token, "bot_user_id": "UBOT" + team,
            "team": {"id": team, "name": f"Team {team}"}, "enterprise": None, "is_enterprise_install": False,
        }


class _SlackError(Exception):
    def __init__(self, error: str) -> None:
        self.error = error


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except _SlackError as exc:
        return web.json_response({"ok": False, "error": exc.error})


@asynccontextmanager
async def running_fake_slack() -> AsyncIterator[FakeSlack]:
    """Serve a FakeSlack on 127.0.0.1; ``fake.url`` is the base URL for SLACK_API_URL."""
    fake = FakeSlack()
    app = web.Application(middlewares=[_errors])
    app.router.add_route("*", "/api/{method}", fake._handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("/api/"))
    try:
        yield fake
    finally:
        await server.close()


def sign(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack adds to a request: HMAC-SHA256 over ``v0:{timestamp}:{body}``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


def interaction_body(payload: dict[str, Any]) -> str:
    """An interactivity request body as Slack sends it: form-encoded ``payload=<json>``."""
    return urlencode({"payload": json.dumps(payload)})


def block_action(team: str, user: str, channel: str, ts: str, value: str, *, action_ts: str, block_id: str = "q", action_id: str = "reinforce:0") -> dict[str, Any]:
    """A ``block_actions`` payload for one button press in a message."""
    return {
        "type": "block_actions",
        "team": {"id": team, "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "team_id": team},
        "api_app_id": "A0001",
        "token": "verification-token",
        "trigger_id": f"trigger-{action_ts}",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "channel": {"id": channel, "name": "directmessage"},
        "message": {"ts": ts, "type": "message"},
        "response_url": "http://127.0.0.1:9/unused",
        "actions": [{"type": "button", "action_id": action_id, "block_id": block_id, "value": value, "action_ts": action_ts}],
    }


async def _serve_forever(port: int) -> None:
    import asyncio

    fake = FakeSlack()
    app = web.Application(middlewares=[_errors])
    app.router.add_route("*", "/api/{method}", fake._handle)
    # Benchmarks send many thousands of calls; keep only the last ones.
    fake.calls = _Bounded()  # type: ignore[assignment]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"fake Slack Web API on http://127.0.0.1:{port}/api/", flush=True)
    await asyncio.Event().wait()


class _Bounded(list):  # type: ignore[type-arg]
    def append(self, item: Any) -> None:
        if len(self) > 1000:
            del self[:500]
        super().append(item)


if __name__ == "__main__":  # python -m tests.fakes.slack PORT: a fake for benchmarks and manual runs
    import asyncio
    import sys

    asyncio.run(_serve_forever(int(sys.argv[1])))
