"""The Slack side of the web process: a slack-bolt AsyncApp whose listeners call Inbound.

Clicks and typed messages are stored before the request is acknowledged (Slack allows 3 s),
so what Slack saw acknowledged is never lost, and a request that fails gets a 500 that Slack
retries; the message is updated, or the reply posted, after the ack.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.signature import SignatureVerifier
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.base import Click, DeliveryError, Inbound, Reply, Submission, TextCommand
from adapters.slack.blocks import BUTTON_ACTION_PREFIX, NOTE_CALLBACK, NOTE_LIMIT, escape, note_modal
from adapters.slack.chat import InstalledWorkspaces, SingleWorkspace, SlackChat, Tokens, click_event_id, make_client, member_id
from adapters.slack.payloads import MalformedRequest, parse_request
from adapters.slack.scopes import BOT_SCOPES
from nudges.checklist import AnswerError, ChoiceRef
from nudges.review import is_edit_button

log = logging.getLogger(__name__)
# Bolt logs whole request bodies: at INFO the body of each request whose signature fails, and
# at DEBUG. Every logger bolt makes takes its level from this one; refused requests are logged
# by SlackAdapter.handle instead, one line each, without the body.
bolt_log = logging.getLogger(__name__ + ".bolt")
bolt_log.setLevel(logging.WARNING)
# Slack signs requests with a Unix time in seconds and refuses to accept them 5 minutes later.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
MAX_AGE = 5 * 60

SCOPES = list(BOT_SCOPES)  # what the OAuth install asks for: the manifest's scopes (adapters/slack/scopes.py)
# Table names the OAuth stores use in our database (created by our migrations).
BOTS_TABLE, INSTALLATIONS_TABLE, STATES_TABLE = "workspace_bots", "workspace_installations", "oauth_states"


def _at(ts: object) -> datetime:
    """A Slack timestamp ("1767600000.000100", or event_time's whole seconds) as a datetime; now
    when there is none or it is not one."""
    try:
        return datetime.fromtimestamp(float(ts or ""), UTC)  # type: ignore[arg-type]  # anything else is refused below
    except (ValueError, TypeError, OverflowError, OSError):
        return datetime.now(UTC)


def _team(body: dict[str, Any]) -> str:
    user = body.get("user") or {}
    return user.get("team_id") or (body.get("team") or {}).get("id") or body.get("team_id") or ""


class SlackAdapter:
    """Builds the bolt app, its listeners and the chat port for one configuration."""

    def __init__(
        self,
        inbound: Inbound,
        *,
        api_url: str,
        signing_secret: str,
        engine: AsyncEngine,
        bot_token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        authorization_url: str | None = None,
    ) -> None:
        self.inbound = inbound
        self.signing_secret = signing_secret
        client = make_client(api_url, bot_token)
        tokens: Tokens
        if client_id and client_secret:
            store = AsyncSQLAlchemyInstallationStore(
                client_id, engine, bots_table_name=BOTS_TABLE, installations_table_name=INSTALLATIONS_TABLE
            )
            states = AsyncSQLAlchemyOAuthStateStore(expiration_seconds=600, engine=engine, table_name=STATES_TABLE)
            oauth = AsyncOAuthSettings(
                client_id=client_id,
                client_secret=client_secret,
                scopes=SCOPES,
                installation_store=store,
                state_store=states,
                authorization_url=authorization_url,  # None: Slack's own
            )
            self.app = AsyncApp(
                signing_secret=signing_secret,
                client=client,
                oauth_settings=oauth,
                request_verification_enabled=bool(signing_secret),
                process_before_response=True,
                logger=bolt_log,
            )
            tokens = InstalledWorkspaces(store, engine, store.bots)
        else:
            if not bot_token:
                raise ValueError("Slack needs SLACK_BOT_TOKEN, or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET")
            # The client carries the token. Without a signing secret (Socket Mode only) there
            # are no HTTP requests to verify, and the web server does not mount /slack/events.
            self.app = AsyncApp(
                signing_secret=signing_secret,
                client=client,
                request_verification_enabled=bool(signing_secret),
                process_before_response=True,
                logger=bolt_log,
            )
            tokens = SingleWorkspace(bot_token)
        self.chat = SlackChat(client, tokens)
        # None in Socket Mode only: then no HTTP request reaches handle (bot.web mounts nothing).
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self._after: set[asyncio.Task[None]] = set()
        self._register()

    def _later(self, work: Awaitable[None]) -> None:
        """Run ``work`` after the response to Slack has gone.

        Bolt runs each listener inline (process_before_response): a listener acks as soon as
        what was clicked is stored and hands what follows (updating the message, a modal, a
        rehearsal's answer) to this. Bolt's other mode would run every listener in the
        background and poll for its ack every 10 ms, a cost on every request and up to
        10 ms on every acknowledgement. What was clicked is already stored, so a call to
        Slack that fails here is logged (the member sees the old message), not raised.
        """
        task = asyncio.ensure_future(work)
        self._after.add(task)
        task.add_done_callback(self._done_later)

    def _done_later(self, task: asyncio.Task[None]) -> None:
        self._after.discard(task)
        if task.cancelled() or (exc := task.exception()) is None:
            return
        if isinstance(exc, DeliveryError):
            log.warning("could not show the reply in Slack: %s", exc.reason)
        else:
            log.error("Slack: work after the response failed: %s", exc.__class__.__name__, exc_info=exc)

    def _register(self) -> None:
        self.app.action(re.compile("^" + re.escape(BUTTON_ACTION_PREFIX)))(self._on_button)
        self.app.view(NOTE_CALLBACK)(self._on_note)
        self.app.command("/reinforce")(self._on_command)
        self.app.event("app_home_opened")(self._on_home)
        self.app.event("message")(self._on_message)
        self.app.event("user_change")(self._on_user_change)
        self.app.error(self._on_error)

    async def _on_button(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        value = str(action.get("value", ""))
        team, user = _team(body), body["user"]["id"]
        container = body.get("container") or {}
        channel, ts = container.get("channel_id"), container.get("message_ts")
        if _is_note_button(value):
            await ack()
            self._later(self.chat.open_view(team, body["trigger_id"], note_modal(value, channel, ts)))
            return
        click = Click(
            platform="slack",
            event_id=click_event_id(user, str(action.get("action_ts")), str(action.get("block_id")), str(action.get("action_id"))),
            user_id=member_id(team, user),
            value=value,
            at=_at(action.get("action_ts")),
            # In the shape SlackChat.send returns, so the application can update it through the port.
            message_ref={"team": team, "channel": channel, "ts": ts} if channel and ts else None,
        )
        reply = await self.inbound.click(click)  # stored before the ack
        await ack()
        self._show(reply, click.user_id, channel, ts)

    async def _on_note(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        text = (((view.get("state") or {}).get("values") or {}).get("note") or {}).get("text", {}).get("value") or ""
        if len(text) > NOTE_LIMIT:
            await ack(response_action="errors", errors={"note": f"Please keep your note under {NOTE_LIMIT} characters."})
            return
        meta = json.loads(view.get("private_metadata") or "{}")
        user_id = member_id(_team(body), body["user"]["id"])
        submission = Submission(
            platform="slack",
            event_id=f"view:{view.get('id')}:{view.get('hash')}",
            user_id=user_id,
            at=datetime.now(UTC),
            note=text,
            context=meta.get("context"),
        )
        reply = await self.inbound.submit(submission)
        await ack()
        self._show(reply, user_id, meta.get("channel"), meta.get("ts"))

    async def _on_message(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        """A member's message in the DM: a rehearsal turn, or a command (bot messages and edits
        are ignored).

        Stored before bolt answers Slack (the response goes when this returns), once per
        event: Slack retries an event it saw fail or time out with the same ``event_id``, and
        the application claims that id in the transaction that stores the message's effect.
        When that fails (the database is down) this raises, bolt answers 500, and Slack
        retries. The reply is posted after the answer.
        """
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id") or not event.get("user"):
            return
        user_id = member_id(body.get("team_id") or event.get("team", ""), event["user"])
        text = unescape(str(event.get("text") or ""))
        # Named after the sender first, as click ids are (click_event_prefix): forgetting the member drops it too.
        event_id = f"{event['user']}:{body.get('event_id') or 'msg:' + str(event.get('ts'))}"
        command = TextCommand("slack", user_id, text, _at(event.get("ts")), event_id=event_id)
        reply = await self.inbound.message(command)
        if reply.text:
            self._later(self.chat.tell(command.user_id, reply.text))

    async def _on_command(self, ack: Any, command: dict[str, Any]) -> None:
        user_id = member_id(command.get("team_id", ""), command["user_id"])
        reply = await self.inbound.command(TextCommand("slack", user_id, unescape(command.get("text", "")), datetime.now(UTC)))
        await ack(text=escape(reply.text or ""))

    async def _on_user_change(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        """A workspace admin deactivated a member: the application lets their account go."""
        user = event.get("user")
        if isinstance(user, dict) and user.get("deleted") and isinstance(user.get("id"), str):
            user_id = member_id(user.get("team_id") or body.get("team_id") or "", user["id"])
            await self.inbound.account_closed("slack", user_id, datetime.now(UTC), "deactivated in the Slack workspace")

    async def _on_home(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        user_id = member_id(body.get("team_id") or event.get("view", {}).get("team_id", ""), event["user"])
        # The week shown is the week of the event (Slack's event_time), as a click's is its action_ts.
        self._later(self._publish_home(user_id, _at(body.get("event_time"))))

    async def _publish_home(self, user_id: str, at: datetime) -> None:
        await self.chat.publish_home(user_id, await self.inbound.home("slack", user_id, at))

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("Slack request failed (%s): %s", body.get("type", "?"), error.__class__.__name__, exc_info=error)

    def _show(self, reply: Reply, member: str, channel: str | None, ts: str | None) -> None:
        """After the ack: update the message the member acted on (updates of one message are
        coalesced by SlackChat.update), and/or tell them something privately."""
        if reply.update is not None and channel and ts:
            team, _user = member.split(":", 1)
            self._later(self.chat.update({"team": team, "channel": channel, "ts": ts}, reply.update))
        if reply.text:
            self._later(self.chat.tell(member, reply.text, channel))

    async def start(self) -> None:
        """One HTTP connection pool for every Web API call (slack_sdk opens a new session per
        call otherwise: a TCP and TLS handshake per message)."""
        if self.chat.client.session is None or self.chat.client.session.closed:
            self.chat.client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.chat.client.timeout))

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the work after responses still under way (updates, replies)."""
        if self._after:
            await asyncio.wait(set(self._after), timeout=timeout)

    async def stop(self) -> None:
        await self.drain(timeout=5)  # updates and answers still on their way get a moment to finish
        if self.chat.client.session is not None:
            await self.chat.client.session.close()

    async def connect_socket_mode(self, app_token: str) -> Any:
        """Receive events over Socket Mode (no public URL needed); returns the handler to close."""
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        handler = AsyncSocketModeHandler(self.app, app_token)
        await handler.connect_async()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated
        return handler

    async def handle(self, request: web.Request) -> web.Response:
        """aiohttp handler for /slack/events (and the OAuth pages when installs are enabled)."""
        oauth = self.app.oauth_flow
        if request.method == "GET" and oauth is not None and request.path in (oauth.install_path, oauth.redirect_uri_path):
            bolt_request = await to_bolt_request(request)
            handler = oauth.handle_installation if request.path == oauth.install_path else oauth.handle_callback
            return await to_aiohttp_response(await handler(bolt_request))
        if request.method != "POST":
            return web.Response(status=405, text="POST only")
        raw = await request.read()
        refusal = self._refusal(raw, request.headers)
        if refusal is not None:
            # One line, never the body: a stranger chooses it, and how often to send it. The
            # hash tells an operator whether the same body keeps coming.
            log.info("Slack: refused a request: %s (body of %d bytes, sha256 %s)", refusal, len(raw), hashlib.sha256(raw).hexdigest()[:12])
            return web.Response(status=401, text="invalid signature")
        try:
            bolt_request = parse_request(raw, request.query_string, request.headers)
        except MalformedRequest as exc:
            log.info("Slack: refused a malformed request (%s)", exc)
            return web.Response(status=400, text="malformed request")
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))

    def _refusal(self, raw: bytes, headers: Mapping[str, str]) -> str | None:
        """Why a request is not from Slack, or None when its signature holds.

        Checked at the door, before anything parses the body (bolt parses it before it
        checks the signature, and slack_sdk's check raises on a timestamp that is not a
        number, which would be a 500). Bolt checks the signature again, a second lock. The
        age is checked here too, only to name it: a server whose clock is wrong refuses
        every request, and the log should say why.
        """
        timestamp, signature = headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
        if self._verifier is None or not timestamp or not signature:
            return "unsigned"
        if not _TIMESTAMP.fullmatch(timestamp):
            return "the timestamp is not a number"
        if abs(time.time() - int(timestamp)) > MAX_AGE:
            return "the timestamp is more than 5 minutes off (a replay, or this server's clock is wrong)"
        try:
            valid = self._verifier.is_valid(raw, timestamp, signature)
        except UnicodeDecodeError:  # slack_sdk verifies text only, and Slack signs only UTF-8 bodies
            return "the body is not UTF-8"
        return None if valid else "the signature does not match"


def unescape(text: str) -> str:
    """Typed text as the member wrote it: Slack escapes "&", "<" and ">" in message and
    command text (and blocks.escape does so again on the way out). "&amp;" goes last, so
    "&amp;lt;" (someone typing "&lt;") stays "&lt;"."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _is_note_button(value: str) -> bool:
    """Buttons that open a text dialog: a checklist's "Add a note", a review's "Edit"."""
    if is_edit_button(value):
        return True
    try:
        return ChoiceRef.decode(value).action == "note"
    except AnswerError:
        return False
