"""Check-in answers and the behavior signals they become, recorded idempotently."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nudges.weeks import IsoWeek
from storage.db import insert
from storage.models import BehaviorSignal, CheckinAnswer, CheckinNote, InboundEvent, MemberWeek


async def claim_event(session: AsyncSession, platform: str, event_id: str, now: datetime) -> bool:
    """Record that a platform event was handled; False if it already was (a retry or double click)."""
    stmt = insert(session, InboundEvent).values(platform=platform, event_id=event_id, received_at=now)
    stmt = stmt.on_conflict_do_nothing(index_elements=[InboundEvent.platform, InboundEvent.event_id]).returning(InboundEvent.id)
    # RETURNING yields no row on conflict; rowcount is not reliable across async drivers.
    return (await session.execute(stmt)).first() is not None


async def save_answer(
    session: AsyncSession,
    *,
    person_id: int,
    cohort_id: int,
    week: IsoWeek,
    behavior_key: str,
    value: str,
    signal: float,
    answered_at: datetime,
    event_id: str,
) -> None:
    """Store an answer and its signal; an answer older than the stored one changes nothing.

    Comparing ``answered_at`` (the platform's click time) rather than arrival order keeps
    "last answer wins" true when a retried old click arrives after a newer one.
    """
    answer = insert(session, CheckinAnswer).values(
        person_id=person_id, cohort_id=cohort_id, week=str(week), behavior_key=behavior_key,
        value=value, answered_at=answered_at, event_id=event_id,
    )
    await session.execute(
        answer.on_conflict_do_update(
            index_elements=[CheckinAnswer.person_id, CheckinAnswer.cohort_id, CheckinAnswer.week, CheckinAnswer.behavior_key],
            set_={"value": answer.excluded.value, "answered_at": answer.excluded.answered_at, "event_id": answer.excluded.event_id},
            where=CheckinAnswer.answered_at <= answer.excluded.answered_at,
        )
    )
    sig = insert(session, BehaviorSignal).values(
        person_id=person_id, cohort_id=cohort_id, behavior_key=behavior_key, week=str(week),
        value=signal, source="checkin", recorded_at=answered_at,
    )
    await session.execute(
        sig.on_conflict_do_update(
            index_elements=[BehaviorSignal.person_id, BehaviorSignal.cohort_id, BehaviorSignal.behavior_key, BehaviorSignal.week, BehaviorSignal.source],
            set_={"value": sig.excluded.value, "recorded_at": sig.excluded.recorded_at},
            where=BehaviorSignal.recorded_at <= sig.excluded.recorded_at,
        )
    )


async def answers_for_week(session: AsyncSession, person_id: int, cohort_id: int, week: IsoWeek) -> dict[str, str]:
    """behavior key -> stored value for one member's week."""
    rows = await session.execute(
        select(CheckinAnswer.behavior_key, CheckinAnswer.value).where(
            CheckinAnswer.person_id == person_id, CheckinAnswer.cohort_id == cohort_id, CheckinAnswer.week == str(week)
        )
    )
    return {key: value for key, value in rows}


async def streak(session: AsyncSession, person_id: int, cohort_id: int, upto: IsoWeek, questions: int = 3) -> int:
    """Consecutive weeks, ending at ``upto``, in which the member answered every question."""
    rows = await session.scalars(
        select(CheckinAnswer.week)
        .where(CheckinAnswer.person_id == person_id, CheckinAnswer.cohort_id == cohort_id, CheckinAnswer.week <= str(upto))
        .group_by(CheckinAnswer.week)
        .having(func.count() >= questions)
    )
    complete = {IsoWeek.parse(w) for w in rows}
    count, week = 0, upto
    while week in complete:
        count, week = count + 1, week + -1
    return count


async def save_note(session: AsyncSession, person_id: int, cohort_id: int, week: IsoWeek, text: str, now: datetime) -> None:
    """The member's note for a week; a later note replaces the earlier one."""
    stmt = insert(session, CheckinNote).values(person_id=person_id, cohort_id=cohort_id, week=str(week), text=text, written_at=now)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[CheckinNote.person_id, CheckinNote.cohort_id, CheckinNote.week],
            set_={"text": stmt.excluded.text, "written_at": stmt.excluded.written_at},
        )
    )


async def note_for_week(session: AsyncSession, person_id: int, cohort_id: int, week: IsoWeek) -> str | None:
    return await session.scalar(
        select(CheckinNote.text).where(CheckinNote.person_id == person_id, CheckinNote.cohort_id == cohort_id, CheckinNote.week == str(week))
    )


async def set_week_choice(
    session: AsyncSession, person_id: int, cohort_id: int, week: IsoWeek, *, skipped_at: datetime | None = None, snoozed_until: datetime | None = None
) -> None:
    """Record that a member skipped a week or snoozed its messages (whichever is given)."""
    values = {k: v for k, v in (("skipped_at", skipped_at), ("snoozed_until", snoozed_until)) if v is not None}
    stmt = insert(session, MemberWeek).values(person_id=person_id, cohort_id=cohort_id, week=str(week), **values)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=[MemberWeek.person_id, MemberWeek.cohort_id, MemberWeek.week], set_=values)
    )


async def week_choice(session: AsyncSession, person_id: int, cohort_id: int, week: IsoWeek) -> MemberWeek | None:
    return await session.scalar(
        select(MemberWeek).where(MemberWeek.person_id == person_id, MemberWeek.cohort_id == cohort_id, MemberWeek.week == str(week))
    )


async def recent_weeks(session: AsyncSession, person_id: int, cohort_id: int, weeks: list[IsoWeek]) -> dict[tuple[str, IsoWeek], str]:
    """(behavior, week) -> answer for the given weeks, for the member's own history view."""
    rows = await session.execute(
        select(CheckinAnswer.behavior_key, CheckinAnswer.week, CheckinAnswer.value).where(
            CheckinAnswer.person_id == person_id, CheckinAnswer.cohort_id == cohort_id, CheckinAnswer.week.in_([str(w) for w in weeks])
        )
    )
    return {(key, IsoWeek.parse(week)): value for key, week, value in rows}
