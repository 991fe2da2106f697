"""Check-in answers and the behavior signals they become, recorded idempotently."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from nudges.weeks import IsoWeek
from storage.db import Database, among, built_once, insert, json_time
from storage.models import BehaviorSignal, CheckinAnswer, CheckinNote, Cohort, Consent, InboundEvent, Membership, MemberWeek, Person


@dataclass(frozen=True)
class AnswerRow:
    person_id: int
    cohort_id: int
    week: IsoWeek
    behavior_key: str
    value: str
    signal: float
    answered_at: datetime
    event_id: str

    @property
    def key(self) -> tuple[int, int, IsoWeek, str]:
        return (self.person_id, self.cohort_id, self.week, self.behavior_key)


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    value: str
    answered_at: datetime
    event_id: str


@dataclass(frozen=True)
class Answerer:
    """A person who clicked an answer: what recording it needs to know, and their answers so far."""

    person_id: int
    timezone: str
    consent: str | None
    cohorts: dict[str, int]  # cohort key -> id, where they are an active participant
    answers: dict[int, dict[IsoWeek, dict[str, StoredAnswer]]]  # cohort id -> week -> behavior -> answer


# Built once: every batch of clicks runs it, and building it costs more than running it.
# One row per (active participation, stored answer up to the week): who the clickers are
# and what they answered come back in one round trip.
_ANSWERERS = (
    select(
        Person.platform_user_id,
        Person.id,
        Person.timezone,
        Consent.status,
        Cohort.key,
        Cohort.id,
        CheckinAnswer.week,
        CheckinAnswer.behavior_key,
        CheckinAnswer.value,
        CheckinAnswer.answered_at,
        CheckinAnswer.event_id,
    )
    .outerjoin(Consent, Consent.person_id == Person.id)
    .outerjoin(Membership, (Membership.person_id == Person.id) & (Membership.role == "participant") & Membership.active)
    .outerjoin(Cohort, Cohort.id == Membership.cohort_id)
    .outerjoin(
        CheckinAnswer,
        (CheckinAnswer.person_id == Person.id) & (CheckinAnswer.cohort_id == Cohort.id) & (CheckinAnswer.week <= bindparam("upto")),
    )
    .where(Person.platform == bindparam("platform"), Person.platform_user_id.in_(bindparam("ids", expanding=True)))
)


async def answerers(session: AsyncSession, platform: str, user_ids: Iterable[str], upto: IsoWeek) -> dict[str, Answerer]:
    """platform user id -> Answerer with their answers for weeks up to ``upto``, in one query."""
    ids = set(user_ids)
    if not ids:
        return {}
    found: dict[str, Answerer] = {}
    rows = await session.execute(_ANSWERERS, {"platform": platform, "ids": list(ids), "upto": str(upto)})
    for user_id, person_id, timezone, consent, cohort_key, cohort_id, week, behavior, value, answered_at, event_id in rows:
        who = found.setdefault(user_id, Answerer(person_id, timezone, consent, {}, {}))
        if cohort_key is not None:
            who.cohorts[cohort_key] = cohort_id
        if week is not None:
            who.answers.setdefault(cohort_id, {}).setdefault(IsoWeek.parse(week), {})[behavior] = StoredAnswer(value, answered_at, event_id)
    return found


async def claim_events(session: AsyncSession, platform: str, event_ids: Iterable[str], now: datetime) -> set[str]:
    """Record that platform events were handled; returns the ids not seen before (retries and
    double clicks are left out)."""
    unique = sorted(set(event_ids))
    if not unique:
        return set()
    # Core executemany with a statement built once: compiling one multi-row VALUES per
    # batch costs more than the database's own work. RETURNING yields no row on conflict.
    result = await session.execute(
        built_once(session, _claim_events), [{"platform": platform, "event_id": e, "received_at": now} for e in unique]
    )
    return set(result.scalars().all())


async def claim_event(session: AsyncSession, platform: str, event_id: str, now: datetime) -> bool:
    return bool(await claim_events(session, platform, [event_id], now))


def recording(db: Database) -> AbstractAsyncContextManager[AsyncSession]:
    """The session to read answerers and ``save_answers`` in. Where the save is one statement
    (PostgreSQL) it needs no transaction: autocommit saves a BEGIN and a COMMIT round trip
    per batch. Where it is two (SQLite), they share a transaction."""
    return db.autocommit() if len(_SAVE_ANSWERS[db.dialect]) == 1 else db.session()


async def save_answers(session: AsyncSession, rows: Iterable[AnswerRow]) -> None:
    """Store answers and their signals; an answer older than the stored one changes nothing.

    Comparing ``answered_at`` (the platform's click time) rather than arrival order keeps
    "last answer wins" true when a retried old click arrives after a newer one. Within one
    call the latest answer per question wins before anything reaches the database, since
    one INSERT may not update the same row twice.
    """
    latest: dict[tuple[int, int, IsoWeek, str], AnswerRow] = {}
    for row in rows:
        if row.key not in latest or latest[row.key].answered_at <= row.answered_at:
            latest[row.key] = row
    if not latest:
        return
    dialect = session.bind.dialect.name
    answers = [
        {
            "person_id": r.person_id,
            "cohort_id": r.cohort_id,
            "week": str(r.week),
            "behavior_key": r.behavior_key,
            "value": r.value,
            "signal": r.signal,
            "at": json_time(dialect, r.answered_at),
            "event_id": r.event_id,
        }
        for r in latest.values()
    ]
    rows = {"rows": json.dumps(answers)}
    for statement in _SAVE_ANSWERS[dialect]:
        await session.execute(statement, rows)


# A burst of clicks writes hundreds of answers a second: the batch's rows go in a single JSON
# parameter, which the database unpacks, instead of an executemany whose per-row parameter
# handling in Python (and on PostgreSQL a network write per row) cost more than the rest of
# recording a click. SQL text, as outbox's _MARK_SENT is: SQLAlchemy has no portable
# "INSERT ... SELECT FROM json rows". The conflict clauses are the upserts' "latest click
# wins" (see save_answers); "WHERE true": SQLite's upsert needs a WHERE after INSERT ... SELECT.
_UPSERT_ANSWERS = (
    "INSERT INTO checkin_answers (person_id, cohort_id, week, behavior_key, value, answered_at, event_id) "
    "SELECT person_id, cohort_id, week, behavior_key, value, at, event_id FROM {rows} WHERE true "
    "ON CONFLICT (person_id, cohort_id, week, behavior_key) DO UPDATE SET value = excluded.value, "
    "answered_at = excluded.answered_at, event_id = excluded.event_id WHERE checkin_answers.answered_at <= excluded.answered_at"
)
_UPSERT_SIGNALS = (
    "INSERT INTO behavior_signals (person_id, cohort_id, behavior_key, week, value, source, recorded_at) "
    "SELECT person_id, cohort_id, behavior_key, week, signal, 'checkin', at FROM {rows} WHERE true "
    "ON CONFLICT (person_id, cohort_id, behavior_key, week, source) DO UPDATE SET value = excluded.value, "
    "recorded_at = excluded.recorded_at WHERE behavior_signals.recorded_at <= excluded.recorded_at"
)
_COLUMNS = ("person_id", "cohort_id", "week", "behavior_key", "value", "signal", "at", "event_id")
# PostgreSQL: one statement, both upserts reading the rows unpacked once (a data-modifying
# WITH), so a batch of clicks is one round trip and one statement to execute rather than two.
# SQLite has no INSERT inside WITH: two statements, each unpacking the same parameter.
_SAVE_ANSWERS = {
    "postgresql": [
        text(
            "WITH v AS (SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(person_id bigint, cohort_id bigint, week text, "
            "behavior_key text, value text, signal float8, at timestamptz, event_id text)), "
            f"answers AS ({_UPSERT_ANSWERS.format(rows='v')}) " + _UPSERT_SIGNALS.format(rows="v")
        )
    ],
    "sqlite": [
        text(
            upsert.format(
                rows="(SELECT "
                + ", ".join(f"json_extract(j.value, '$.{c}') AS {c}" for c in _COLUMNS)
                + " FROM json_each(:rows) AS j) AS v"
            )
        )
        for upsert in (_UPSERT_ANSWERS, _UPSERT_SIGNALS)
    ],
}


def _claim_events(dialect_insert: Any) -> Any:
    table = InboundEvent.__table__
    return dialect_insert(table).on_conflict_do_nothing(index_elements=[table.c.platform, table.c.event_id]).returning(table.c.event_id)


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
    await save_answers(session, [AnswerRow(person_id, cohort_id, week, behavior_key, value, signal, answered_at, event_id)])


# Built once: App Home and the checklist's replies read streaks through it.
_HISTORY = select(
    CheckinAnswer.person_id, CheckinAnswer.cohort_id, CheckinAnswer.week, CheckinAnswer.behavior_key, CheckinAnswer.value
).where(CheckinAnswer.person_id.in_(bindparam("people", expanding=True)), CheckinAnswer.week <= bindparam("upto"))


async def answer_history(
    session: AsyncSession, pairs: Iterable[tuple[int, int]], upto: IsoWeek
) -> dict[tuple[int, int], dict[IsoWeek, dict[str, str]]]:
    """(person, cohort) -> week -> behavior -> answer, for weeks up to ``upto``, in one query."""
    pairs = set(pairs)
    if not pairs:
        return {}
    rows = await session.execute(_HISTORY, {"people": list({p for p, _c in pairs}), "upto": str(upto)})
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


# Built once: a fan-out asks this for every batch of hundreds of members.
_ANSWERS = {
    dialect: select(
        CheckinAnswer.person_id, CheckinAnswer.cohort_id, CheckinAnswer.week, CheckinAnswer.behavior_key, CheckinAnswer.value
    ).where(among(CheckinAnswer.person_id, dialect, "people"), CheckinAnswer.week.in_(bindparam("weeks", expanding=True)))
    for dialect in ("postgresql", "sqlite")
}


async def answers_for(session: AsyncSession, triples: Iterable[tuple[int, int, IsoWeek]]) -> dict[tuple[int, int, IsoWeek], dict[str, str]]:
    """(person, cohort, week) -> behavior -> answer for many members at once (one query)."""
    wanted = set(triples)
    if not wanted:
        return {}
    rows = await session.execute(
        _ANSWERS[session.bind.dialect.name], {"people": list({p for p, _c, _w in wanted}), "weeks": list({str(w) for _p, _c, w in wanted})}
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
