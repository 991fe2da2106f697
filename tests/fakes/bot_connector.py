"""A fake Bot Connector service on 127.0.0.1, Bot Framework activities as Teams sends them,
and a fake OpenID/JWKS endpoint with a signing key, for driving botbuilder for real.

The connector answers the REST calls Reinforce makes (send, reply, update, member, paged
roster, create conversation) in the Bot Framework wire format, records each call with its
Authorization header, and can be told to fail (429 with Retry-After, 5xx, 403, 404).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

TEAMS = "msteams"
BOT_NAME = "Reinforce"


@dataclass
class Call:
    op: str  # send, reply, update, member, pagedmembers, create
    conversation: str | None
    activity_id: str | None
    body: Any
    authorization: str | None


@dataclass
class Failure:
    status: int
    retry_after: int | None = None
    code: str | None = None
    times: int = 1


@dataclass
class FakeBotConnector:
    """State of the fake Teams tenant(s): member profiles, team rosters, messages, failures."""

    members: dict[str, dict[str, Any]] = field(default_factory=dict)  # member id (29:...) -> account
    rosters: dict[str, list[str]] = field(default_factory=dict)  # team id -> member ids
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (conversation, activity id) -> activity
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    url: str = ""
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def add_member(self, tenant: str, email: str, name: str, *, upn: str | None = None, team: str | None = None) -> dict[str, Any]:
        aad = str(uuid.uuid5(uuid.NAMESPACE_DNS, email))
        account = {
            "id": f"29:{aad}",
            "name": name,
            "aadObjectId": aad,
            "email": email,
            "userPrincipalName": upn or email,
            "tenantId": tenant,
            "userRole": "user",
            "givenName": name,
            "surname": "",
        }
        self.members[account["id"]] = account
        if team is not None:
            self.rosters.setdefault(team, []).append(account["id"])
        return account

    def fail(self, op: str, status: int, *, retry_after: int | None = None, code: str | None = None, times: int = 1) -> None:
        self.failures.setdefault(op, []).append(Failure(status, retry_after, code, times))

    def called(self, op: str) -> list[Call]:
        return [c for c in self.calls if c.op == op]

    def cards(self, conversation: str) -> list[dict[str, Any]]:
        """The Adaptive Cards currently shown in a conversation, oldest first."""
        return [a["attachments"][0]["content"] for (conv, _id), a in self.messages.items() if conv == conversation and a.get("attachments")]

    def texts(self, conversation: str) -> list[str]:
        return [a["text"] for (conv, _id), a in self.messages.items() if conv == conversation and a.get("text")]

    def _failure(self, op: str) -> web.Response | None:
        queued = self.failures.get(op)
        if not queued:
            return None
        failure = queued[0]
        failure.times -= 1
        if failure.times <= 0:
            queued.pop(0)
        headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
        code = failure.code or {429: "Throttled", 403: "BotDisabledByAdmin", 404: "ConversationNotFound"}.get(
            failure.status, "ServiceError"
        )
        return web.json_response({"error": {"code": code, "message": f"fake {failure.status}"}}, status=failure.status, headers=headers)

    async def _record(self, request: web.Request, op: str) -> web.Response | None:
        body = await request.json() if request.can_read_body else None
        self.calls.append(
            Call(op, request.match_info.get("conversation"), request.match_info.get("activity"), body, request.headers.get("Authorization"))
        )
        return self._failure(op)

    async def _send(self, request: web.Request) -> web.Response:
        op = "reply" if "activity" in request.match_info else "send"
        if (failed := await self._record(request, op)) is not None:
            return failed
        activity_id = f"1:{next(self._ids)}"
        self.messages[(request.match_info["conversation"], activity_id)] = self.calls[-1].body
        return web.json_response({"id": activity_id}, status=201)

    async def _update(self, request: web.Request) -> web.Response:
        if (failed := await self._record(request, "update")) is not None:
            return failed
        key = (request.match_info["conversation"], request.match_info["activity"])
        if key not in self.messages:
            return web.json_response({"error": {"code": "ActivityNotFound", "message": "no such activity"}}, status=404)
        self.messages[key] = self.calls[-1].body
        return web.json_response({"id": key[1]})

    async def _member(self, request: web.Request) -> web.Response:
        if (failed := await self._record(request, "member")) is not None:
            return failed
        account = self.members.get(request.match_info["member"])
        if account is None:
            return web.json_response({"error": {"code": "MemberNotFoundInConversation", "message": "no such member"}}, status=404)
        return web.json_response(account)

    async def _paged_members(self, request: web.Request) -> web.Response:
        if (failed := await self._record(request, "pagedmembers")) is not None:
            return failed
        ids = self.rosters.get(request.match_info["conversation"], [])
        size = int(request.query.get("pageSize", "500"))
        start = int(request.query.get("continuationToken", "0"))
        page = ids[start : start + size]
        token = str(start + size) if start + size < len(ids) else None
        return web.json_response({"continuationToken": token, "members": [self.members[i] for i in page]})

    async def _create(self, request: web.Request) -> web.Response:
        if (failed := await self._record(request, "create")) is not None:
            return failed
        member = (self.calls[-1].body.get("members") or [{}])[0].get("id", "")
        return web.json_response({"id": f"a:personal-{member.removeprefix('29:')}", "serviceUrl": self.url})


@asynccontextmanager
async def running_fake_connector() -> AsyncIterator[FakeBotConnector]:
    """Serve a FakeBotConnector on 127.0.0.1; ``fake.url`` is the serviceUrl for activities."""
    fake = FakeBotConnector()
    app = web.Application()
    app.router.add_post("/v3/conversations", fake._create)
    app.router.add_post("/v3/conversations/{conversation}/activities", fake._send)
    app.router.add_post("/v3/conversations/{conversation}/activities/{activity}", fake._send)
    app.router.add_put("/v3/conversations/{conversation}/activities/{activity}", fake._update)
    app.router.add_get("/v3/conversations/{conversation}/members/{member}", fake._member)
    app.router.add_get("/v3/conversations/{conversation}/pagedmembers", fake._paged_members)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("/"))
    try:
        yield fake
    finally:
        await server.close()


# --- Activities as Teams sends them -------------------------------------------------------


def personal_conversation(account: dict[str, Any]) -> str:
    return f"a:personal-{account['aadObjectId']}"


def _base(
    kind: str, service_url: str, tenant: str, bot_id: str, sender: dict[str, Any], conversation: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "type": kind,
        "id": extra.pop("activity_id", None) or f"f:{uuid.uuid4().hex}",
        "timestamp": extra.pop("timestamp", "2026-01-05T10:00:00.000Z"),
        "serviceUrl": service_url,
        "channelId": TEAMS,
        "from": {"id": sender["id"], "name": sender.get("name"), "aadObjectId": sender.get("aadObjectId")},
        "recipient": {"id": bot_id, "name": BOT_NAME},
        "conversation": {**conversation, "tenantId": tenant},
        "channelData": {"tenant": {"id": tenant}, **extra.pop("channel_data", {})},
        **extra,
    }


def personal_install(
    service_url: str, tenant: str, bot_id: str, account: dict[str, Any], *, kind: str = "conversationUpdate", remove: bool = False
) -> dict[str, Any]:
    """What Teams sends when a member adds (or removes) the app in their personal scope."""
    conversation = {"id": personal_conversation(account), "conversationType": "personal"}
    if kind == "installationUpdate":
        return _base(kind, service_url, tenant, bot_id, account, conversation, action="remove" if remove else "add")
    members = {"membersRemoved" if remove else "membersAdded": [{"id": bot_id}]}
    return _base(kind, service_url, tenant, bot_id, account, conversation, **members)


def team_install(
    service_url: str, tenant: str, bot_id: str, installer: dict[str, Any], team_id: str, *, remove: bool = False
) -> dict[str, Any]:
    """The bot added to (or removed from) a team: the event arrives in its General channel."""
    conversation = {"id": team_id, "conversationType": "channel", "isGroup": True}
    members = {"membersRemoved" if remove else "membersAdded": [{"id": bot_id}]}
    team = {
        "team": {"id": team_id, "name": "Sponsors"},
        "channel": {"id": team_id},
        "eventType": "teamMemberRemoved" if remove else "teamMemberAdded",
    }
    return _base("conversationUpdate", service_url, tenant, bot_id, installer, conversation, channel_data=team, **members)


def text_message(service_url: str, tenant: str, bot_id: str, account: dict[str, Any], text: str, **extra: Any) -> dict[str, Any]:
    conversation = {"id": personal_conversation(account), "conversationType": "personal"}
    return _base("message", service_url, tenant, bot_id, account, conversation, text=text, textFormat="plain", **extra)


def channel_message(
    service_url: str, tenant: str, bot_id: str, account: dict[str, Any], channel: str, text: str, **extra: Any
) -> dict[str, Any]:
    """A message that @mentions the bot in a channel thread: the mention is in the text and in an entity."""
    conversation = {"id": f"{channel};messageid=1767607200000", "conversationType": "channel", "isGroup": True}
    mention = f"<at>{BOT_NAME}</at>"
    entities = [{"type": "mention", "mentioned": {"id": bot_id, "name": BOT_NAME}, "text": mention}]
    channel_data = {"teamsChannelId": channel, "channel": {"id": channel}, "team": {"id": channel}}
    return _base(
        "message",
        service_url,
        tenant,
        bot_id,
        account,
        conversation,
        text=f"{mention} {text}",
        entities=entities,
        channel_data=channel_data,
        **extra,
    )


def card_submit(
    service_url: str, tenant: str, bot_id: str, account: dict[str, Any], card_id: str, value: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """An Action.Submit: a message with no text whose ``value`` holds the inputs and the data."""
    conversation = {"id": personal_conversation(account), "conversationType": "personal"}
    channel_data = {"source": {"name": "message"}, "legacy": {"replyToId": card_id}}
    return _base(
        "message", service_url, tenant, bot_id, account, conversation, replyToId=card_id, value=value, channel_data=channel_data, **extra
    )


# --- Tokens as the Bot Framework signs them -------------------------------------------------

ISSUER = "https://api.botframework.com"


@dataclass
class SigningKey:
    """An RSA key published in a JWKS document, and tokens signed with it."""

    kid: str = field(default_factory=lambda: uuid.uuid4().hex)
    key: Any = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    endorsements: tuple[str, ...] = (TEAMS,)

    def jwk(self) -> dict[str, Any]:
        return {
            **json.loads(RSAAlgorithm.to_jwk(self.key.public_key())),
            "kid": self.kid,
            "use": "sig",
            "endorsements": list(self.endorsements),
        }

    def token(self, audience: str, service_url: str, *, issuer: str = ISSUER, expires_in: int = 600) -> str:
        now = int(time.time())
        claims = {"iss": issuer, "aud": audience, "serviceurl": service_url, "nbf": now - 5, "iat": now, "exp": now + expires_in}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})


@contextmanager
def openid_metadata(*keys: SigningKey) -> Iterator[str]:
    """Serve an OpenID configuration and its JWKS in a thread (botbuilder fetches them with
    blocking ``requests``, so they cannot be served from the test's event loop); yields the
    configuration's URL."""
    documents: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = documents.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body or b"{}")

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    documents["/v1/.well-known/openidconfiguration"] = json.dumps({"issuer": ISSUER, "jwks_uri": f"{base}/v1/keys"}).encode()
    documents["/v1/keys"] = json.dumps({"keys": [k.jwk() for k in keys]}).encode()
    # A short poll interval: shutdown() waits for the serving loop to notice.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"{base}/v1/.well-known/openidconfiguration"
    finally:
        server.shutdown()
        server.server_close()
