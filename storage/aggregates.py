"""Digest aggregates computed by the database (GROUP BY), never by looping over rows in Python."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nudges.digest import Participation, Tally
from nudges.weeks import IsoWeek
from storage.models import BehaviorSignal, CheckinAnswer, Delivery


async def signal_tallies(session: AsyncSession, cohort_id: int, weeks: Iterable[IsoWeek]) -> dict[tuple[str, IsoWeek], Tally]:
    """(behavior, week) -> count, sum and sum of squares of check-in signals."""
    rows = await session.execute(
        select(
            BehaviorSignal.behavior_key,
            BehaviorSignal.week,
            func.count(),
            func.sum(BehaviorSignal.value),
            func.sum(BehaviorSignal.value * BehaviorSignal.value),
        )
        .where(BehaviorSignal.cohort_id == cohort_id, BehaviorSignal.source == "checkin", BehaviorSignal.week.in_([str(w) for w in weeks]))
        .group_by(BehaviorSignal.behavior_key, BehaviorSignal.week)
    )
    return {(key, IsoWeek.parse(week)): Tally(n, float(total), float(total_sq)) for key, week, n, total, total_sq in rows}


async def participation(session: AsyncSession, cohort_id: int, week: IsoWeek) -> Participation:
    """Checklists delivered in a week against members who answered at least one question."""
    delivered = await session.scalar(
        select(func.count()).where(Delivery.cohort_id == cohort_id, Delivery.kind == "checklist", Delivery.period == str(week), Delivery.status == "sent")
    )
    answered = await session.scalar(
        select(func.count(distinct(CheckinAnswer.person_id))).where(CheckinAnswer.cohort_id == cohort_id, CheckinAnswer.week == str(week))
    )
    return Participation(delivered=delivered or 0, answered=answered or 0)
