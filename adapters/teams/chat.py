"""Sending to Teams: proactive cards through botbuilder's CloudAdapter and the stored references.

Every outbound call goes to the serviceUrl of the conversation reference Teams gave us when
the app was installed, with a token from botbuilder's own credentials (none in local
development). Member ids are opaque "TENANT:AAD-OBJECT-ID" strings to the rest of the
application, like Slack's "TEAM:USER".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from typing import Any, Protocol

import requests
from botbuilder.core import BotAdapter, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    ChannelAccount,
    ConversationAccount,
    ConversationParameters,
    ConversationReference,
)
from botbuilder.schema.teams import TeamsChannelAccount
from botframework.connector.aio import ConnectorClient
from msrest.exceptions import ClientException, HttpOperationError

from adapters.base import ChatPort, DeliveryError, Profile, Recipient
from adapters.teams.cards import CONTENT_TYPE, to_card
from nudges.messages import Message

log = logging.getLogger(__name__)

PLATFORM = "teams"
CHANNEL_ID = "msteams"
PERSONAL, CHANNEL = "personal", "channel"
# Connector answers after which sending again cannot help: the app was removed or blocked,
# the conversation is gone, or the message itself is refused (too big, malformed). A 401
# (our token refused) is not among them: fixing the credentials makes the retries succeed.
PERMANENT_STATUSES = frozenset({400, 403, 404, 410, 413})
ROSTER_PAGE = 500
ROSTER_TTL = 300.0  # seconds


def member_id(tenant_id: str, aad_object_id: str) -> str:
    """A member as the application knows them: the AAD object id is stable across every chat
    and team (the Bot Framework's "29:..." ids are not), the tenant keeps ids apart."""
    return f"{tenant_id}:{aad_object_id}"


def channel_of(conversation_id: str) -> str:
    """A channel's own id from a conversation id, which names a thread inside it after ';'."""
    return conversation_id.split(";", 1)[0]


class Addresses(Protocol):
    """Where the adapter keeps conversation references; storage.addresses.AddressBook provides it
    (the composition root connects the two, so this package never imports storage)."""

    async def remember(
        self, tenant_id: str, target: str, scope: str, reference: dict[str, Any], now: datetime, emails: Collection[str] = ()
    ) -> str | None:
        """Keep a reference; for a member, link the program person with one of ``emails``
        (returns their email, or None)."""
        ...

    async def forget(self, tenant_id: str, target: str, scope: str, now: datetime, reason: str) -> str | None:
        """Drop a reference; a member's deliveries are paused with ``reason`` (returns their email)."""
        ...

    async def reference(self, target: str) -> dict[str, Any] | None: ...

    async def references(self, scope: str) -> list[tuple[str, dict[str, Any]]]: ...

    async def unlinked(self) -> list[tuple[str, dict[str, Any]]]:
        """Personal references that no program person is linked to yet."""
        ...


def card_activity(message: Message, activity_id: str | None = None, conversation: ConversationAccount | None = None) -> Activity:
    """The message activity carrying ``message`` as an Adaptive Card; ``summary`` is what
    Teams shows in notifications and the chat list."""
    return Activity(
        type=ActivityTypes.message,
        id=activity_id,
        conversation=conversation,
        summary=message.text[:200],
        attachments=[Attachment(content_type=CONTENT_TYPE, content=to_card(message))],
    )


def text_activity(text: str) -> Activity:
    # Plain: Teams renders nothing in it as markdown, so echoed member text stays text.
    return Activity(type=ActivityTypes.message, text=text, text_format="plain")


def connector_of(context: TurnContext) -> ConnectorClient:
    return context.turn_state[BotAdapter.BOT_CONNECTOR_CLIENT_KEY]


def teams_account(account: ChannelAccount) -> TeamsChannelAccount:
    """The Teams fields (email, UPN, AAD id) that the connector returns as extra properties."""
    return TeamsChannelAccount().deserialize(dict(account.serialize(), **(account.additional_properties or {})))


def emails_of(account: TeamsChannelAccount) -> tuple[str, ...]:
    return tuple(sorted({e.strip().lower() for e in (account.email, account.user_principal_name) if e and "@" in e}))


def delivery_error(exc: Exception) -> DeliveryError:
    """A connector failure as the outbox understands it: permanent, rate-limited or transient."""
    if isinstance(exc, HttpOperationError) and getattr(exc, "response", None) is not None:
        status = exc.response.status_code
        code = getattr(getattr(getattr(exc, "error", None), "error", None), "code", None) or f"http {status}"
        if status == 429:
            retry_after = _retry_after(exc.response.headers.get("Retry-After"))
            return DeliveryError(f"{code} (retry after {retry_after:g} s)", retry_after=retry_after)
        return DeliveryError(str(code), permanent=status in PERMANENT_STATUSES)
    if isinstance(exc, PermissionError):  # no token: AAD refused or could not be reached
        return DeliveryError(f"no Bot Framework token ({exc})")
    return DeliveryError(f"Teams did not answer ({exc.__class__.__name__})")


def _retry_after(header: str | None) -> float:
    try:
        return max(float(header or 1), 0.0)
    except ValueError:
        return 1.0


# What a connector call can raise: HTTP errors, connection errors and timeouts (msrest wraps
# requests' own), and token failures.
CONNECTOR_ERRORS = (ClientException, requests.RequestException, PermissionError, TimeoutError, OSError)


class TeamsChat(ChatPort):
    """adapters.base.ChatPort for Teams (subclassed, so mypy checks every method against the port)."""

    platform = PLATFORM

    def __init__(self, adapter: CloudAdapter, app_id: str, addresses: Addresses) -> None:
        self.adapter = adapter
        self.app_id = app_id
        self.addresses = addresses
        self._emails: dict[str, tuple[str, ...]] = {}  # member id -> emails, for unlinked references
        self._rosters: dict[str, tuple[float, dict[str, TeamsChannelAccount]]] = {}

    async def resolve(self, email: str) -> str | None:
        """The member id of whoever has ``email`` among the people who installed the app
        personally, or else among the members of the teams it is installed in (a personal
        chat is opened with them, which Teams allows for team members). None otherwise:
        Teams lets a bot write only to people who have it installed one of these ways."""
        wanted = email.strip().lower()
        for target, reference in await self.addresses.unlinked():
            if wanted in await self._emails_of_member(target, reference):
                return target
        for channel, reference in await self.addresses.references(CHANNEL):
            try:
                found = await self._open_with_team_member(reference, wanted)
            except DeliveryError as exc:  # one team the app was removed from must not hide the others
                log.info("could not look %s up in the team of %s: %s", wanted, channel, exc.reason)
                continue
            if found is not None:
                return found
        return None

    async def profile(self, user_id: str) -> Profile | None:
        """The member's email and UPN: from their personal chat's member record when the app is
        installed for them, else from the roster of a team the app is in."""
        reference = await self.addresses.reference(user_id)
        if reference is not None and (emails := await self._emails_of_member(user_id, reference)):
            return Profile(emails)
        aad = user_id.partition(":")[2]
        for channel, team in await self.addresses.references(CHANNEL):
            try:
                roster = await self._roster(ConversationReference().deserialize(team))
            except DeliveryError as exc:
                log.info("could not read the roster of the team of %s: %s", channel, exc.reason)
                continue
            for member in roster.values():
                if member.aad_object_id == aad:
                    return Profile(emails_of(member))
        return None

    async def send(self, to: Recipient, message: Message, key: str | None = None) -> dict[str, Any]:
        target = to.user_id or to.channel_id
        if not target:
            raise DeliveryError("no user or channel to send to", permanent=True)
        reference = await self.addresses.reference(target)
        if reference is None:
            where = (
                "this member has not installed the Reinforce app" if to.user_id else "the Reinforce app is not installed in this channel"
            )
            raise DeliveryError(f"{target}: {where}", permanent=True)
        ref = ConversationReference().deserialize(reference)
        conversation = ref.conversation.id
        sent: dict[str, Any] = {}

        async def post(context: TurnContext) -> None:
            response = await connector_of(context).conversations.send_to_conversation(
                conversation, card_activity(message, conversation=ref.conversation)
            )
            sent["activity"] = response.id if response is not None else None

        await self._continue(ref, post)
        return {
            "service_url": ref.service_url,
            "conversation": conversation,
            "activity": sent.get("activity"),
            "tenant": ref.conversation.tenant_id,
            "bot": ref.bot.id if ref.bot else None,
        }

    async def find_sent(self, to: Recipient, key: str) -> dict[str, Any] | None:
        """The Bot Connector cannot list what a bot sent earlier, so Teams cannot say; the
        outbox then sends again."""
        return None

    async def update(self, ref: dict[str, Any], message: Message) -> None:
        """Replace a card sent earlier; ``ref`` is what ``send`` returned."""
        if not ref.get("activity") or not ref.get("conversation") or not ref.get("service_url"):
            raise DeliveryError(f"{ref!r} does not name a Teams message", permanent=True)
        conversation = ConversationAccount(id=ref["conversation"], tenant_id=ref.get("tenant"))
        reference = ConversationReference(
            channel_id=CHANNEL_ID, service_url=ref["service_url"], conversation=conversation, bot=ChannelAccount(id=ref.get("bot"))
        )

        async def put(context: TurnContext) -> None:
            activity = card_activity(message, ref["activity"], conversation)
            await connector_of(context).conversations.update_activity(conversation.id, ref["activity"], activity)

        await self._continue(reference, put)

    async def _continue(self, reference: ConversationReference, logic: Callable[[TurnContext], Awaitable[None]]) -> None:
        """Run ``logic`` in a proactive turn on ``reference``; connector failures become DeliveryError."""
        try:
            await self.adapter.continue_conversation(reference, logic, self.app_id)
        except CONNECTOR_ERRORS as exc:
            raise delivery_error(exc) from None

    async def _roster(self, team: ConversationReference) -> dict[str, TeamsChannelAccount]:
        """email -> member of the team behind a channel reference; kept a few minutes, since
        resolving a program's members asks once per member."""
        key = channel_of(team.conversation.id)
        cached = self._rosters.get(key)
        if cached is not None and time.monotonic() - cached[0] < ROSTER_TTL:
            return cached[1]
        members: list[TeamsChannelAccount] = []

        async def read(context: TurnContext) -> None:
            members.extend(await _roster_pages(connector_of(context), key))

        await self._continue(team, read)
        roster = {email: member for member in members for email in emails_of(member)}
        self._rosters[key] = (time.monotonic(), roster)
        return roster

    async def _emails_of_member(self, target: str, reference: dict[str, Any]) -> tuple[str, ...]:
        if target not in self._emails:
            ref = ConversationReference().deserialize(reference)
            found: list[TeamsChannelAccount] = []

            async def ask(context: TurnContext) -> None:
                found.append(
                    teams_account(await connector_of(context).conversations.get_conversation_member(ref.conversation.id, ref.user.id))
                )

            try:
                await self._continue(ref, ask)
            except DeliveryError as exc:
                log.info("could not read the Teams profile of %s: %s", target, exc.reason)
                return ()
            self._emails[target] = emails_of(found[0])
        return self._emails[target]

    async def _open_with_team_member(self, reference: dict[str, Any], email: str) -> str | None:
        """Look ``email`` up in the roster of the team behind a channel reference and, when
        found, open (or reopen: Teams returns the same one) a personal chat and keep its reference."""
        team = ConversationReference().deserialize(reference)
        tenant = team.conversation.tenant_id or ""
        member = (await self._roster(team)).get(email)
        if member is None or not member.aad_object_id:
            return None
        opened: list[str] = []

        async def open_chat(context: TurnContext) -> None:
            parameters = ConversationParameters(
                is_group=False,
                bot=team.bot,
                members=[ChannelAccount(id=member.id)],
                tenant_id=tenant,
                channel_data={"tenant": {"id": tenant}},
            )
            opened.append((await connector_of(context).conversations.create_conversation(parameters)).id)

        await self._continue(team, open_chat)
        conversation_id = opened[0]
        target = member_id(tenant, member.aad_object_id)
        personal = ConversationReference(
            channel_id=CHANNEL_ID,
            service_url=team.service_url,
            conversation=ConversationAccount(id=conversation_id, conversation_type=PERSONAL, tenant_id=tenant),
            bot=team.bot,
            user=ChannelAccount(id=member.id, name=member.name, aad_object_id=member.aad_object_id),
        )
        await self.addresses.remember(tenant, target, PERSONAL, personal.serialize(), datetime.now(UTC), emails_of(member))
        return target


async def _roster_pages(client: ConnectorClient, team_id: str) -> list[TeamsChannelAccount]:
    members: list[TeamsChannelAccount] = []
    token: str | None = None
    while True:
        page = await client.conversations.get_teams_conversation_paged_members(team_id, ROSTER_PAGE, token)
        members.extend(page.members or [])
        token = page.continuation_token
        if not token:
            return members
