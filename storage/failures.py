"""Deliveries that failed for good, grouped for people who must act on them (`reinforce doctor`, `program show`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Delivery

__all__ = ["ChannelFailure", "FailureGroup", "failing_channels", "recent"]


@dataclass(frozen=True)
class ChannelFailure:
    """A channel whose latest delivery failed, and why."""

    platform: str
    channel: str
    kind: str
    reason: str


@dataclass(frozen=True)
class FailureGroup:
    """Failed deliveries of one kind that failed for one reason."""

    kind: str
    reason: str
    count: int


async def failing_channels(session: AsyncSession) -> list[ChannelFailure]:
    """Channels (sponsor, review) whose latest finished delivery failed: a later post that got
    through means whatever stood in the way was fixed."""
    finished = Delivery.status.in_(("sent", "failed"))
    latest = (
        select(func.max(Delivery.id)).where(Delivery.target.is_not(None), finished).group_by(Delivery.platform, Delivery.target)
    ).scalar_subquery()
    rows = await session.execute(
        select(Delivery.platform, Delivery.target, Delivery.kind, Delivery.last_error)
        .where(Delivery.id.in_(latest), Delivery.status == "failed")
        .order_by(Delivery.platform, Delivery.target)
    )
    return [ChannelFailure(platform or "", target or "", kind, reason or "no reason recorded") for platform, target, kind, reason in rows]


async def recent(session: AsyncSession, since: datetime, limit: int = 5) -> tuple[int, list[FailureGroup]]:
    """How many deliveries due since ``since`` failed, and the ``limit`` most common (kind, reason)."""
    count = func.count().label("n")
    rows = await session.execute(
        select(Delivery.kind, Delivery.last_error, count)
        .where(Delivery.status == "failed", Delivery.due_at >= since)
        .group_by(Delivery.kind, Delivery.last_error)
        .order_by(count.desc(), Delivery.kind)
    )
    groups = [FailureGroup(kind, reason or "no reason recorded", n) for kind, reason, n in rows]
    return sum(g.count for g in groups), groups[:limit]
