"""Check-in use cases: queue the weekly checklists, deliver the outbox, record answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import ChatPort, Click
from bot.delivery import Deliverer, DeliveryReport
from nudges.checklist import AnswerError, ChecklistRenders, ChoiceRef, signal_value
from nudges.coaching import FeedbackError, NudgeChoice, NudgeFeedback, nudge_message, parse_nudge_id
from nudges.messages import Message
from nudges.program import Program
from nudges.weeks import IsoWeek
from storage import audit, checkins, outbox, people
from storage.db import Database
from storage.models import Cohort, Person


def checklist_key(person_id: int, cohort_key: str, week: IsoWeek) -> str:
    return f"checklist:{person_id}:{cohort_key}:{week}"


async def enqueue_checklists(db: Database, program: Program, week: IsoWeek, now: datetime) -> int:
    """Queue this week's checklist for every consenting participant of every running cohort,
    and the consent request (once) for participants who have not answered it yet.

    Safe to call any number of times: the outbox keys make each message one row.
    Returns how many rows this call added.
    """
    added = 0
    async with db.session() as session:
        for spec in program.cohorts:
            if not spec.is_running(week):
                continue
            cohort_id = await session.scalar(select(Cohort.id).where(Cohort.key == spec.key))
            if cohort_id is None:
                continue
            for person, consent, _joined in await people.reachable_participants(session, cohort_id):
                if consent is None:
                    added += await _enqueue_consent(session, person, cohort_id, now)
                if consent != "accepted":
                    continue
                added += await outbox.enqueue(
                    session,
                    key=checklist_key(person.id, spec.key, week),
                    kind="checklist",
                    period=str(week),
                    due_at=now,
                    person_id=person.id,
                    cohort_id=cohort_id,
                    platform=person.platform,
                    payload={"cohort": spec.key, "week": str(week)},
                )
    return added


async def _enqueue_consent(session: AsyncSession, person: Person, cohort_id: int, now: datetime) -> int:
    """The consent request, once per person; their consent is 'pending' until they answer."""
    await people.set_consent(session, person.id, "pending", now)
    return await outbox.enqueue(
        session,
        key=f"consent:{person.id}",
        kind="consent",
        period="once",
        due_at=now,
        person_id=person.id,
        cohort_id=cohort_id,
        platform=person.platform,
    )


async def enqueue_checklist_for(db: Database, program: Program, person_id: int, now: datetime) -> bool:
    """Queue this week's checklist for one member (after they accept consent, or ask for it)."""
    async with db.session() as session:
        person = await session.get(Person, person_id)
        if person is None:
            return False
        for cohort in await people.participations(session, person_id):
            spec = program.cohort(cohort.key)
            week = IsoWeek.of(now.astimezone(ZoneInfo(person.timezone)))
            if spec.is_running(week):
                return await outbox.enqueue(
                    session,
                    key=checklist_key(person.id, spec.key, week),
                    kind="checklist",
                    period=str(week),
                    due_at=now,
                    person_id=person.id,
                    cohort_id=cohort.id,
                    platform=person.platform,
                    payload={"cohort": spec.key, "week": str(week)},
                )
    return False


async def deliver_outbox(db: Database, program: Program, chats: Mapping[str, ChatPort], now: datetime) -> DeliveryReport:
    """Send everything due at ``now`` through ``chats`` (the delivery engine, at a fixed instant)."""
    return await Deliverer(db, chats).deliver_due(program, lambda: now)


@dataclass(frozen=True)
class AnswerOutcome:
    """What happened to a click, and what the member should now see.

    ``message`` is the checklist re-rendered with the stored answers, for updating the
    original message in place; ``reply`` is a short private note when the click was refused.
    A ``duplicate`` changed nothing: a repeat of the stored click (double clicks, retries)
    or a click older than the stored answer.
    """

    status: Literal["recorded", "duplicate", "refused"]
    message: Message | None = None
    reply: str | None = None


async def record_answer(db: Database, program: Program, click: Click) -> AnswerOutcome:
    """Store one checklist answer, once, with the latest click winning; refusals store nothing."""
    return (await record_answers(db, program, [click]))[0]


async def record_answers(
    db: Database, program: Program, clicks: Sequence[Click], renders: ChecklistRenders | None = None
) -> list[AnswerOutcome]:
    """Record many answer clicks at once: one read, then one write of the answers and their
    signals (two statements on SQLite, in one transaction), however many clicks.

    The web process gathers the clicks that arrive together and records them here at once:
    one commit for many clicks is what keeps acknowledgements fast under load, on SQLite
    as on PostgreSQL. Each outcome is as if its click had been recorded alone.
    ``renders`` keeps the messages shown from one batch to the next.
    """
    outcomes: list[AnswerOutcome | None] = [None] * len(clicks)
    parsed: dict[int, tuple[ChoiceRef, float]] = {}
    for i, click in enumerate(clicks):
        refused = _validate(program, click)
        if isinstance(refused, AnswerOutcome):
            outcomes[i] = refused
        else:
            parsed[i] = refused
    if parsed:
        async with checkins.recording(db) as session:
            await _record_valid(session, program, clicks, parsed, outcomes, renders or ChecklistRenders())
    return [o for o in outcomes if o is not None]


def _validate(program: Program, click: Click) -> AnswerOutcome | tuple[ChoiceRef, float]:
    """What can be checked without the database: the button and the answer it carries."""
    try:
        ref = ChoiceRef.decode(click.value)
        spec = program.cohort(ref.cohort)
    except (AnswerError, ValueError):
        return AnswerOutcome("refused", reply="That button is not from a current Reinforce checklist.")
    if ref.action != "answer" or ref.behavior not in spec.checklist:
        return AnswerOutcome("refused", reply="That question is not on your checklist any more.")
    try:
        return ref, signal_value(program.behavior(ref.behavior), ref.value)
    except AnswerError as exc:
        return AnswerOutcome("refused", reply=str(exc))


async def _record_valid(
    session: AsyncSession,
    program: Program,
    clicks: Sequence[Click],
    parsed: dict[int, tuple[ChoiceRef, float]],
    outcomes: list[AnswerOutcome | None],
    renders: ChecklistRenders,
) -> None:
    upto = max(ref.week for ref, _signal in parsed.values())
    by_platform: dict[str, set[str]] = {}
    for i in parsed:
        by_platform.setdefault(clicks[i].platform, set()).add(clicks[i].user_id)
    members = {
        (platform, uid): who
        for platform, ids in by_platform.items()
        for uid, who in (await checkins.answerers(session, platform, ids, upto)).items()
    }
    accepted: dict[int, tuple[ChoiceRef, checkins.Answerer, int, float]] = {}
    for i, (ref, signal) in parsed.items():
        click = clicks[i]
        member = members.get((click.platform, click.user_id))
        if member is None:
            outcomes[i] = AnswerOutcome("refused", reply="You are not a member of a Reinforce program yet.")
        elif member.consent != "accepted":
            outcomes[i] = AnswerOutcome("refused", reply="Nothing was recorded: you have not agreed to take part yet.")
        elif ref.cohort not in member.cohorts:
            outcomes[i] = AnswerOutcome("refused", reply="This checklist belongs to a cohort you are not part of.")
            audit.record(session, click.at, f"{click.platform}:{click.user_id}", "checkin.answer", subject=ref.cohort, outcome="refused")
        elif program.cohort(ref.cohort).week_number(ref.week) < 1 or ref.week > IsoWeek.of(click.at.astimezone(ZoneInfo(member.timezone))):
            outcomes[i] = AnswerOutcome("refused", reply=f"Week {ref.week} is not open for answers.")
        else:
            accepted[i] = (ref, member, member.cohorts[ref.cohort], signal)
    # What the database will keep is decided here, by the rule its upsert also applies (the
    # latest click per question wins), so the answers read above are the state after this
    # batch too. A click that changes nothing (a repeat of the stored one, double clicks,
    # Slack's retries, or a click older than the stored answer) is a duplicate and not written.
    # Another web process recording the same question at the same instant cannot break the
    # rule (the upsert's condition holds in the database); at worst this message lags a click.
    rows: list[checkins.AnswerRow] = []
    recorded: set[int] = set()
    for i, (ref, member, cohort_id, signal) in accepted.items():
        click = clicks[i]
        that_week = member.answers.setdefault(cohort_id, {}).setdefault(ref.week, {})
        stored = that_week.get(ref.behavior)
        if stored is not None and (stored.event_id == click.event_id or stored.answered_at > click.at):
            continue
        that_week[ref.behavior] = checkins.StoredAnswer(ref.value, click.at, click.event_id)
        rows.append(checkins.AnswerRow(member.person_id, cohort_id, ref.week, ref.behavior, ref.value, signal, click.at, click.event_id))
        recorded.add(i)
    await checkins.save_answers(session, rows)
    for i, (ref, member, cohort_id, _signal) in accepted.items():
        spec = program.cohort(ref.cohort)
        weeks = member.answers[cohort_id]
        answered = {behavior: stored.value for behavior, stored in weeks[ref.week].items()}
        message = renders.checklist(program, spec.key, str(ref.week), answered, checkins.streak_in(weeks, ref.week, len(spec.checklist)))
        outcomes[i] = AnswerOutcome("recorded" if i in recorded else "duplicate", message=message)


async def record_nudge_feedback(db: Database, program: Program, click: Click) -> AnswerOutcome:
    """Store a member's "Useful" / "Not for me" on their nudge (the latest verdict counts) and
    show the nudge again with that button marked."""
    try:
        feedback = NudgeFeedback.decode(click.value)
    except FeedbackError as exc:
        return AnswerOutcome("refused", reply=str(exc))
    async with db.session() as session:
        person = await people.by_platform_id(session, click.platform, click.user_id)
        if person is None or await people.consent_status(session, person.id) != "accepted":
            return AnswerOutcome("refused", reply="Nothing was recorded: you have not agreed to take part.")
        sent = await outbox.nudge_delivery(session, person.id, feedback.nudge_id, str(feedback.week))
        if sent is None:
            return AnswerOutcome("refused", reply="That nudge was not sent to you.")
        await people.save_nudge_feedback(session, person.id, feedback.nudge_id, str(feedback.week), feedback.verdict, click.at)
    behavior_key, index = parse_nudge_id(feedback.nudge_id)
    choice = NudgeChoice(program.behavior(behavior_key), index, sent["mode"], tuple(sent["recent"]))
    return AnswerOutcome("recorded", message=nudge_message(choice, feedback.week, feedback=feedback.verdict))
