"""A fake Slack Web API on 127.0.0.1, and Slack's request signing, for driving the real SDK.

The fake answers the Web API methods Reinforce calls with Slack's wire format (``ok``,
``error``, HTTP 429 with ``Retry-After``, the granted scopes in ``x-oauth-scopes``), records
every call, and can be told to fail.

Channels registered with ``add_channel`` behave as Slack's do for a bot: it posts in a channel
it is a member of, and in a public one it is not in only with ``chat:write.public``; it reads
history only where it is a member; a private channel it was not invited to does not exist for
it (``channel_not_found``); ``conversations.join`` lets it into public channels only
(``method_not_supported_for_channel_type`` for a private one). A channel id never registered
is a public channel the bot is in.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import math
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.slack.scopes import BOT_SCOPES


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
    # With ``hang``, the call succeeds (a message is stored) but the answer comes this many
    # seconds late: past a client timeout, the client cannot know the message arrived.
    hang: float | None = None


@dataclass
class FakeChannel:
    id: str
    name: str
    private: bool = False
    bot_member: bool = False
    archived: bool = False

    def info(self) -> dict[str, Any]:
        """The channel object of conversations.info and conversations.join."""
        return {
            "id": self.id, "name": self.name, "is_channel": not self.private, "is_group": self.private, "is_im": False,
            "is_private": self.private, "is_member": self.bot_member, "is_archived": self.archived,
        }  # fmt: skip


@dataclass
class FakeSlack:
    """State of the fake workspace(s): a user directory, sent messages, scripted failures."""

    users: dict[str, tuple[str, str]] = field(default_factory=dict)  # email -> (team, user id)
    deactivated: set[str] = field(default_factory=set)  # emails of members deactivated in the workspace
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (channel, ts) -> params
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    oauth_teams: list[tuple[str, str]] = field(default_factory=list)  # (team id, bot token) handed out by oauth.v2.access
    channels: dict[str, FakeChannel] = field(default_factory=dict)
    scopes: set[str] = field(default_factory=lambda: set(BOT_SCOPES))  # what the workspace granted the bot token
    revoked: set[str] = field(default_factory=set)  # tokens answered invalid_auth (revoked, mistyped)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # uploaded files by id
    # Random faults on chat.postMessage: probability of each of "503", "429", "hang".
    chaos: dict[str, float] = field(default_factory=dict)
    chaos_hang: float = 1.0
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    # Enforced rate limit on chat.postMessage for the whole workspace: (messages, per seconds).
    rate_limit: tuple[int, float] | None = None
    # Calls of each method being answered right now, and the most there ever were at once.
    in_flight: dict[str, int] = field(default_factory=dict)
    most_in_flight: dict[str, int] = field(default_factory=dict)
    _window: list[float] = field(default_factory=list)  # token bucket state: [tokens, stamp]
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    url: str = ""

    def add_user(self, email: str, team: str, user: str) -> None:
        self.users[email] = (team, user)

    def add_channel(self, channel: str, name: str, *, private: bool = False, bot_member: bool = False) -> FakeChannel:
        self.channels[channel] = FakeChannel(channel, name, private, bot_member)
        return self.channels[channel]

    def invite(self, channel: str) -> None:
        """Someone in the channel types /invite @Reinforce."""
        self.channels[channel].bot_member = True

    def fail(
        self,
        method: str,
        *,
        status: int = 200,
        error: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        hang: float | None = None,
    ) -> None:
        self.failures.setdefault(method, []).append(Failure(status, error, retry_after, times, hang))

    def delivered(self) -> dict[str, int]:
        """channel -> how many messages were posted to it."""
        counts: dict[str, int] = {}
        for channel, _ts in self.messages:
            counts[channel] = counts.get(channel, 0) + 1
        return counts

    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.in_flight[method] = self.in_flight.get(method, 0) + 1
        self.most_in_flight[method] = max(self.most_in_flight.get(method, 0), self.in_flight[method])
        try:
            response = await self._answer(request, method)
        finally:
            self.in_flight[method] -= 1
        response.headers["x-oauth-scopes"] = ",".join(sorted(self.scopes))
        return response

    @staticmethod
    async def _parse(request: web.Request) -> tuple[dict[str, Any], str | None]:
        """The call's parameters (query, JSON or form) and its token (header or parameter)."""
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            params.update(dict(await request.post()))
        for key in ("blocks", "view", "metadata"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        auth = request.headers.get("Authorization", "")
        return params, auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else params.get("token")

    async def _answer(self, request: web.Request, method: str) -> web.Response:
        params, token = await self._parse(request)
        self.calls.append(Call(method, params, token))
        if token is not None and token in self.revoked:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        failure = self._next_failure(method)
        if failure is not None and failure.hang is None:
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            body = {"ok": False, "error": failure.error or ("ratelimited" if failure.status == 429 else "internal_error")}
            return web.json_response(body, status=failure.status, headers=headers)
        if method == "chat.postMessage" and self.rate_limit is not None:
            limited = self._over_limit()
            if limited is not None:
                return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(limited)})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        body = {"ok": True, **handler(params, token)}
        if failure is not None and failure.hang:
            await asyncio.sleep(failure.hang)
        return web.json_response(body)

    def _next_failure(self, method: str) -> Failure | None:
        queued = self.failures.get(method)
        if queued:
            failure = queued[0]
            failure.times -= 1
            if failure.times <= 0:
                queued.pop(0)
            return failure
        if method == "chat.postMessage" and self.chaos:
            roll = self.rng.random()
            for kind, p in self.chaos.items():
                if roll < p:
                    return {"503": Failure(503), "429": Failure(429, retry_after=1), "hang": Failure(hang=self.chaos_hang)}[kind]
                roll -= p
        return None

    def _over_limit(self) -> int | None:
        """Whole seconds to wait when the workspace's message budget is spent: a token bucket
        of ``count`` per ``per`` seconds with a tenth of that as burst, as platforms that
        "allow short bursts" behave."""
        count, per = self.rate_limit  # type: ignore[misc]
        rate, burst = count / per, max(1.0, count / 10)
        now = time.monotonic()
        if not self._window:
            self._window = [burst, now]
        tokens, stamp = self._window
        tokens = min(burst, tokens + (now - stamp) * rate)
        if tokens < 1:
            self._window = [tokens, now]
            return max(1, math.ceil((1 - tokens) / rate))
        self._window = [tokens - 1, now]
        return None

    def _auth_test(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        return {"team_id": "T0001", "user_id": "UBOT", "bot_id": "BBOT", "team": "Fake", "url": "https://fake.slack/"}

    def _users_lookupByEmail(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        found = self.users.get(params.get("email", ""))
        if found is None:
            raise _SlackError("users_not_found")
        return {"user": self._user(params["email"])}

    def _users_info(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        email = next((e for e, (_team, user) in self.users.items() if user == params.get("user")), None)
        if email is None:
            raise _SlackError("user_not_found")
        return {"user": self._user(email)}

    def _user(self, email: str) -> dict[str, Any]:
        """A user object as the Web API gives it (users.info, users.lookupByEmail)."""
        team, user = self.users[email]
        name = email.split("@")[0]
        return {
            "id": user, "team_id": team, "name": name, "real_name": name.title(), "deleted": email in self.deactivated,
            "is_bot": False, "tz": "Europe/Lisbon", "profile": {"email": email, "real_name": name.title(), "display_name": name},
        }  # fmt: skip

    def deactivate(self, email: str) -> dict[str, Any]:
        """Deactivate a member, as a workspace admin does; returns the user object a user_change event carries."""
        self.deactivated.add(email)
        return self._user(email)

    def _conversations_open(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        return {"channel": {"id": "D" + str(params["users"])}}

    def _files_getUploadURLExternal(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        file_id = f"F{next(self._ts)}"
        self.files[file_id] = {"filename": params.get("filename"), "length": int(params.get("length", 0)), "data": b""}
        return {"upload_url": f"{self.url.removesuffix('/api/')}/upload/{file_id}", "file_id": file_id}

    def _files_completeUploadExternal(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        shared = json.loads(params["files"]) if isinstance(params.get("files"), str) else params.get("files", [])
        for item in shared:
            self.files[item["id"]].update(title=item.get("title"), channel=params.get("channel_id"), thread_ts=params.get("thread_ts"))
        return {"files": [{"id": item["id"], "title": item.get("title")} for item in shared]}

    async def _upload(self, request: web.Request) -> web.Response:
        self.files[request.match_info["file_id"]]["data"] = await request.read()
        return web.Response(text="OK")

    def _member_of(self, channel_id: str, posting: bool = False) -> None:
        """Raise Slack's error when the bot may not post in (or read) a registered channel."""
        channel = self.channels.get(channel_id)
        if channel is None:
            return
        if channel.archived:
            raise _SlackError("is_archived")
        if channel.bot_member:
            return
        if channel.private:
            raise _SlackError("channel_not_found")
        if not (posting and "chat:write.public" in self.scopes):
            raise _SlackError("not_in_channel")

    def _conversations_info(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel = self.channels.get(str(params["channel"]))
        if channel is None:
            return {"channel": FakeChannel(str(params["channel"]), str(params["channel"]).lower(), bot_member=True).info()}
        if channel.private and not channel.bot_member:
            raise _SlackError("channel_not_found")
        return {"channel": channel.info()}

    def _conversations_join(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        if "channels:join" not in self.scopes:
            raise _SlackError("missing_scope")
        channel = self.channels.get(str(params["channel"]))
        if channel is None:
            return {"channel": FakeChannel(str(params["channel"]), str(params["channel"]).lower(), bot_member=True).info()}
        if channel.archived:
            raise _SlackError("is_archived")
        if channel.private:
            raise _SlackError("method_not_supported_for_channel_type")
        channel.bot_member = True
        return {"channel": channel.info()}

    def _conversations_history(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel = str(params["channel"])
        self._member_of(channel)
        found = [
            {"ts": ts, "text": m.get("text"), **({"metadata": m["metadata"]} if m.get("metadata") else {})}
            for (ch, ts), m in self.messages.items()
            if ch == channel
        ]
        found.sort(key=lambda m: m["ts"], reverse=True)
        return {"messages": found[: int(params.get("limit", 100))], "has_more": False}

    def _chat_postMessage(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel = str(params["channel"])
        if channel.startswith("U"):  # a user id: Slack posts to the app's DM with them
            channel = "D" + channel
        self._member_of(channel, posting=True)
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
            "app_id": "A0001",
            "authed_user": {"id": "UINSTALLER"},
            "scope": "chat:write,commands",
            "token_type": "bot",
            "access_token": bot_token,
            "bot_user_id": "UBOT" + team,
            "team": {"id": team, "name": f"Team {team}"},
            "enterprise": None,
            "is_enterprise_install": False,
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
    app.router.add_post("/upload/{file_id}", fake._upload)
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


def block_action(
    team: str, user: str, channel: str, ts: str, value: str, *, action_ts: str, block_id: str = "q", action_id: str = "reinforce:0"
) -> dict[str, Any]:
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


async def _serve_forever(port: int, rate: tuple[int, float] | None = None) -> None:
    fake = FakeSlack(rate_limit=rate)
    app = web.Application(middlewares=[_errors])
    app.router.add_route("*", "/api/{method}", fake._handle)
    app.router.add_post("/upload/{file_id}", fake._upload)
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


if __name__ == "__main__":  # python -m tests.fakes.slack PORT [MESSAGES_PER_SECOND]: for benchmarks
    import sys

    limit = (int(sys.argv[2]), 1.0) if len(sys.argv) > 2 else None
    asyncio.run(_serve_forever(int(sys.argv[1]), limit))
