"""The ports the application talks through, and the neutral commands adapters parse into."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from nudges.messages import Message
from nudges.rehearsal import Feedback, Rehearsal, Usage
from nudges.review import Source


@dataclass(frozen=True)
class Recipient:
    """Where a message goes: a person's DM (``user_id``) or a channel (``channel_id``)."""

    platform: str
    user_id: str | None = None
    channel_id: str | None = None


@dataclass(frozen=True)
class Click:
    """A button press, parsed from the platform's payload.

    ``event_id`` is unique per press on the platform, and identical when the platform
    delivers the same press again; it is what makes recording idempotent.
    """

    platform: str
    event_id: str
    user_id: str
    value: str
    at: datetime
    message_ref: dict[str, Any] | None = None


@dataclass(frozen=True)
class Submission:
    """A form sent back: a card's answers and note (Teams), or the note dialog (Slack).

    ``values`` are button values as in ``Click.value``; ``context`` is the value of the
    button that opened the form, when there was one.
    """

    platform: str
    event_id: str
    user_id: str
    at: datetime
    values: tuple[str, ...] = ()
    note: str | None = None
    context: str | None = None
    message_ref: dict[str, Any] | None = None


@dataclass(frozen=True)
class TextCommand:
    """A command typed by a member: `/reinforce pause` in Slack, `pause` in a Teams chat."""

    platform: str
    user_id: str
    text: str
    at: datetime
    event_id: str | None = None  # the platform's id for a typed message, to handle it once


@dataclass(frozen=True)
class Reply:
    """What the member should see next: ``update`` replaces the message they acted on,
    ``text`` is a short line only they see."""

    update: Message | None = None
    text: str | None = None


class Inbound(Protocol):
    """What adapters call with parsed platform requests; the application (bot.inbound) implements it."""

    async def click(self, click: Click) -> Reply:
        """A button press: recorded once per ``event_id``."""
        ...

    async def submit(self, submission: Submission) -> Reply:
        """A form sent back: its answers, each recorded like a click, and its note."""
        ...

    async def command(self, command: TextCommand) -> Reply:
        """A command typed where only commands are expected (a slash command, a channel mention)."""
        ...

    async def message(self, command: TextCommand) -> Reply:
        """Free text in the member's direct chat: a rehearsal turn while one runs, else a command."""
        ...

    async def home(self, platform: str, user_id: str, now: datetime) -> Message:
        """The member's own page (Slack App Home)."""
        ...

    async def account_closed(self, platform: str, user_id: str, at: datetime, reason: str) -> None:
        """The platform says member ``user_id`` is gone (deactivated, left the organisation)."""
        ...


class RehearsalPort(Protocol):
    """Plays the stakeholder and reviews the pitch: adapters.llm.OpenAiLlm, or
    adapters.rubric.RubricCoach offline."""

    source: Source

    async def reply(self, rehearsal: Rehearsal) -> tuple[str, Usage]:
        """The stakeholder's next line. Raises LlmError, whose learner_message can be shown."""
        ...

    async def feedback(self, rehearsal: Rehearsal) -> tuple[Feedback | None, Usage, Any]:
        """Checked rubric feedback, or None and the error (an LlmError); never raises for model trouble."""
        ...


class DeliveryError(Exception):
    """A send that did not go through. ``permanent`` ones (user gone, channel archived) are never retried."""

    def __init__(self, reason: str, *, permanent: bool = False, retry_after: float | None = None, ambiguous: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after
        # The request may have reached the platform (a timeout after sending): check with
        # ChatPort.find_sent before sending again.
        self.ambiguous = ambiguous


class ChannelUnreachable(DeliveryError):
    """The bot may not post in a channel, and only a person can change that (invite the bot,
    add the app to the team): permanent, and the program's admins are told how (``fix``)."""

    def __init__(self, channel: str, fix: str) -> None:
        super().__init__(fix, permanent=True)
        self.channel = channel
        self.fix = fix


LlmErrorKind = Literal["timeout", "unreachable", "unavailable", "rate_limited", "misconfigured", "rejected", "empty", "unparsed"]

_SAVED = "Your rehearsal is saved"
LEARNER_MESSAGES: dict[LlmErrorKind, str] = {
    "timeout": f"The AI coach did not answer in time. {_SAVED}: try again in a minute.",
    "unreachable": f"The AI coach cannot be reached right now. {_SAVED}: try again later.",
    "unavailable": f"The AI coach is having trouble right now. {_SAVED}: try again in a few minutes.",
    "rate_limited": f"The AI coach is busy right now. {_SAVED}: try again in a few minutes.",
    "misconfigured": f"The AI coach is not set up correctly; your program owner has to fix it. {_SAVED}.",
    "rejected": f"The AI coach could not handle this request. {_SAVED}: try rephrasing your last message.",
    "empty": "The AI coach gave an empty answer. Try again.",
    "unparsed": "The AI coach's feedback could not be read, so no scores are shown.",
}


class LlmError(Exception):
    """An LLM call (RehearsalPort) that produced nothing usable. ``detail`` is for logs, never for the learner."""

    def __init__(self, kind: LlmErrorKind, detail: str, learner_message: str | None = None) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.learner_message = learner_message or LEARNER_MESSAGES[kind]


@dataclass(frozen=True)
class Profile:
    """What a platform says about one of its members: their email addresses (lower case) and
    whether the account is still active (not deactivated, not gone from the workspace)."""

    emails: tuple[str, ...]
    active: bool = True


class ChatPort(Protocol):
    """One chat platform as the application sees it."""

    async def resolve(self, email: str) -> str | None:
        """The platform user id for an email, or None if nobody (active) has it."""
        ...

    async def profile(self, user_id: str) -> Profile | None:
        """What the platform says about member ``user_id`` (who wrote to the bot for the first
        time); None when it cannot say."""
        ...

    async def send(self, to: Recipient, message: Message, key: str | None = None) -> dict[str, Any]:
        """Send; returns a reference that ``update`` accepts. Raises DeliveryError.

        ``key`` is the outbox idempotency key; a platform that can attach it to the message
        lets ``find_sent`` find the message later.
        """
        ...

    async def find_sent(self, to: Recipient, key: str) -> dict[str, Any] | None:
        """The reference of a message sent earlier with ``key``, if the platform can tell;
        None when it was not sent or the platform cannot say (it is then sent again)."""
        ...

    async def update(self, ref: dict[str, Any], message: Message) -> None:
        """Replace a message sent earlier."""
        ...


def holds_nul(value: Any, depth: int = 0) -> bool:
    """Whether a parsed request body holds a NUL character anywhere (or nests deeper than any
    real payload). Slack and Teams never send one, and PostgreSQL refuses it in any text, even
    a lookup, so the adapters refuse such a body at the door."""
    if isinstance(value, str):
        return "\x00" in value
    if depth > 64:
        return True
    if isinstance(value, dict):
        return any(holds_nul(k, depth + 1) or holds_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_nul(v, depth + 1) for v in value)
    return False
