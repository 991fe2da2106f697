"""Recording answers: idempotent on the platform's event id, the latest click wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import StatementError

from nudges.weeks import IsoWeek
from storage import checkins
from storage.db import Database
from storage.models import BehaviorSignal, CheckinAnswer, Cohort, InboundEvent, Person

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WEEK = IsoWeek(2026, 2)


async def _person_and_cohort(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        person = Person(email="ana@example.com", timezone="Europe/Lisbon", platform="slack", created_at=T0)
        cohort = Cohort(key="pilot-a", name="Pilot A", starts=T0.date(), weeks=12)
        session.add_all([person, cohort])
        await session.flush()
        return person.id, cohort.id


async def _answer(
    db: Database, person: int, cohort: int, value: str, signal: float, at: datetime, event: str, behavior: str = "decision_huddle"
) -> bool:
    async with db.session() as session:
        if not await checkins.claim_event(session, "slack", event, at):
            return False
        await checkins.save_answers(session, [checkins.Answer(person, cohort, WEEK, behavior, value, signal, at, event)])
        return True


def _huddle(person: int, cohort: int, value: str, at: datetime, event: str) -> checkins.Answer:
    return checkins.Answer(person, cohort, WEEK, "decision_huddle", value, {"yes": 1.0, "partly": 0.5, "no": 0.0}[value], at, event)


async def _stored(db: Database) -> tuple[list[tuple[str, str]], list[float]]:
    async with db.session() as session:
        answers = (
            await session.execute(select(CheckinAnswer.behavior_key, CheckinAnswer.value).order_by(CheckinAnswer.behavior_key))
        ).all()
        signals = (await session.scalars(select(BehaviorSignal.value).order_by(BehaviorSignal.behavior_key))).all()
    return [tuple(a) for a in answers], list(signals)


async def test_same_event_delivered_three_times_records_one_answer(db: Database) -> None:
    person, cohort = await _person_and_cohort(db)
    results = [await _answer(db, person, cohort, "yes", 1.0, T0, "evt-1") for _ in range(3)]
    assert results == [True, False, False]
    assert await _stored(db) == ([("decision_huddle", "yes")], [1.0])
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(InboundEvent)) == 1


async def test_last_answer_wins_for_the_same_question_and_week(db: Database) -> None:
    person, cohort = await _person_and_cohort(db)
    await _answer(db, person, cohort, "no", 0.0, T0, "evt-1")
    await _answer(db, person, cohort, "partly", 0.5, T0 + timedelta(minutes=2), "evt-2")
    assert await _stored(db) == ([("decision_huddle", "partly")], [0.5])


async def test_an_older_click_arriving_late_does_not_overwrite_a_newer_one(db: Database) -> None:
    person, cohort = await _person_and_cohort(db)
    await _answer(db, person, cohort, "yes", 1.0, T0 + timedelta(minutes=5), "evt-new")
    assert await _answer(db, person, cohort, "no", 0.0, T0, "evt-old")
    assert await _stored(db) == ([("decision_huddle", "yes")], [1.0])


async def test_saving_an_answer_says_whether_it_changed_what_is_stored(db: Database) -> None:
    person, cohort = await _person_and_cohort(db)

    async def save(value: str, at: datetime, event: str) -> bool:
        async with db.session() as session:
            (changed,) = await checkins.save_answers(session, [_huddle(person, cohort, value, at, event)])
            return changed

    assert await save("no", T0, "first")
    assert not await save("no", T0, "first")  # the platform's retry of the stored click
    assert not await save("yes", T0 - timedelta(seconds=1), "older")
    assert await save("partly", T0 + timedelta(seconds=1), "newer")
    assert await _stored(db) == ([("decision_huddle", "partly")], [0.5])


@pytest.mark.parametrize(
    ("order", "changed", "kept"),
    [(("older", "newer"), [True, True], "partly"), (("newer", "older"), [True, False], "partly")],
    ids=["older-first", "newer-first"],
)
async def test_one_question_clicked_twice_in_one_save_keeps_the_later_click(
    db: Database, order: tuple[str, str], changed: list[bool], kept: str
) -> None:
    person, cohort = await _person_and_cohort(db)
    clicks = {
        "older": _huddle(person, cohort, "no", T0, "older"),
        "newer": _huddle(person, cohort, "partly", T0 + timedelta(seconds=1), "newer"),
    }
    other = checkins.Answer(person, cohort, WEEK, "escalate_24h", "yes", 1.0, T0, "other")
    async with db.session() as session:
        assert await checkins.save_answers(session, [clicks[order[0]], other, clicks[order[1]]]) == [changed[0], True, changed[1]]
    assert await _stored(db) == ([("decision_huddle", kept), ("escalate_24h", "yes")], [0.5, 1.0])


async def test_click_times_are_compared_as_instants_whatever_their_zone(db: Database) -> None:
    person, cohort = await _person_and_cohort(db)
    await _answer(db, person, cohort, "yes", 1.0, T0, "at-0900-utc")
    # 08:30 in Chicago is 14:30 UTC: later, though its clock reads earlier.
    assert await _answer(db, person, cohort, "no", 0.0, datetime(2026, 1, 5, 8, 30, tzinfo=ZoneInfo("America/Chicago")), "chicago")
    assert await _stored(db) == ([("decision_huddle", "no")], [0.0])
    async with db.session() as session:
        assert await session.scalar(select(CheckinAnswer.answered_at)) == datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


async def test_an_answer_with_a_naive_click_time_is_refused(db: Database) -> None:
    person, cohort = await _person_and_cohort(db)
    with pytest.raises(StatementError, match="naive datetime"):
        await _answer(db, person, cohort, "yes", 1.0, datetime(2026, 1, 5, 9, 0), "naive")
    assert await _stored(db) == ([], [])


async def test_answers_to_different_questions_are_kept_apart(db: Database) -> None:
    person, cohort = await _person_and_cohort(db)
    await _answer(db, person, cohort, "yes", 1.0, T0, "e1", behavior="decision_huddle")
    await _answer(db, person, cohort, "no", 0.0, T0, "e2", behavior="escalate_24h")
    async with db.session() as session:
        assert await checkins.answers_for_week(session, person, cohort, WEEK) == {"decision_huddle": "yes", "escalate_24h": "no"}


async def test_streak_counts_consecutive_complete_weeks(db: Database) -> None:
    person, cohort = await _person_and_cohort(db)
    async with db.session() as session:
        for offset, answered in ((0, 3), (1, 3), (2, 2), (3, 3), (4, 3)):
            week = WEEK + offset
            for q in range(answered):
                await checkins.save_answers(
                    session, [checkins.Answer(person, cohort, week, f"b{q}", "yes", 1.0, T0 + timedelta(weeks=offset), f"{offset}-{q}")]
                )
    async with db.session() as session:
        assert await checkins.streak(session, person, cohort, WEEK + 4) == 2
        assert await checkins.streak(session, person, cohort, WEEK + 2) == 0
        assert await checkins.streak(session, person, cohort, WEEK + 1) == 2
