"""Heartbeats: each long-running process notes it is alive; the newest beat tells `doctor`
whether a worker runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import insert
from storage.models import Heartbeat

# Beats older than this are of processes long gone (a restart gets a new pid): dropped.
FORGET_AFTER = timedelta(days=7)


async def beat(session: AsyncSession, process: str, now: datetime) -> None:
    """Record that ``process`` is alive at ``now``."""
    stmt = insert(session, Heartbeat).values(process=process, at=now)
    await session.execute(stmt.on_conflict_do_update(index_elements=[Heartbeat.process], set_={"at": now}))
    await session.execute(delete(Heartbeat).where(Heartbeat.at < now - FORGET_AFTER))


async def newest(session: AsyncSession, prefix: str) -> datetime | None:
    """When a process whose name starts with ``prefix`` ("worker") last beat."""
    return await session.scalar(select(func.max(Heartbeat.at)).where(Heartbeat.process.startswith(prefix, autoescape=True)))
