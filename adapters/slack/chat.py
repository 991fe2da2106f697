"""Sending to Slack through slack_sdk's AsyncWebClient, one workspace or many (OAuth installs).

Member ids are opaque strings "TEAM:USER" to the rest of the application, so a member is
found in the right workspace without storage knowing what a workspace is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.base import ChannelUnreachable, ChatPort, DeliveryError, Profile, Recipient
from adapters.slack.blocks import blocks_json, escape, fallback_text, home_view, uploads
from adapters.slack.channels import MENTION, NOT_A_MEMBER, ChannelState, Workspace, invite_fix, not_found_fix
from nudges.messages import Message

log = logging.getLogger(__name__)

# Errors after which sending again cannot help: the person or channel is gone, or the app is.
PERMANENT_ERRORS = frozenset(
    {
        "users_not_found",
        "user_not_found",
        "channel_not_found",
        "is_archived",
        "account_inactive",
        "not_in_channel",
        "cannot_dm_bot",
        "user_disabled",
        "invalid_auth",
        "token_revoked",
        "not_authed",
        "team_access_not_granted",
        "missing_scope",
        "restricted_action",
        "no_permission",
        "invalid_blocks",
        "msg_too_long",
    }
)


METADATA_EVENT = "reinforce_delivery"


def member_id(team_id: str, user_id: str) -> str:
    return f"{team_id}:{user_id}"


def split_member_id(value: str) -> tuple[str, str]:
    team, sep, user = value.partition(":")
    if not sep or not team or not user:
        raise DeliveryError(f"{value!r} is not a Slack member id", permanent=True)
    return team, user


def click_event_id(user: str, action_ts: str, block_id: str, action_id: str) -> str:
    """The id a button press is recorded under: Slack sends no id of its own for one, and
    these four are the same when it delivers the press again."""
    return f"{user}:{action_ts}:{block_id}:{action_id}"


def click_event_prefix(member: str) -> str | None:
    """What the ids of every button press of ``member`` ("TEAM:USER") start with, so that
    forgetting them also drops those ids; None for what is not a Slack member id."""
    _team, sep, user = member.partition(":")
    return user + ":" if sep and user else None


def make_client(base_url: str, token: str | None = None, retries: int = 1, timeout: int = 10) -> AsyncWebClient:
    """A Web API client with slack_sdk's own retry handlers (429 Retry-After, 5xx, connection).

    They cover short blips within one send; longer outages go back to the outbox, which
    retries with backoff, so one retry here is enough.
    """
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=retries),
            AsyncRateLimitErrorRetryHandler(max_retry_count=retries),
            AsyncServerErrorRetryHandler(max_retry_count=retries),
        ],
    )


class Tokens(Protocol):
    async def for_team(self, team_id: str) -> str: ...

    async def all(self) -> list[str]: ...


class SingleWorkspace:
    """The one bot token of a single-workspace app (SLACK_BOT_TOKEN)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def for_team(self, team_id: str) -> str:
        return self._token

    async def all(self) -> list[str]:
        return [self._token]


class InstalledWorkspaces:
    """Bot tokens of every workspace that installed the app, from slack_sdk's installation store."""

    def __init__(self, store: AsyncInstallationStore, engine: AsyncEngine, bots_table: Any) -> None:
        self._store = store
        self._engine = engine
        self._bots = bots_table

    async def for_team(self, team_id: str) -> str:
        bot = await self._store.async_find_bot(enterprise_id=None, team_id=team_id)
        if bot is None or not bot.bot_token:
            raise DeliveryError(f"the app is not installed in workspace {team_id}", permanent=True)
        return bot.bot_token

    async def all(self) -> list[str]:
        async with self._engine.connect() as conn:
            teams = (await conn.execute(select(self._bots.c.team_id).distinct())).scalars().all()
        return [await self.for_team(t) for t in teams if t]


class SlackChat(ChatPort):
    """adapters.base.ChatPort for Slack (subclassed, so mypy checks every method against the
    port), and the other Web API calls the Slack adapter makes: every call goes out here,
    with the workspace's token and Slack's errors turned into DeliveryError."""

    platform = "slack"

    def __init__(self, client: AsyncWebClient, tokens: Tokens) -> None:
        self.client = client
        self.tokens = tokens
        self._dm_channels: dict[str, str] = {}
        # (channel, ts) of each message being updated -> its newest state still to send
        # (None: the update in flight is the newest).
        self._updates: dict[tuple[str, str], Message | None] = {}

    async def resolve(self, email: str) -> str | None:
        """users.lookupByEmail in each workspace the app is in; None when nobody has the email."""
        for token in await self.tokens.all():
            try:
                response = await self._call(self.client.users_lookupByEmail, email=email, token=token)
            except DeliveryError as exc:
                if exc.reason.startswith("users_not_found"):
                    continue
                raise
            user = response["user"]
            if user.get("deleted"):
                continue
            return member_id(user.get("team_id") or "", user["id"])
        return None

    async def profile(self, user_id: str) -> Profile | None:
        """users.info: the member's profile email, and whether they were deactivated."""
        team, user = split_member_id(user_id)
        try:
            response = await self._call(self.client.users_info, user=user, token=await self.tokens.for_team(team))
        except DeliveryError as exc:
            if exc.reason.startswith(("user_not_found", "users_not_found")):
                return None
            raise
        found = response["user"]
        email = str((found.get("profile") or {}).get("email") or "").strip().lower()
        return Profile(emails=(email,) if email else (), active=not found.get("deleted") and not found.get("is_bot"))

    async def send(self, to: Recipient, message: Message, key: str | None = None) -> dict[str, Any]:
        team, channel, token = await self._where(to, open_dm=False)
        extra: dict[str, Any] = {}
        if key is not None:
            # Slack keeps message metadata with the message; find_sent looks for it.
            extra["metadata"] = {"event_type": METADATA_EVENT, "event_payload": {"key": key}}
        post = partial(
            self._call, self.client.chat_postMessage, channel=channel, text=fallback_text(message), blocks=blocks_json(message), token=token
        )
        response = await self._as_member(to, channel, token, partial(post, **extra))
        ref = {"team": team, "channel": response["channel"], "ts": response["ts"]}
        for image in uploads(message):
            # Block Kit shows only hosted images; a chart made here goes up as a file in the
            # message's thread (files upload v2), right under the text it illustrates.
            upload = partial(
                self._call,
                self.client.files_upload_v2,
                channel=response["channel"],
                thread_ts=response["ts"],
                content=image.data,
                filename="chart.png",
                title=image.alt[:250],
                token=token,
            )
            await self._as_member(to, channel, token, upload)
        return ref

    async def find_sent(self, to: Recipient, key: str) -> dict[str, Any] | None:
        """Look for the key in the metadata of the conversation's latest messages."""
        team, channel, token = await self._where(to)
        read = partial(self._call, self.client.conversations_history, channel=channel, limit=20, include_all_metadata=True, token=token)
        response = await self._as_member(to, channel, token, read)
        for message in response.get("messages", []):
            metadata = message.get("metadata") or {}
            if metadata.get("event_type") == METADATA_EVENT and (metadata.get("event_payload") or {}).get("key") == key:
                return {"team": team, "channel": channel, "ts": message["ts"]}
        return None

    async def workspaces(self) -> list[Workspace]:
        """auth.test with each bot token (one per installed workspace); raises DeliveryError
        (``invalid_auth``, ``token_revoked``) for a token Slack refuses."""
        found = []
        for token in await self.tokens.all():
            response = await self._call(self.client.auth_test, token=token)
            header = next((value for key, value in response.headers.items() if key.lower() == "x-oauth-scopes"), "")
            scopes = frozenset(scope.strip() for scope in str(header).split(",") if scope.strip())
            found.append(Workspace(response.get("team_id", ""), response.get("team", ""), response.get("user_id", ""), scopes))
        return found

    async def channel(self, channel_id: str) -> ChannelState | None:
        """conversations.info on a channel of the program file ("C123" or "TEAM:C123"); None
        when Slack shows the bot no such channel (a wrong id, or a private channel it is not in)."""
        _team, channel, token = await self._where(Recipient(self.platform, channel_id=channel_id))
        return await self._channel(channel, token)

    async def _channel(self, channel: str, token: str) -> ChannelState | None:
        try:
            response = await self._call(self.client.conversations_info, channel=channel, token=token)
        except DeliveryError as exc:
            if exc.reason.startswith("channel_not_found"):
                return None
            raise
        info = response["channel"]
        return ChannelState(
            channel,
            str(info.get("name") or channel),
            bool(info.get("is_private")),
            bool(info.get("is_member")),
            bool(info.get("is_archived")),
        )

    async def _as_member(self, to: Recipient, channel: str, token: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """``call`` in ``to``'s channel: when Slack answers that the bot is not in it, the bot
        joins (a public channel) and calls again, once; a channel it cannot join raises
        ChannelUnreachable, whose ``fix`` says who must do what."""
        try:
            return await call()
        except DeliveryError as exc:
            if not to.channel_id or not exc.reason.startswith(NOT_A_MEMBER):
                raise
        await self._join(channel, token)
        return await call()

    async def _join(self, channel: str, token: str) -> None:
        try:
            await self._call(self.client.conversations_join, channel=channel, token=token)
        except DeliveryError as exc:
            if exc.reason.startswith("method_not_supported_for_channel_type"):  # private: only an invitation lets the bot in
                found = await self._channel(channel, token)  # its name, should Slack show it
                raise ChannelUnreachable(channel, invite_fix(channel, found.name if found else None)) from None
            if exc.reason.startswith("channel_not_found"):
                raise ChannelUnreachable(channel, f"Slack shows {MENTION} no channel {channel}: {not_found_fix(channel)}") from None
            if exc.reason.startswith("missing_scope"):
                raise ChannelUnreachable(
                    channel,
                    f"{invite_fix(channel, None)}, or reinstall the Slack app with the scopes of slack/manifest.yml "
                    "(it lacks channels:join, so it cannot join public channels itself)",
                ) from None
            raise
        log.info("joined Slack channel %s to post there", channel)

    async def _where(self, to: Recipient, open_dm: bool = True) -> tuple[str, str, str]:
        """(team, channel, token) for a recipient: a member's DM, or a channel.

        chat.postMessage accepts a user id and posts to the app's DM with them, which saves
        a conversations.open per member in a fan-out; reading history needs the DM's id.
        """
        if to.user_id:
            team, user = split_member_id(to.user_id)
            token = await self.tokens.for_team(team)
            return team, await self._dm_channel(user, token) if open_dm else user, token
        if to.channel_id:
            team, _, channel = to.channel_id.rpartition(":")
            token = await self.tokens.for_team(team) if team else (await self.tokens.all() or [""])[0]
            return team, channel, token
        raise DeliveryError("no user or channel to send to", permanent=True)

    async def update(self, ref: dict[str, Any], message: Message) -> None:
        """chat.update, coalesced per message: while an update of a message is waiting or in
        flight, a newer state only replaces what is sent next (that call returns at once), so
        a member clicking three answers in a row costs at most two calls (chat.update is
        rate-limited per workspace), two updates of one message are never in flight together
        (they could land out of order), and the last state always wins.

        The call goes out after the updates that became ready together (clicks stored in
        the same transaction, a double click) have registered, so only the newest of them
        is sent, not a state already out of date. No timer: a click a person makes a second
        later is shown as soon as it is stored. Raises DeliveryError when the call fails
        (the states waiting behind it are dropped with it).
        """
        key = (str(ref["channel"]), str(ref["ts"]))
        waiting = key in self._updates
        self._updates[key] = message
        if waiting:
            return
        try:
            await asyncio.sleep(0)  # one turn of the loop: updates ready together register first
            token = await self.tokens.for_team(ref.get("team") or "")
            while (latest := self._updates[key]) is not None:
                self._updates[key] = None
                await self._call(
                    self.client.chat_update, channel=key[0], ts=key[1], text=fallback_text(latest), blocks=blocks_json(latest), token=token
                )
        finally:
            del self._updates[key]

    async def tell(self, member: str, text: str, channel: str | None = None) -> None:
        """A line only ``member`` sees: ephemeral in ``channel``, or in their DM when there is
        no channel (App Home has none)."""
        team, user = split_member_id(member)
        token = await self.tokens.for_team(team)
        if channel is None:  # a user id as the channel: the app's DM with them
            await self._call(self.client.chat_postMessage, channel=user, text=escape(text), token=token)
        else:
            await self._call(self.client.chat_postEphemeral, channel=channel, user=user, text=escape(text), token=token)

    async def open_view(self, team: str, trigger_id: str, view: dict[str, Any]) -> None:
        """views.open: a modal, in answer to the click that carried ``trigger_id``."""
        await self._call(self.client.views_open, trigger_id=trigger_id, view=view, token=await self.tokens.for_team(team))

    async def publish_home(self, member: str, message: Message) -> None:
        """views.publish: ``message`` as the member's App Home."""
        team, user = split_member_id(member)
        await self._call(self.client.views_publish, user_id=user, view=home_view(message), token=await self.tokens.for_team(team))

    async def _dm_channel(self, user: str, token: str) -> str:
        # conversations.open is idempotent; caching saves one call per message in a fan-out.
        if user not in self._dm_channels:
            response = await self._call(self.client.conversations_open, users=user, token=token)
            self._dm_channels[user] = response["channel"]["id"]
        return self._dm_channels[user]

    @staticmethod
    async def _call(method: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
        """Call the Web API; turn its errors into DeliveryError (permanent or retryable)."""
        try:
            return await method(**kwargs)
        except SlackApiError as exc:
            error = exc.response.get("error", "") if exc.response is not None else ""
            status = exc.response.status_code if exc.response is not None else 0
            if status == 429:
                retry_after = float(exc.response.headers.get("Retry-After", exc.response.headers.get("retry-after", 1)))
                raise DeliveryError(f"ratelimited (retry after {retry_after:g} s)", retry_after=retry_after) from None
            raise DeliveryError(f"{error or 'http ' + str(status)}", permanent=error in PERMANENT_ERRORS) from None
        except aiohttp.ClientConnectorError as exc:  # never connected: nothing was sent
            raise DeliveryError(f"Slack is unreachable ({exc.__class__.__name__})") from None
        except (TimeoutError, OSError, aiohttp.ClientError) as exc:  # may have been sent
            raise DeliveryError(f"Slack did not answer ({exc.__class__.__name__})", ambiguous=True) from None
