"""The Teams bot: a botbuilder ActivityHandler that records installs and turns card submits and
typed commands into the neutral commands of adapters.base.

Inbound work is done before Teams gets its answer (Teams waits up to 15 s), so an answer
that Teams saw accepted is stored, and the card is updated in place before the reply.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

from botbuilder.core import ActivityHandler, TurnContext
from botbuilder.core.teams import TeamsInfo
from botbuilder.schema import Activity, ConversationReference, ErrorResponseException
from botbuilder.schema.teams import TeamsChannelData

from adapters.base import Click, Inbound, Reply, Submission, TextCommand
from adapters.teams.cards import CHECKLIST, parse_submit
from adapters.teams.chat import (
    CHANNEL,
    PERSONAL,
    PLATFORM,
    Addresses,
    card_activity,
    channel_of,
    connector_of,
    emails_of,
    member_id,
    teams_account,
    text_activity,
)

log = logging.getLogger(__name__)

# Activity ids longer than this (none seen in Teams) are hashed to fit the event id column.
MAX_EVENT_ID = 150
REMOVED_PERSONAL = "the member removed the Reinforce app in Teams"
REMOVED_CHANNEL = "the Reinforce app was removed from the team"


def _tenant(activity: Activity) -> str:
    if activity.conversation is not None and activity.conversation.tenant_id:
        return str(activity.conversation.tenant_id)
    data = TeamsChannelData().deserialize(activity.channel_data or {})
    return data.tenant.id if data.tenant and data.tenant.id else ""


def _sender(activity: Activity) -> str | None:
    """The sender's member id, or None when Teams did not say who it is."""
    sender = activity.from_property
    if sender is None or not sender.aad_object_id:
        return None
    return member_id(_tenant(activity), sender.aad_object_id)


def _personal(activity: Activity) -> bool:
    return activity.conversation is not None and (activity.conversation.conversation_type or PERSONAL) == PERSONAL


def _at(activity: Activity) -> datetime:
    stamp = activity.timestamp
    return stamp.astimezone(UTC) if isinstance(stamp, datetime) and stamp.tzinfo else datetime.now(UTC)


def event_id(activity: Activity) -> str:
    """Unique per submit, identical when the Bot Framework delivers the same activity again
    (it keeps the activity id on retries)."""
    if activity.id and len(activity.id) <= MAX_EVENT_ID:
        return str(activity.id)
    sender = activity.from_property.id if activity.from_property else None
    payload = json.dumps([sender, activity.reply_to_id, activity.id, activity.value], sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


class ReinforceBot(ActivityHandler):
    """Installs and removals keep the conversation references; messages go to Inbound."""

    def __init__(self, inbound: Inbound, addresses: Addresses) -> None:
        self.inbound = inbound
        self.addresses = addresses

    async def on_conversation_update_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        bot = activity.recipient.id if activity.recipient else None
        if any(m.id == bot for m in activity.members_added or []):
            await self._installed(turn_context)
        elif any(m.id == bot for m in activity.members_removed or []):
            await self._removed(turn_context)

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        await self._installed(turn_context)

    async def on_installation_update_remove(self, turn_context: TurnContext) -> None:
        await self._removed(turn_context)

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        user_id = _sender(activity)
        if user_id is None:
            log.warning("Teams message without the sender's AAD object id; ignored")
            return
        if activity.value is not None:
            await self._submit(turn_context, user_id)
        else:
            await self._command(turn_context, user_id)

    async def _installed(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        tenant, now = _tenant(activity), _at(activity)
        reference = _reference(activity, tenant)
        if _personal(activity):
            # The profile (email, UPN) is what matches the member to a person of the program.
            account = teams_account(await TeamsInfo.get_member(turn_context, activity.from_property.id))
            aad = account.aad_object_id or activity.from_property.aad_object_id
            if not aad:
                log.warning("Teams install without an AAD object id; not recorded")
                return
            target = member_id(tenant, aad)
            email = await self.addresses.remember(tenant, target, PERSONAL, reference.serialize(), now, emails_of(account))
            log.info("Teams app installed by %s (%s)", target, "program member" if email else "not in the program")
        else:
            target = channel_of(activity.conversation.id)
            reference.conversation.id = target
            await self.addresses.remember(tenant, target, CHANNEL, reference.serialize(), now)
            log.info("Teams app installed in %s", target)

    async def _removed(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        tenant, now = _tenant(activity), _at(activity)
        if _personal(activity):
            target = _sender(activity)
            if target is None:
                log.warning("Teams uninstall without the member's AAD object id; the reference stays")
                return
            await self.addresses.forget(tenant, target, PERSONAL, now, REMOVED_PERSONAL)
        else:
            target = channel_of(activity.conversation.id)
            await self.addresses.forget(tenant, target, CHANNEL, now, REMOVED_CHANNEL)
        log.info("Teams app removed from %s", target)

    async def _submit(self, turn_context: TurnContext, user_id: str) -> None:
        activity = turn_context.activity
        submit = parse_submit(activity.value)
        message_ref = _message_ref(activity)
        if submit is None:
            await self._show(turn_context, Reply(text="That card is not from a current Reinforce message."))
            return
        if submit.kind == CHECKLIST:
            if not submit.values and not (submit.note or "").strip():
                await self._show(turn_context, Reply(text="Choose an answer or write a note, then press Submit."))
                return
            submission = Submission(
                PLATFORM, event_id(activity), user_id, _at(activity), submit.values, submit.note, submit.context, message_ref
            )
            reply = await self.inbound.submit(submission)
        else:
            reply = await self.inbound.click(Click(PLATFORM, event_id(activity), user_id, submit.value or "", _at(activity), message_ref))
        await self._show(turn_context, reply)

    async def _command(self, turn_context: TurnContext, user_id: str) -> None:
        activity = turn_context.activity
        tenant = _tenant(activity)
        reference = _reference(activity, tenant)
        # Teams may move a conversation to another serviceUrl, and the latest message has the
        # current one. In a channel, a mention is also how a channel other than the team's
        # General one becomes reachable (the install event names only General).
        if _personal(activity):
            await self.addresses.remember(tenant, user_id, PERSONAL, reference.serialize(), _at(activity))
        else:
            reference.conversation.id = channel_of(reference.conversation.id)
            await self.addresses.remember(tenant, reference.conversation.id, CHANNEL, reference.serialize(), _at(activity))
        # In a channel the text starts with the bot's @mention.
        text = (TurnContext.remove_recipient_mention(activity) or "").strip()
        # Once per activity, however often Teams delivers it: the application claims its id with
        # what the command stores, before Teams gets its answer (an error is a 500, which Teams retries).
        command = TextCommand(PLATFORM, user_id, text, _at(activity), event_id=event_id(activity))
        if _personal(activity):
            # The personal chat is where a rehearsal runs: there a line is the leader's next
            # turn, and a command only otherwise.
            reply = await self.inbound.message(command)
        else:
            reply = await self.inbound.command(command)
        await self._show(turn_context, reply)

    async def _show(self, turn_context: TurnContext, reply: Reply) -> None:
        """Update the card the member acted on, and/or answer them with a line of text."""
        activity = turn_context.activity
        if reply.update is not None and activity.reply_to_id:
            conversation = activity.conversation
            card = card_activity(reply.update, activity.reply_to_id, conversation)
            try:
                await connector_of(turn_context).conversations.update_activity(conversation.id, activity.reply_to_id, card)
            except ErrorResponseException as exc:  # what was done is stored; only the card stays as it was
                log.warning(
                    "Teams: could not update the card the member acted on (%s)",
                    exc.error.error.code if exc.error and exc.error.error else exc,
                )
        if reply.text:
            await turn_context.send_activity(text_activity(reply.text))


def _reference(activity: Activity, tenant: str) -> ConversationReference:
    """The conversation's reference for proactive messages: no activity id (it names the
    conversation, not this event), and the tenant, which Teams wants on proactive sends but
    sends as "tenantId" where the Bot Framework schema reads "tenantID"."""
    reference = TurnContext.get_conversation_reference(activity)
    reference.activity_id = None
    reference.conversation.tenant_id = tenant or None
    return reference


def _message_ref(activity: Activity) -> dict[str, Any] | None:
    """Where the card that was acted on lives, in the shape TeamsChat.send returns."""
    if not activity.reply_to_id or activity.conversation is None:
        return None
    return {
        "service_url": activity.service_url,
        "conversation": activity.conversation.id,
        "activity": activity.reply_to_id,
        "tenant": _tenant(activity) or None,
        "bot": activity.recipient.id if activity.recipient else None,
    }
