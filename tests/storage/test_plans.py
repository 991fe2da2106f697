"""Plan versions and stored digests on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from nudges.plan import content_hash
from nudges.weeks import IsoWeek
from storage import digests, plans
from storage.db import Database
from storage.models import Cohort, DigestRecord, PlanVersion

T0 = datetime(2026, 1, 16, 16, tzinfo=UTC)
PLAN = {
    "primary_behavior": "decision_huddle",
    "method": "baseline",
    "min_exposure_weeks": 6,
    "first_analysis": "2026-03-02",
    "comparison": None,
    "checklist": [],
}


async def cohort(db: Database) -> int:
    async with db.session() as session:
        row = Cohort(key="pilot-a", name="Pilot A", starts=date(2026, 1, 5), weeks=12)
        session.add(row)
        await session.flush()
        return row.id


async def test_first_lock_freezes_version_one(db: Database) -> None:
    cid = await cohort(db)
    async with db.session() as session:
        version, created = await plans.lock(session, cid, dict(PLAN), T0)

    assert created
    assert (version.version, version.content_hash, version.changed, version.frozen_at) == (1, content_hash(PLAN), (), T0)
    assert version.plan == PLAN


async def test_locking_the_same_plan_again_changes_nothing(db: Database) -> None:
    cid = await cohort(db)
    async with db.session() as session:
        await plans.lock(session, cid, dict(PLAN), T0)
    async with db.session() as session:
        version, created = await plans.lock(session, cid, dict(PLAN), T0 + timedelta(days=7))
        rows = await session.scalar(select(func.count()).select_from(PlanVersion))

    assert not created
    assert (version.version, version.frozen_at, rows) == (1, T0, 1)


async def test_a_changed_plan_becomes_the_next_version_with_its_changed_fields(db: Database) -> None:
    cid = await cohort(db)
    later = T0 + timedelta(days=25)
    async with db.session() as session:
        await plans.lock(session, cid, dict(PLAN), T0)
    async with db.session() as session:
        version, created = await plans.lock(session, cid, {**PLAN, "primary_behavior": "escalate_24h"}, later)
        history = await plans.history(session, cid)

    assert created
    assert (version.version, version.changed, version.frozen_at) == (2, ("primary_behavior",), later)
    assert version.label() == "plan v2, changed 2026-02-10: primary behavior"
    assert [v.version for v in history] == [1, 2]


async def test_a_digest_record_is_stored_once_per_cohort_week_with_the_latest_figures(db: Database) -> None:
    cid = await cohort(db)
    week = IsoWeek(2026, 10)
    async with db.session() as session:
        await digests.save(session, cid, week, 1, {"n": 1}, T0)
    async with db.session() as session:
        await digests.save(session, cid, week, 2, {"n": 2}, T0 + timedelta(hours=1))
    async with db.session() as session:
        record = await digests.stored(session, cid, week)
        rows = await session.scalar(select(func.count()).select_from(DigestRecord))

    assert record is not None
    assert (record.plan_version, record.figures, record.created_at, rows) == (2, {"n": 2}, T0 + timedelta(hours=1), 1)
