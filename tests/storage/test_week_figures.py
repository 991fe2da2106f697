"""Stored figures of closed weeks on SQLite and PostgreSQL: computed once, read back unchanged, one set under two writers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import func, insert, select

from nudges.intervals import Tally
from nudges.weeks import IsoWeek
from storage import week_figures
from storage.db import Database
from storage.models import BehaviorSignal, WeekFigure
from storage.week_figures import Wanted
from tests.storage.test_aggregates import ESCALATE, HUDDLE, W02, W03, W04, seed

NOW = datetime(2026, 2, 1, tzinfo=UTC)
WANTED = Wanted(week=W04, first=W02, behaviors=(HUDDLE, ESCALATE), exposure=(HUDDLE, 2), baseline=(W02, W03), paired=True)


async def figures_of(db: Database, cohort_id: int, wanted: Wanted = WANTED) -> week_figures.Figures:
    async with db.session() as session:
        return await week_figures.closed_figures(session, cohort_id, wanted, NOW)


async def stored_rows(db: Database) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(WeekFigure)) or 0


async def test_the_first_read_stores_every_figure_a_digest_needs(db: Database) -> None:
    a, _b = await seed(db)

    found = await figures_of(db, a)

    # the same numbers the aggregates compute from the signals (tests/storage/test_aggregates.py)
    assert found[(W04, week_figures.answers(HUDDLE))] == Tally(5, 3.5, 3.25)
    assert found[(W03, week_figures.answers(HUDDLE))] == Tally(3, 2.0, 2.0)
    assert found[(W02, week_figures.answers(ESCALATE))] == Tally(1, 1.0, 1.0)
    assert (found[(W04, week_figures.DELIVERED)].n, found[(W04, week_figures.ANSWERED)].n) == (5, 6)
    assert found[(W03, week_figures.baseline(HUDDLE))] == Tally(4, 2.0, 1.5)
    assert found[(W04, week_figures.exposed(HUDDLE, 2))].n == 4
    assert found[(W04, week_figures.exposed_answers(HUDDLE, 2))] == Tally(4, 2.5, 2.25)
    assert found[(W04, week_figures.paired(HUDDLE, 2))] == Tally(4, 2.5, 2.25)
    assert found[(W04, week_figures.paired_baseline(HUDDLE, 2))] == Tally(4, 2.0, 1.5)
    assert await stored_rows(db) == len(found)


async def test_a_week_with_no_answers_is_stored_as_zeros(db: Database) -> None:
    _a, b = await seed(db)

    found = await figures_of(db, b, Wanted(week=W03, first=W02, behaviors=(HUDDLE,)))

    assert found[(W02, week_figures.answers(HUDDLE))] == Tally()
    assert found[(W03, week_figures.ANSWERED)] == Tally()
    assert await figures_of(db, b, Wanted(week=W03, first=W02, behaviors=(HUDDLE,))) == found


async def test_a_signal_arriving_after_the_figures_were_stored_changes_none_of_them(db: Database) -> None:
    a, _b = await seed(db)
    before = await figures_of(db, a)
    async with db.session() as session:  # a late answer for W04 that reached the signals anyway
        await session.execute(
            insert(BehaviorSignal),
            [dict(person_id=6, cohort_id=a, behavior_key=HUDDLE, week=str(W04), value=1.0, source="checkin", recorded_at=NOW)],
        )

    assert await figures_of(db, a) == before


async def test_a_later_week_adds_its_own_figures_and_keeps_the_earlier_ones(db: Database) -> None:
    a, _b = await seed(db)
    earlier = await figures_of(db, a, Wanted(week=W03, first=W02, behaviors=(HUDDLE, ESCALATE), exposure=(HUDDLE, 2)))

    later = await figures_of(db, a)

    assert {key: later[key] for key in earlier} == earlier
    assert later[(W04, week_figures.exposed(HUDDLE, 2))].n == 4


async def test_two_processes_freezing_the_same_weeks_at_once_store_one_set_and_read_the_same(db: Database, db_url: str) -> None:
    a, _b = await seed(db)
    other = Database(db_url)  # a second process: its own engine and connections
    try:
        first, second = await asyncio.gather(figures_of(db, a), figures_of(other, a))
    finally:
        await other.close()

    assert first == second
    assert await stored_rows(db) == len(first)


async def test_a_week_before_the_first_reads_only_that_week(db: Database) -> None:
    a, _b = await seed(db)

    found = await figures_of(db, a, Wanted(week=IsoWeek(2026, 1), first=W02, behaviors=(HUDDLE,)))

    assert {week for week, _figure in found} == {IsoWeek(2026, 1)}
