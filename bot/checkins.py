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
from nudges.checklist import AnswerError, ChoiceRef, build_checklist, checklist_message, signal_value, week_refusal
from nudges.coaching import FeedbackError, NudgeChoice, NudgeFeedback, nudge_message, parse_nudge_id
from nudges.messages import Message
from nudges.program import Cohort, Program, ProgramError
from nudges.weeks import IsoWeek
from storage import audit, checkins, outbox, people
from storage.db import Database
from storage.models import Person


def checklist_key(person_id: int, cohort_key: str, week: IsoWeek) -> str:
    return f"checklist:{person_id}:{cohort_key}:{week}"


async def queue_checklist(
    session: AsyncSession, person: Person, cohort_id: int, cohort_key: str, week: IsoWeek, now: datetime, copy: str | None = None
) -> bool:
    """Queue a member's checklist for a week, due now: the week's own (one per member and week,
    the scheduler's key), or with ``copy`` one more they asked for (one per request)."""
    key = checklist_key(person.id, cohort_key, week) + (f":again:{copy}" if copy else "")
    return await outbox.enqueue(
        session,
        key=key,
        kind="checklist",
        period=str(week),
        due_at=now,
        person_id=person.id,
        cohort_id=cohort_id,
        platform=person.platform,
        payload={"cohort": cohort_key, "week": str(week)},
    )


async def enqueue_checklist_for(db: Database, program: Program, person_id: int, now: datetime) -> bool:
    """Queue this week's checklist for one member (after they accept consent)."""
    async with db.session() as session:
        person = await session.get(Person, person_id)
        if person is None:
            return False
        for cohort in await people.participations(session, person_id):
            week = IsoWeek.of(now.astimezone(ZoneInfo(person.timezone)))
            if program.cohort(cohort.key).is_running(week):
                return await queue_checklist(session, person, cohort.id, cohort.key, week, now)
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
    that arrive together, or a card's questions. One read, then one write per table.

    Each outcome is as if its click had been recorded alone, in order: the latest click
    wins, a click that changes nothing is a duplicate, and refusals store nothing. The
    message shows the member's answers as stored after the batch.
    """
    outcomes: list[AnswerOutcome | None] = [None] * len(answers)
    signals: dict[int, float] = {}
    for i, (_click, ref) in enumerate(answers):
        checked = _validate(program, ref)
        if isinstance(checked, AnswerOutcome):
            outcomes[i] = checked
        else:
            signals[i] = checked
    if signals:
        async with db.session() as session:
            admitted = await _admitted(session, program, answers, signals, outcomes)
            changed = await checkins.save_answers(session, [answer for _who, answer in admitted.values()])
        _show(program, answers, admitted, changed, outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


async def _admitted(
    session: AsyncSession,
    program: Program,
    answers: Sequence[tuple[Click, ChoiceRef]],
    signals: dict[int, float],
    outcomes: list[AnswerOutcome | None],
) -> dict[int, tuple[checkins.Answerer, checkins.Answer]]:
    """The answers their members may give, by index, with who gave them; the others' refusals
    go into ``outcomes``."""
    upto = max(answers[i][1].week for i in signals)
    clickers = await checkins.answerers(session, [(answers[i][0].platform, answers[i][0].user_id) for i in signals], upto)
    admitted: dict[int, tuple[checkins.Answerer, checkins.Answer]] = {}
    for i, signal in signals.items():
        click, ref = answers[i]
        who = clickers.get((click.platform, click.user_id))
        outcomes[i] = _refusal(session, program, click, ref, who)
        if who is not None and outcomes[i] is None:
            answer = checkins.Answer(
                who.person_id, who.cohorts[ref.cohort], ref.week, ref.behavior, ref.value, signal, click.at, click.event_id
            )
            admitted[i] = (who, answer)
    return admitted


def _show(
    program: Program,
    answers: Sequence[tuple[Click, ChoiceRef]],
    admitted: dict[int, tuple[checkins.Answerer, checkins.Answer]],
    changed: list[bool],
    outcomes: list[AnswerOutcome | None],
) -> None:
    """Each stored click's outcome: its message shows the answers read for the batch with the
    ones the batch changed (in click order, so the latest click is what remains)."""
    for (who, answer), won in zip(admitted.values(), changed, strict=True):
        if won:
            who.answers.setdefault(answer.cohort_id, {}).setdefault(answer.week, {})[answer.behavior_key] = answer.value
    for (i, (who, answer)), won in zip(admitted.items(), changed, strict=True):
        spec = program.cohort(answers[i][1].cohort)
        weeks = who.answers.get(answer.cohort_id, {})
        streak = checkins.streak_in(weeks, answer.week, len(spec.checklist))
        message = checklist_message(build_checklist(program, spec, answer.week), weeks.get(answer.week, {}), streak)
        outcomes[i] = AnswerOutcome("recorded" if won else "duplicate", message=message)


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


def _refusal(session: AsyncSession, program: Program, click: Click, ref: ChoiceRef, who: checkins.Answerer | None) -> AnswerOutcome | None:
    """Why this member may not answer this checklist now, or None; a button of another
    cohort's checklist is audited."""
    if who is None:
        return AnswerOutcome("refused", reply="You are not a member of a Reinforce program yet.")
    if who.consent != "accepted":
        return AnswerOutcome("refused", reply="Nothing was recorded: you have not agreed to take part yet.")
    if ref.cohort not in who.cohorts:
        audit.record(session, click.at, f"{click.platform}:{click.user_id}", "checkin.answer", subject=ref.cohort, outcome="refused")
        return AnswerOutcome("refused", reply="This checklist belongs to a cohort you are not part of.")
    refusal = week_refusal_for(program.cohort(ref.cohort), ref.week, click.at, who.timezone, who.joined.get(ref.cohort))
    return AnswerOutcome("refused", reply=refusal) if refusal is not None else None


def week_refusal_for(cohort: Cohort, week: IsoWeek, at: datetime, timezone: str, joined_at: datetime | None) -> str | None:
    """nudges.checklist.week_refusal for a member in ``timezone`` who joined at ``joined_at``."""
    zone = ZoneInfo(timezone)
    joined = IsoWeek.of(joined_at.astimezone(zone)) if joined_at is not None else None
    return week_refusal(cohort, week, at, IsoWeek.of(at.astimezone(zone)), joined)


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
