"""Check-in answers and the behavior signals they become, recorded idempotently."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from nudges.weeks import IsoWeek
from storage.db import insert
from storage.models import (
    Account,
    BehaviorSignal,
    CheckinAnswer,
    CheckinNote,
    Cohort,
    Consent,
    InboundEvent,
    Membership,
    MemberWeek,
    Person,
)


@dataclass(frozen=True)
class Answerer:
    """A person who clicked an answer, as recording it needs to know them."""

    person_id: int
    timezone: str
    consent: str | None
    cohorts: dict[str, int]  # cohort key -> id, where they are an active participant
    joined: dict[str, datetime]  # cohort key -> when they joined it
    answers: dict[int, dict[IsoWeek, dict[str, str]]]  # cohort id -> week -> behavior -> value


@dataclass(frozen=True)
class Answer:
    """One click's answer to one question, and the signal value it means."""

    person_id: int
    cohort_id: int
    week: IsoWeek
    behavior_key: str
    value: str
    signal: float
    answered_at: datetime
    event_id: str

    @property
    def key(self) -> tuple[int, int, str, str]:
        """The question answered, as the database's unique key holds it."""
        return (self.person_id, self.cohort_id, str(self.week), self.behavior_key)


async def answerers(session: AsyncSession, clickers: Iterable[tuple[str, str]], upto: IsoWeek) -> dict[tuple[str, str], Answerer]:
    """(platform, user id) -> who clicked, with their consent, participations and answers for
    weeks up to ``upto``, in one query (a row per participation and stored answer)."""
    wanted = sorted(set(clickers))
    found: dict[tuple[str, str], Answerer] = {}
    if not wanted:
        return found
    rows = await session.execute(
        select(
            Account.platform,
            Account.user_id,
            Person.id,
            Person.timezone,
            Consent.status,
            Cohort.key,
            Cohort.id,
            Membership.joined_at,
            CheckinAnswer.week,
            CheckinAnswer.behavior_key,
            CheckinAnswer.value,
        )
        .join(Account, Account.person_id == Person.id)
        .outerjoin(Consent, Consent.person_id == Person.id)
        .outerjoin(Membership, (Membership.person_id == Person.id) & (Membership.role == "participant") & Membership.active)
        .outerjoin(Cohort, Cohort.id == Membership.cohort_id)
        .outerjoin(
            CheckinAnswer,
            (CheckinAnswer.person_id == Person.id) & (CheckinAnswer.cohort_id == Cohort.id) & (CheckinAnswer.week <= str(upto)),
        )
        .where(tuple_(Account.platform, Account.user_id).in_(wanted))
    )
    for platform, user_id, person_id, timezone, consent, cohort_key, cohort_id, joined_at, week, behavior, value in rows:
        who = found.setdefault((platform, user_id), Answerer(person_id, timezone, consent, {}, {}, {}))
        if cohort_key is not None:
            who.cohorts[cohort_key] = cohort_id
            who.joined[cohort_key] = joined_at
        if week is not None:
            who.answers.setdefault(cohort_id, {}).setdefault(IsoWeek.parse(week), {})[behavior] = value
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
    """Record that a platform event is being handled, in the caller's transaction: True the
    first time, False for a retry of an event already handled. Claimed in the transaction
    that stores the event's effect, a failure rolls both back, so the platform's retry runs it."""
    return bool(await claim_events(session, platform, [event_id], now))


async def joined_at(session: AsyncSession, person_id: int, cohort_id: int) -> datetime | None:
    """When the person joined the cohort as a participant (None if they are not one)."""
    return await session.scalar(
        select(Membership.joined_at).where(
            Membership.person_id == person_id, Membership.cohort_id == cohort_id, Membership.role == "participant"
        )
    )


def _answer_upsert(session: AsyncSession) -> Any:
    """INSERT an answer, or replace the stored one if this click is later (and not the same
    click); RETURNING names the questions whose answer changed."""
    answers = CheckinAnswer.__table__
    stmt = insert(session, answers)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[answers.c.person_id, answers.c.cohort_id, answers.c.week, answers.c.behavior_key],
        set_={"value": new.value, "answered_at": new.answered_at, "event_id": new.event_id},
        where=(answers.c.answered_at <= new.answered_at) & (answers.c.event_id != new.event_id),
    ).returning(answers.c.person_id, answers.c.cohort_id, answers.c.week, answers.c.behavior_key)


def _signal_upsert(session: AsyncSession) -> Any:
    """INSERT an answer's signal, or replace the stored one. No condition of its own: it runs
    only for answers that just won, in the same transaction, and the answer's upsert holds
    that row's lock until the commit, so signals are written in the order their answers won."""
    signals = BehaviorSignal.__table__
    stmt = insert(session, signals)
    return stmt.on_conflict_do_update(
        index_elements=[signals.c.person_id, signals.c.cohort_id, signals.c.behavior_key, signals.c.week, signals.c.source],
        set_={"value": stmt.excluded.value, "recorded_at": stmt.excluded.recorded_at},
    )


async def save_answers(session: AsyncSession, answers: Sequence[Answer]) -> list[bool]:
    """Store answers and their signals; for each answer, in order, whether it changed what is
    stored.

    The latest click wins by ``answered_at`` (the platform's click time), not by arrival, so
    a retried older click that arrives after a newer one changes nothing; neither does a
    repeat of the stored click (a double click, the platform's retry: the same event id).
    The database applies the rule, so web processes recording at once cannot break it.
    A batch of clicks (bot.inbound.ClickBatcher) is one executemany per table.
    """
    upsert_answers, upsert_signals = _answer_upsert(session), _signal_upsert(session)
    changed = [False] * len(answers)
    for turn in _turns(answers):
        rows = [answers[i] for i in turn]
        result = await session.execute(
            upsert_answers,
            [{**_key_values(a), "value": a.value, "answered_at": a.answered_at, "event_id": a.event_id} for a in rows],
        )
        won = {tuple(row) for row in result}
        winners = [a for a in rows if a.key in won]
        if winners:
            await session.execute(
                upsert_signals,
                [{**_key_values(a), "value": a.signal, "source": "checkin", "recorded_at": a.answered_at} for a in winners],
            )
        for i in turn:
            changed[i] = answers[i].key in won
    return changed


def _turns(answers: Sequence[Answer]) -> list[list[int]]:
    """The answers' indices in statements that each hold a question at most once, in order:
    PostgreSQL's ON CONFLICT DO UPDATE cannot change a row twice in one statement, and the
    same question clicked twice in a batch must be written in the order of its clicks."""
    turns: list[list[int]] = []
    seen: dict[tuple[int, int, str, str], int] = {}
    for i, answer in enumerate(answers):
        turn = seen.get(answer.key, -1) + 1
        seen[answer.key] = turn
        if turn == len(turns):
            turns.append([])
        turns[turn].append(i)
    return turns


def _key_values(answer: Answer) -> dict[str, Any]:
    return {"person_id": answer.person_id, "cohort_id": answer.cohort_id, "week": str(answer.week), "behavior_key": answer.behavior_key}


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
