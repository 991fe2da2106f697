"""Telling the program's admins, once per channel, that the bot cannot post in a channel and who must do what."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.base import ChannelUnreachable
from nudges.messages import Header, Message, Section
from storage import accounts, outbox, people
from storage.db import Database

__all__ = ["KIND", "notice_message", "tell_admins"]

KIND = "admin_notice"


async def tell_admins(db: Database, platform: str, problem: ChannelUnreachable, now: datetime) -> int:
    """Queue a direct message to each admin, on the platform they are reachable on; the outbox
    key names the channel, so however many posts fail there each admin is told once. Returns
    how many messages this call queued."""
    text = (
        f"Reinforce cannot post in the {platform.capitalize()} channel {problem.channel}: {problem.fix}. "
        "Until then the digests and review posts meant for it fail; `reinforce doctor` lists them."
    )
    async with db.session() as session:
        rows: list[dict[str, Any]] = []
        for admin in await people.with_role(session, "admin"):
            where = await accounts.reachable_on(session, admin)
            if where is None:  # linked nowhere: `program load` and `doctor` report them
                continue
            rows.append(
                {
                    "idempotency_key": f"channel_unreachable:{platform}:{problem.channel}:{admin.id}",
                    "kind": KIND,
                    "period": "once",
                    "due_at": now,
                    "person_id": admin.id,
                    "platform": where,
                    "payload": {"text": text},
                }
            )
        return len(await outbox.enqueue_many(session, rows))


def notice_message(payload: dict[str, Any]) -> Message:
    """The direct message an admin gets."""
    text = str(payload["text"])
    return Message(text, (Header("A channel Reinforce cannot post in"), Section(text)))
