"""Heartbeats: the newest beat of a kind of process, and old ones forgotten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from storage import heartbeats
from storage.db import Database
from storage.models import Heartbeat

T0 = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


async def test_the_newest_beat_of_a_kind_of_process_is_what_counts(db: Database) -> None:
    async with db.session() as session:
        assert await heartbeats.newest(session, "worker") is None
        await heartbeats.beat(session, "worker@a:1", T0)
        await heartbeats.beat(session, "worker@b:2", T0 + timedelta(minutes=1))
        await heartbeats.beat(session, "worker@a:1", T0 + timedelta(minutes=2))  # the same process again: one row
    async with db.session() as session:
        assert await heartbeats.newest(session, "worker") == T0 + timedelta(minutes=2)
        assert await heartbeats.newest(session, "web") is None
        assert await session.scalar(select(func.count()).select_from(Heartbeat)) == 2


async def test_beats_of_processes_gone_for_a_week_are_forgotten(db: Database) -> None:
    async with db.session() as session:
        await heartbeats.beat(session, "worker@old:1", T0)
        await heartbeats.beat(session, "worker@new:2", T0 + heartbeats.FORGET_AFTER + timedelta(seconds=1))
    async with db.session() as session:
        assert (await session.scalars(select(Heartbeat.process))).all() == ["worker@new:2"]
