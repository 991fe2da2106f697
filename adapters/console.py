"""A chat platform in the terminal: the demo's and the tests' stand-in for Slack and Teams."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from adapters.base import Click, DeliveryError, Profile, Recipient
from nudges.messages import Message, Section


@dataclass
class Posted:
    """A message as the console holds it: where it went and its current content."""

    to: Recipient
    message: Message
    updates: int = 0
    key: str | None = None


@dataclass
class ConsoleChat:
    """Keeps every message in memory and, with ``out``, prints them as plain text.

    ``unreachable`` lists emails that resolve to nobody, to exercise that path.
    """

    out: TextIO | None = None
    unreachable: set[str] = field(default_factory=set)
    posted: dict[str, Posted] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def resolve(self, email: str) -> str | None:
        return None if email in self.unreachable else f"console:{email}"

    async def profile(self, user_id: str) -> Profile | None:
        email = user_id.removeprefix("console:")
        return Profile((email,)) if user_id.startswith("console:") and email not in self.unreachable else None

    async def send(self, to: Recipient, message: Message, key: str | None = None) -> dict[str, Any]:
        target = to.user_id or to.channel_id
        if not target:
            raise DeliveryError("no user or channel to send to", permanent=True)
        message_id = f"m{next(self._ids)}"
        self.posted[message_id] = Posted(to, message, key=key)
        self._print(f"to {target}", message)
        return {"message_id": message_id}

    async def find_sent(self, to: Recipient, key: str) -> dict[str, Any] | None:
        for message_id, posted in self.posted.items():
            if posted.key == key and posted.to == to:
                return {"message_id": message_id}
        return None

    async def update(self, ref: dict[str, Any], message: Message) -> None:
        posted = self.posted.get(ref.get("message_id", ""))
        if posted is None:
            raise DeliveryError(f"no message {ref!r} to update", permanent=True)
        posted.message = message
        posted.updates += 1
        self._print(f"updated {ref['message_id']}", message)

    def click(self, message_id: str, block_id: str, label: str, at: datetime, event_id: str | None = None, by: str | None = None) -> Click:
        """What a press of the button ``label`` under ``block_id`` sends back; ``by`` is who
        pressed it (default: the member the message was sent to)."""
        posted = self.posted[message_id]
        for block in posted.message.blocks:
            if isinstance(block, Section) and block.block_id == block_id:
                for choice in block.choices:
                    if choice.label == label:
                        return Click(
                            platform=posted.to.platform,
                            event_id=event_id or f"{message_id}:{block_id}:{at.timestamp()}",
                            user_id=by or posted.to.user_id or "",
                            value=choice.value,
                            at=at,
                            message_ref={"message_id": message_id},
                        )
        raise KeyError(f"no button {label!r} under {block_id!r} in {message_id}")

    def _print(self, heading: str, message: Message) -> None:
        if self.out is not None:
            print(f"--- {heading}", file=self.out)
            print(message.plain(), file=self.out)
