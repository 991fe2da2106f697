"""The ports the application talks through, and the neutral commands adapters parse into."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from nudges.messages import Message


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


class DeliveryError(Exception):
    """A send that did not go through. ``permanent`` ones (user gone, channel archived) are never retried."""

    def __init__(self, reason: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after


class ChatPort(Protocol):
    """One chat platform as the application sees it."""

    async def resolve(self, email: str) -> str | None:
        """The platform user id for an email, or None if nobody has it."""
        ...

    async def send(self, to: Recipient, message: Message) -> dict[str, Any]:
        """Send; returns a reference that ``update`` accepts. Raises DeliveryError."""
        ...

    async def update(self, ref: dict[str, Any], message: Message) -> None:
        """Replace a message sent earlier."""
        ...
