"""Digest aggregates computed by the database (GROUP BY), never by looping over rows in Python.

Each query returns counts and sums for a cohort, so its cost is one pass over that cohort's
signals for the weeks it reads, and what leaves the database is a few dozen numbers
whatever the cohort's size. Only check-in signals count. A closed week's aggregates are
computed from here once and then read from storage.week_figures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CTE, ColumnElement, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from nudges.estimates import Activity, Participation
from nudges.intervals import Tally
from nudges.weeks import IsoWeek
from storage.models import BehaviorSignal, Delivery, FeedbackReview, Membership, RehearsalSession

CHECKIN = "checkin"
AWAITING_REVIEW = "awaiting_review"  # nudges.review.ReviewStatus

S = BehaviorSignal


def _tally(n: int | None, total: float | None, total_sq: float | None) -> Tally:
    return Tally(int(n or 0), float(total or 0), float(total_sq or 0))


def _checkins(cohort_id: int) -> list[ColumnElement[bool]]:
    return [S.cohort_id == cohort_id, S.source == CHECKIN]


async def weekly_tallies(session: AsyncSession, cohort_id: int, weeks: Iterable[IsoWeek]) -> dict[tuple[IsoWeek, str], Tally]:
    """(week, behavior) -> count, sum and sum of squares of the answers (one per person), for
    every given week in one pass: a backlog of closed weeks is frozen in one query."""
    rows = await session.execute(
        select(S.week, S.behavior_key, func.count(), func.sum(S.value), func.sum(S.value * S.value))
        .where(*_checkins(cohort_id), S.week.in_([str(w) for w in weeks]))
        .group_by(S.week, S.behavior_key)
    )
    return {(IsoWeek.parse(week), key): _tally(n, total, sq) for week, key, n, total, sq in rows}


async def baseline_tallies(session: AsyncSession, cohort_id: int, weeks: Iterable[IsoWeek]) -> dict[str, Tally]:
    """behavior -> tally of each person's mean over the baseline weeks.

    One value per person makes ``n`` the number of distinct people, both for the interval
    (a person answering both weeks is not two independent responses) and for suppression.
    """
    per_person = (
        select(S.behavior_key, S.person_id, func.avg(S.value).label("v"))
        .where(*_checkins(cohort_id), S.week.in_([str(w) for w in weeks]))
        .group_by(S.behavior_key, S.person_id)
        .subquery()
    )
    rows = await session.execute(
        select(per_person.c.behavior_key, func.count(), func.sum(per_person.c.v), func.sum(per_person.c.v * per_person.c.v)).group_by(
            per_person.c.behavior_key
        )
    )
    return {key: _tally(n, total, sq) for key, n, total, sq in rows}


async def participation(session: AsyncSession, cohort_id: int, weeks: Iterable[IsoWeek]) -> dict[IsoWeek, Participation]:
    """week -> checklists delivered and members who answered at least one question."""
    names = [str(w) for w in weeks]
    delivered = dict(
        (
            await session.execute(
                select(Delivery.period, func.count())
                .where(Delivery.cohort_id == cohort_id, Delivery.kind == "checklist", Delivery.status == "sent", Delivery.period.in_(names))
                .group_by(Delivery.period)
            )
        ).all()
    )
    # Distinct (week, person) first, then a count per week: two hash aggregates, where
    # COUNT(DISTINCT ...) would sort every week's rows.
    people = select(S.week, S.person_id).where(*_checkins(cohort_id), S.week.in_(names)).group_by(S.week, S.person_id).subquery()
    answered: dict[str, int] = dict((await session.execute(select(people.c.week, func.count()).group_by(people.c.week))).all())
    return {IsoWeek.parse(w): Participation(delivered=delivered.get(w, 0), answered=answered.get(w, 0)) for w in names}


async def member_count(session: AsyncSession, cohort_id: int) -> int:
    """Active participants of the cohort."""
    return (
        await session.scalar(
            select(func.count()).where(Membership.cohort_id == cohort_id, Membership.role == "participant", Membership.active)
        )
    ) or 0


def _exposed(cohort_id: int, behavior: str, week: IsoWeek, min_weeks: int) -> CTE:
    """People who answered ``behavior`` in at least ``min_weeks`` weeks up to ``week``.

    Exposure is counted on the primary behavior's question: one signal per person and week,
    so a plain count is the number of weeks, and the query reads a third of the cohort's
    signals rather than all of them (see docs/measurement.md).
    """
    return (
        select(S.person_id)
        .where(*_checkins(cohort_id), S.behavior_key == behavior, S.week <= str(week))
        .group_by(S.person_id)
        .having(func.count() >= min_weeks)
        .cte("exposed")
    )


@dataclass(frozen=True)
class ExposureAggregates:
    exposed: int
    primary: Tally  # the exposed members' answers to the primary behavior in the week
    paired: tuple[Tally, Tally] | None  # (this week, baseline mean) of exposed members with both


async def exposure(
    session: AsyncSession, cohort_id: int, behavior: str, week: IsoWeek, min_weeks: int, baseline: Iterable[IsoWeek] | None = None
) -> ExposureAggregates:
    """How many members meet the minimum exposure, and the primary behavior among them only.

    With ``baseline`` weeks, also the same exposed members' this-week and baseline tallies,
    restricted to those who answered in both, for a cohort compared with its own start.
    """
    exposed = _exposed(cohort_id, behavior, week, min_weeks)
    row = (
        await session.execute(
            select(
                select(func.count()).select_from(exposed).scalar_subquery(),
                func.count(S.id),
                func.sum(S.value),
                func.sum(S.value * S.value),
            )
            .select_from(S)
            .join(exposed, exposed.c.person_id == S.person_id)
            .where(*_checkins(cohort_id), S.behavior_key == behavior, S.week == str(week))
        )
    ).one()
    paired = None
    if baseline is not None:
        paired = await _paired(session, cohort_id, behavior, week, exposed, baseline)
    return ExposureAggregates(int(row[0] or 0), _tally(row[1], row[2], row[3]), paired)


async def _paired(
    session: AsyncSession, cohort_id: int, behavior: str, week: IsoWeek, exposed: CTE, baseline: Iterable[IsoWeek]
) -> tuple[Tally, Tally] | None:
    base = (
        select(S.person_id, func.avg(S.value).label("v"))
        .where(*_checkins(cohort_id), S.behavior_key == behavior, S.week.in_([str(w) for w in baseline]))
        .group_by(S.person_id)
        .subquery()
    )
    now = aliased(BehaviorSignal)
    n, total, sq, base_total, base_sq = (
        await session.execute(
            select(func.count(), func.sum(now.value), func.sum(now.value * now.value), func.sum(base.c.v), func.sum(base.c.v * base.c.v))
            .select_from(now)
            .join(base, base.c.person_id == now.person_id)
            .join(exposed, exposed.c.person_id == now.person_id)
            .where(now.cohort_id == cohort_id, now.source == CHECKIN, now.behavior_key == behavior, now.week == str(week))
        )
    ).one()
    if not n:
        return None
    return _tally(n, total, sq), _tally(n, base_total, base_sq)


async def activity(session: AsyncSession, cohort_id: int, start: datetime, end: datetime) -> Activity:
    """Rehearsals started in [start, end) by the cohort's participants, and their AI feedback
    still awaiting a coach's review; each with the number of distinct people behind it."""
    participants = select(Membership.person_id).where(
        Membership.cohort_id == cohort_id, Membership.role == "participant", Membership.active
    )
    rehearsals, rehearsal_people = (
        await session.execute(
            select(func.count(), func.count(distinct(RehearsalSession.person_id))).where(
                RehearsalSession.person_id.in_(participants), RehearsalSession.started_at >= start, RehearsalSession.started_at < end
            )
        )
    ).one()
    awaiting, awaiting_people = (
        await session.execute(
            select(func.count(), func.count(distinct(RehearsalSession.person_id)))
            .select_from(FeedbackReview)
            .join(RehearsalSession, RehearsalSession.id == FeedbackReview.session_id)
            .where(FeedbackReview.status == AWAITING_REVIEW, RehearsalSession.person_id.in_(participants))
        )
    ).one()
    return Activity(int(rehearsals or 0), int(rehearsal_people or 0), int(awaiting or 0), int(awaiting_people or 0))
