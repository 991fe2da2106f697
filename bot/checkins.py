"""Check-in use cases: queue a member's checklist, deliver the outbox, record answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import ChatPort, Click
from bot.delivery import Deliverer, DeliveryReport
from nudges.checklist import AnswerError, ChoiceRef, build_checklist, checklist_message, signal_value
from nudges.coaching import FeedbackError, NudgeChoice, NudgeFeedback, nudge_message, parse_nudge_id
from nudges.messages import Message
from nudges.program import Program, ProgramError
from nudges.weeks import IsoWeek
from storage import audit, checkins, outbox, people
from storage.db import Database
from storage.models import Person


def checklist_key(person_id: int, cohort_key: str, week: IsoWeek) -> str:
    return f"checklist:{person_id}:{cohort_key}:{week}"


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


async def record_answers(db: Database, program: Program, answers: Sequence[tuple[Click, ChoiceRef]]) -> list[AnswerOutcome]:
    """Store checklist answers (each with its button, decoded) in one transaction: the clicks
    that arrive together, or a card's questions. Each outcome is as if its click had been
    recorded alone, in order: the latest click wins and refusals store nothing."""
    async with db.session() as session:
        return [await _record(session, program, click, ref) for click, ref in answers]


async def _record(session: AsyncSession, program: Program, click: Click, ref: ChoiceRef) -> AnswerOutcome:
    signal = _validate(program, ref)
    if isinstance(signal, AnswerOutcome):
        return signal
    who = await checkins.answerer(session, click.platform, click.user_id, ref.cohort, ref.week)
    admitted = _admit(session, program, click, ref, who)
    if isinstance(admitted, AnswerOutcome):
        return admitted
    person_id, cohort_id, weeks = admitted
    changed = await checkins.save_answer(
        session,
        person_id=person_id,
        cohort_id=cohort_id,
        week=ref.week,
        behavior_key=ref.behavior,
        value=ref.value,
        signal=signal,
        answered_at=click.at,
        event_id=click.event_id,
    )
    if changed:  # what is stored now: the answers read above, with this click's
        weeks.setdefault(ref.week, {})[ref.behavior] = ref.value
    spec = program.cohort(ref.cohort)
    streak = checkins.streak_in(weeks, ref.week, len(spec.checklist))
    message = checklist_message(build_checklist(program, spec, ref.week), weeks.get(ref.week, {}), streak)
    return AnswerOutcome("recorded" if changed else "duplicate", message=message)


def _validate(program: Program, ref: ChoiceRef) -> AnswerOutcome | float:
    """What can be checked without the database: the button and the answer it carries.
    Returns the answer's signal value, or the refusal."""
    try:
        spec = program.cohort(ref.cohort)
    except ProgramError:
        return AnswerOutcome("refused", reply="That button is not from a current Reinforce checklist.")
    if ref.action != "answer" or ref.behavior not in spec.checklist:
        return AnswerOutcome("refused", reply="That question is not on your checklist any more.")
    try:
        return signal_value(program.behavior(ref.behavior), ref.value)
    except AnswerError as exc:
        return AnswerOutcome("refused", reply=str(exc))


def _admit(
    session: AsyncSession, program: Program, click: Click, ref: ChoiceRef, who: checkins.Answerer | None
) -> AnswerOutcome | tuple[int, int, dict[IsoWeek, dict[str, str]]]:
    """(person, cohort, their answers so far) whose answer this is, or the refusal; a button of
    another cohort's checklist is audited."""
    if who is None:
        return AnswerOutcome("refused", reply="You are not a member of a Reinforce program yet.")
    if who.consent != "accepted":
        return AnswerOutcome("refused", reply="Nothing was recorded: you have not agreed to take part yet.")
    if who.cohort_id is None:
        audit.record(session, click.at, f"{click.platform}:{click.user_id}", "checkin.answer", subject=ref.cohort, outcome="refused")
        return AnswerOutcome("refused", reply="This checklist belongs to a cohort you are not part of.")
    if program.cohort(ref.cohort).week_number(ref.week) < 1 or ref.week > IsoWeek.of(click.at.astimezone(ZoneInfo(who.timezone))):
        return AnswerOutcome("refused", reply=f"Week {ref.week} is not open for answers.")
    return who.person_id, who.cohort_id, who.weeks


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
