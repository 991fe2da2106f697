"""Check-in answers and the behavior signals they become, recorded idempotently."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from nudges.weeks import IsoWeek
from storage.db import insert
from storage.models import BehaviorSignal, CheckinAnswer, CheckinNote, Cohort, Consent, InboundEvent, Membership, MemberWeek, Person


@dataclass(frozen=True)
class Answerer:
    """A person who clicked an answer, as recording it needs to know them."""

    person_id: int
    timezone: str
    consent: str | None
    cohort_id: int | None  # the cohort asked about, where they are an active participant of it
    weeks: dict[IsoWeek, dict[str, str]]  # their answers in that cohort: week -> behavior -> value


# Each click reads its clicker with this query and writes with the two upserts below. They
# are built once, at import, their values bound when they run: building one costs more CPU
# than running it (an upsert 0.6 ms against 0.23 ms on PostgreSQL, 2026-12-08), and with them
# built per click the web process spent 7 ms of CPU per click, too much for the clicks guard
# (bench/inbound.py: 200 clicks/s on one web process).
_ANSWERER = (
    select(
        Person.id,
        Person.timezone,
        Consent.status,
        Membership.cohort_id,
        CheckinAnswer.week,
        CheckinAnswer.behavior_key,
        CheckinAnswer.value,
    )
    .outerjoin(Consent, Consent.person_id == Person.id)
    .outerjoin(
        Membership,
        (Membership.person_id == Person.id)
        & (Membership.cohort_id == select(Cohort.id).where(Cohort.key == bindparam("cohort")).scalar_subquery())
        & (Membership.role == "participant")
        & Membership.active,
    )
    .outerjoin(
        CheckinAnswer,
        (CheckinAnswer.person_id == Person.id)
        & (CheckinAnswer.cohort_id == Membership.cohort_id)
        & (CheckinAnswer.week <= bindparam("upto")),
    )
    .where(Person.platform == bindparam("platform"), Person.platform_user_id == bindparam("user_id"))
)


async def answerer(session: AsyncSession, platform: str, user_id: str, cohort_key: str, upto: IsoWeek) -> Answerer | None:
    """Who clicked, their consent, their participation in ``cohort_key`` and their answers in
    it for weeks up to ``upto``, in one query (one row per answer)."""
    rows = await session.execute(_ANSWERER, {"platform": platform, "user_id": user_id, "cohort": cohort_key, "upto": str(upto)})
    found: Answerer | None = None
    for person_id, timezone, consent, member_of, week, behavior, value in rows:
        found = found or Answerer(person_id, timezone, consent, member_of, {})
        if week is not None:
            found.weeks.setdefault(IsoWeek.parse(week), {})[behavior] = value
    return found


async def claim_events(session: AsyncSession, platform: str, event_ids: Iterable[str], now: datetime) -> set[str]:
    """Record that platform events were handled; returns the ids not seen before (retries and
    double clicks are left out)."""
    unique = sorted(set(event_ids))
    if not unique:
        return set()
    table = InboundEvent.__table__
    # RETURNING yields no row for an event already claimed.
    stmt = insert(session, table).on_conflict_do_nothing(index_elements=[table.c.platform, table.c.event_id]).returning(table.c.event_id)
    result = await session.execute(stmt, [{"platform": platform, "event_id": e, "received_at": now} for e in unique])
    return set(result.scalars().all())


async def claim_event(session: AsyncSession, platform: str, event_id: str, now: datetime) -> bool:
    return bool(await claim_events(session, platform, [event_id], now))


def _answer_upsert(insert: Callable[[Any], Any]) -> Any:
    """INSERT an answer, or replace the stored one if this click is later (and not the same click)."""
    answers = CheckinAnswer.__table__
    stmt = insert(answers)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[answers.c.person_id, answers.c.cohort_id, answers.c.week, answers.c.behavior_key],
        set_={"value": new.value, "answered_at": new.answered_at, "event_id": new.event_id},
        where=(answers.c.answered_at <= new.answered_at) & (answers.c.event_id != new.event_id),
    ).returning(answers.c.id)


def _signal_upsert(insert: Callable[[Any], Any]) -> Any:
    """INSERT an answer's signal, or replace the stored one. No condition of its own: it runs
    only after its answer won, in the same transaction, and the answer's upsert holds that
    row's lock until the commit, so signals are written in the order their answers won."""
    signals = BehaviorSignal.__table__
    stmt = insert(signals)
    return stmt.on_conflict_do_update(
        index_elements=[signals.c.person_id, signals.c.cohort_id, signals.c.behavior_key, signals.c.week, signals.c.source],
        set_={"value": stmt.excluded.value, "recorded_at": stmt.excluded.recorded_at},
    )


_UPSERT_ANSWER = {"postgresql": _answer_upsert(postgresql.insert), "sqlite": _answer_upsert(sqlite.insert)}
_UPSERT_SIGNAL = {"postgresql": _signal_upsert(postgresql.insert), "sqlite": _signal_upsert(sqlite.insert)}


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
) -> bool:
    """Store an answer and its signal, unless the stored answer is this very click or a later
    one; returns whether anything changed.

    The latest click wins by ``answered_at`` (the platform's click time), not by arrival, so
    a retried older click that arrives after a newer one changes nothing; neither does a
    repeat of the stored click (a double click, the platform's retry: the same event id).
    The database applies the rule, so web processes recording at once cannot break it.
    """
    dialect = session.get_bind().dialect.name
    key = {"person_id": person_id, "cohort_id": cohort_id, "week": str(week), "behavior_key": behavior_key}
    answer = {**key, "value": value, "answered_at": answered_at, "event_id": event_id}
    if await session.scalar(_UPSERT_ANSWER[dialect], answer) is None:  # no row back: the stored answer stays
        return False
    await session.execute(_UPSERT_SIGNAL[dialect], {**key, "value": signal, "source": "checkin", "recorded_at": answered_at})
    return True


async def answer_history(
    session: AsyncSession, pairs: Iterable[tuple[int, int]], upto: IsoWeek
) -> dict[tuple[int, int], dict[IsoWeek, dict[str, str]]]:
    """(person, cohort) -> week -> behavior -> answer, for weeks up to ``upto``, in one query."""
    pairs = set(pairs)
    if not pairs:
        return {}
    rows = await session.execute(
        select(CheckinAnswer.person_id, CheckinAnswer.cohort_id, CheckinAnswer.week, CheckinAnswer.behavior_key, CheckinAnswer.value).where(
            CheckinAnswer.person_id.in_({p for p, _c in pairs}), CheckinAnswer.week <= str(upto)
        )
    )
    history: dict[tuple[int, int], dict[IsoWeek, dict[str, str]]] = {}
    for person_id, cohort_id, week, key, value in rows:
        if (person_id, cohort_id) in pairs:
            history.setdefault((person_id, cohort_id), {}).setdefault(IsoWeek.parse(week), {})[key] = value
    return history


def streak_in(weeks: Mapping[IsoWeek, Mapping[str, str]], upto: IsoWeek, questions: int = 3) -> int:
    """Consecutive weeks, ending at ``upto``, in which every question was answered."""
    count, week = 0, upto
    while len(weeks.get(week, ())) >= questions:
        count, week = count + 1, week + -1
    return count


async def answers_for(session: AsyncSession, triples: Iterable[tuple[int, int, IsoWeek]]) -> dict[tuple[int, int, IsoWeek], dict[str, str]]:
    """(person, cohort, week) -> behavior -> answer for many members at once (one query)."""
    wanted = set(triples)
    if not wanted:
        return {}
    rows = await session.execute(
        select(CheckinAnswer.person_id, CheckinAnswer.cohort_id, CheckinAnswer.week, CheckinAnswer.behavior_key, CheckinAnswer.value).where(
            CheckinAnswer.person_id.in_({p for p, _c, _w in wanted}), CheckinAnswer.week.in_({str(w) for _p, _c, w in wanted})
        )
    )
    found: dict[tuple[int, int, IsoWeek], dict[str, str]] = {}
    for person_id, cohort_id, week, key, value in rows:
        triple = (person_id, cohort_id, IsoWeek.parse(week))
        if triple in wanted:
            found.setdefault(triple, {})[key] = value
    return found


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
    history = await answer_history(session, [(person_id, cohort_id)], upto)
    return streak_in(history.get((person_id, cohort_id), {}), upto, questions)


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
        select(CheckinNote.text).where(
            CheckinNote.person_id == person_id, CheckinNote.cohort_id == cohort_id, CheckinNote.week == str(week)
        )
    )


async def set_week_choice(
    session: AsyncSession,
    person_id: int,
    cohort_id: int,
    week: IsoWeek,
    *,
    skipped_at: datetime | None = None,
    snoozed_until: datetime | None = None,
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


async def week_states(
    session: AsyncSession, cohort_id: int, weeks: Iterable[IsoWeek]
) -> dict[tuple[int, IsoWeek], tuple[int, MemberWeek | None]]:
    """(person, week) -> (questions answered, their skip/snooze row) for a cohort, in two queries."""
    names = [str(w) for w in set(weeks)]
    counts = await session.execute(
        select(CheckinAnswer.person_id, CheckinAnswer.week, func.count())
        .where(CheckinAnswer.cohort_id == cohort_id, CheckinAnswer.week.in_(names))
        .group_by(CheckinAnswer.person_id, CheckinAnswer.week)
    )
    found: dict[tuple[int, IsoWeek], tuple[int, MemberWeek | None]] = {(p, IsoWeek.parse(w)): (n, None) for p, w, n in counts}
    choices = await session.scalars(select(MemberWeek).where(MemberWeek.cohort_id == cohort_id, MemberWeek.week.in_(names)))
    for choice in choices:
        key = (choice.person_id, IsoWeek.parse(choice.week))
        found[key] = (found.get(key, (0, None))[0], choice)
    return found


async def recent_signals(
    session: AsyncSession, cohort_id: int, person_ids: Iterable[int], since: IsoWeek
) -> dict[int, dict[str, list[float]]]:
    """person -> behavior -> check-in signal values since ``since``, oldest first."""
    ids = list(set(person_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(BehaviorSignal.person_id, BehaviorSignal.behavior_key, BehaviorSignal.value)
        .where(
            BehaviorSignal.cohort_id == cohort_id,
            BehaviorSignal.person_id.in_(ids),
            BehaviorSignal.week >= str(since),
            BehaviorSignal.source == "checkin",
        )
        .order_by(BehaviorSignal.week)
    )
    found: dict[int, dict[str, list[float]]] = {}
    for person_id, key, value in rows:
        found.setdefault(person_id, {}).setdefault(key, []).append(value)
    return found
