"""What members do in chat — clicks, forms, typed commands — routed to the use cases.

Adapters parse platform requests into the neutral commands of adapters.base and call this;
every reply is neutral too, so Slack and Teams behave the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import ChatPort, Click, Reply, Submission, TextCommand
from bot.checkins import AnswerOutcome, enqueue_checklist_for, record_answers, record_nudge_feedback, week_refusal_for
from bot.commands import Commands
from bot.home import home_view
from bot.identity import Identities
from bot.programs import ProgramSource
from bot.rehearsals import Rehearsals
from nudges.checklist import AnswerError, ChoiceRef, build_checklist, checklist_message, is_complete
from nudges.consent import ACCEPT, DECLINE
from nudges.messages import Message
from nudges.program import Program, ProgramError
from storage import audit, checkins, people
from storage.db import Database
from storage.models import Person

log = logging.getLogger(__name__)

NOTE_LIMIT = 2000
SNOOZE = timedelta(hours=2)
MORNING = time(8)


class ClickBatcher:
    """Gathers the answer clicks that arrive while a batch is being written and records them
    together (bot.checkins.record_answers: one transaction, one read, one write per table).
    A lone click is written at once, as a batch of one; nothing waits for a timer.

    Kept for the clicks guard (bench/inbound.py: 200 clicks/s on PostgreSQL, p99 under
    300 ms). Click by click, the web process spent 2.4-3.5 ms of CPU per click and, on the
    shared development machine (load 5-6), the p99 acknowledgement passed 10 s (2026-12-08).
    """

    def __init__(self, record: Callable[[list[tuple[Click, ChoiceRef]]], Awaitable[list[AnswerOutcome]]], max_batch: int = 200) -> None:
        self._record = record
        self._max = max_batch
        self._pending: list[tuple[tuple[Click, ChoiceRef], asyncio.Future[AnswerOutcome]]] = []
        self._drain_task: asyncio.Task[None] | None = None

    async def record(self, click: Click, ref: ChoiceRef) -> AnswerOutcome:
        future: asyncio.Future[AnswerOutcome] = asyncio.get_running_loop().create_future()
        self._pending.append(((click, ref), future))
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self._max], self._pending[self._max :]
                await self._record_batch(batch)
        finally:
            self._drain_task = None

    async def _record_batch(self, batch: list[tuple[tuple[Click, ChoiceRef], asyncio.Future[AnswerOutcome]]]) -> None:
        """Each click's request gets its outcome, or the batch's error (a request that went
        away meanwhile gets nothing)."""
        try:
            outcomes = await self._record([answer for answer, _future in batch])
            for (_answer, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
        except Exception as exc:
            log.exception("recording %d clicks failed", len(batch))
            for _answer, future in batch:
                if not future.done():
                    future.set_exception(exc)


class InboundHandler:
    """The application's side of adapters.base.Inbound."""

    def __init__(self, db: Database, programs: ProgramSource, chats: dict[str, ChatPort], rehearsals: Rehearsals | None = None) -> None:
        self.db = db
        self.programs = programs
        self.chats = chats
        self.rehearsals = rehearsals
        self.identities = Identities(db, chats)
        self.commands = Commands(db, programs, rehearsals)
        self.answers = ClickBatcher(self._record_answers)

    async def _record_answers(self, answers: list[tuple[Click, ChoiceRef]]) -> list[AnswerOutcome]:
        return await record_answers(self.db, await self.programs.get(), answers)

    async def click(self, click: Click) -> Reply:
        # Every request starts by knowing who sent it: a person met for the first time is
        # linked here (their platform profile's email), so the use cases below find them.
        await self.identities.recognise(click.platform, click.user_id, click.at)
        if click.value in (ACCEPT, DECLINE):
            return await self._consent(click)
        if click.value.startswith("nudge|"):
            outcome = await record_nudge_feedback(self.db, await self.programs.get(), click)
            return Reply(update=outcome.message, text=outcome.reply)
        if click.value.startswith("rehearse|") and self.rehearsals is not None:
            return await self.rehearsals.start(click.platform, click.user_id, click.value.removeprefix("rehearse|"), click.at)
        if click.value.startswith("review|"):
            return await self._review(click.platform, click.user_id, click.value, click.at, None)
        if click.value.startswith("cmd|"):
            command = TextCommand(click.platform, click.user_id, click.value.removeprefix("cmd|"), click.at, event_id=click.event_id)
            return await self.commands.command(command)
        try:
            program = await self.programs.get()
            ref = ChoiceRef.decode(click.value)
        except (AnswerError, ProgramError):
            return Reply(text="That button is not from a current Reinforce message.")
        if ref.action == "answer":
            outcome = await self.answers.record(click, ref)
            return Reply(update=outcome.message, text=outcome.reply)
        if ref.action in ("snooze", "tomorrow", "skip"):
            return await self._week_choice(program, click, ref)
        return Reply(text="Use the note form to add a note.")

    async def submit(self, submission: Submission) -> Reply:
        """A card's answers (each recorded like a click) and an optional note."""
        await self.identities.recognise(submission.platform, submission.user_id, submission.at)
        if submission.note is not None and len(submission.note) > NOTE_LIMIT:
            return Reply(text=f"Your note is {len(submission.note)} characters long; please keep it under {NOTE_LIMIT}. Nothing was saved.")
        if (submission.context or "").startswith("review|"):
            return await self._review(submission.platform, submission.user_id, submission.context or "", submission.at, submission.note)
        program = await self.programs.get()
        reply = Reply()
        try:
            answers = [
                (
                    Click(
                        submission.platform, f"{submission.event_id}#{i}", submission.user_id, value, submission.at, submission.message_ref
                    ),
                    ChoiceRef.decode(value),
                )
                for i, value in enumerate(submission.values)
            ]
        except AnswerError:
            return Reply(text="That button is not from a current Reinforce checklist.")
        for outcome in await record_answers(self.db, program, answers) if answers else []:
            if outcome.status == "refused":
                return Reply(text=outcome.reply)
            reply = Reply(update=outcome.message)
        if submission.note and submission.note.strip():
            context = submission.context or (submission.values[0] if submission.values else "")
            return await self._note(program, submission, context)
        return reply

    async def command(self, command: TextCommand) -> Reply:
        await self.identities.recognise(command.platform, command.user_id, command.at)
        return await self.commands.command(command)

    async def message(self, command: TextCommand) -> Reply:
        await self.identities.recognise(command.platform, command.user_id, command.at)
        return await self.commands.message(command)

    async def _review(self, platform: str, user_id: str, value: str, at: datetime, note: str | None) -> Reply:
        parts = value.split("|")
        if len(parts) != 3 or not parts[1].isdigit() or parts[2] not in ("approve", "edit", "reject") or self.rehearsals is None:
            return Reply(text="That button is not from a current review.")
        if parts[2] == "edit" and not (note or "").strip():
            return Reply(text="Editing needs your corrected advice: press Edit and write it, or Approve / Reject.")
        return await self.rehearsals.decide(platform, user_id, int(parts[1]), parts[2], at, (note or "").strip() or None)

    async def home(self, platform: str, user_id: str, now: datetime) -> Message:
        await self.identities.recognise(platform, user_id, now)
        program = await self.programs.get()
        return await home_view(self.db, program, platform, user_id, now)

    async def account_closed(self, platform: str, user_id: str, at: datetime, reason: str) -> None:
        """The platform says the member is gone: unlinked and paused, audited."""
        email = await self.identities.account_closed(platform, user_id, at, reason)
        if email is not None:
            log.info("%s's %s account was closed (%s): unlinked and paused", email, platform, reason)

    async def _member(self, platform: str, user_id: str) -> Person | None:
        async with self.db.session() as session:
            return await people.by_platform_id(session, platform, user_id)

    async def _consent(self, click: Click) -> Reply:
        accepted = click.value == ACCEPT
        async with self.db.session() as session:
            person = await people.by_platform_id(session, click.platform, click.user_id)
            if person is None:
                return Reply(text="You are not a member of a Reinforce program.")
            status = "accepted" if accepted else "declined"
            await people.set_consent(session, person.id, status, click.at)
            audit.record(session, click.at, person.email, "consent." + status, subject=person.email)
        if not accepted:
            return Reply(update=Message("Understood: nothing is recorded about you. Type `resume` whenever you want to start."))
        await enqueue_checklist_for(self.db, await self.programs.get(), person.id, click.at)
        return Reply(update=Message("Thank you. Your check-in for this week arrives in a moment. Type `help` for what else I can do."))

    async def _week_choice(self, program: Program, click: Click, ref: ChoiceRef) -> Reply:
        """Skip or snooze a week: refused for a week not open for answers, and, once all three
        questions are answered, answered politely without changing anything (a stale Skip on an
        older rendering of the checklist)."""
        async with self.db.session() as session:
            person = await people.by_platform_id(session, click.platform, click.user_id)
            cohort = await people.is_participant(session, person.id, ref.cohort) if person else None
            if person is None or cohort is None:
                _audit_refusal(session, click.platform, click.user_id, person, f"checkin.{ref.action}", ref.cohort, click.at)
                return Reply(text="This checklist is not yours.")
            checklist = build_checklist(program, program.cohort(ref.cohort), ref.week)
            joined = await checkins.joined_at(session, person.id, cohort.id)
            if (refusal := week_refusal_for(checklist.cohort, ref.week, click.at, person.timezone, joined)) is not None:
                return Reply(text=refusal)
            answered = await checkins.answers_for_week(session, person.id, cohort.id, ref.week)
            note = await checkins.note_for_week(session, person.id, cohort.id, ref.week)
            if is_complete(checklist, answered):
                verb = "skip" if ref.action == "skip" else "snooze"
                text = f"You have answered all three this week; there is nothing to {verb}."
                return Reply(update=checklist_message(checklist, answered, note=note), text=text)
            status = await _choose(session, person, cohort.id, ref, click.at)
        return Reply(update=checklist_message(checklist, answered, note=note, status=status))

    async def _note(self, program: Program, submission: Submission, context: str) -> Reply:
        """The member's own note on a week. No figure counts it and only they see it, so unlike an
        answer it may be written after the week closed."""
        try:
            ref = ChoiceRef.decode(context)
            spec = program.cohort(ref.cohort)
        except (AnswerError, ProgramError):
            return Reply(text="That note form is not from a current checklist.")
        async with self.db.session() as session:
            person = await people.by_platform_id(session, submission.platform, submission.user_id)
            cohort = await people.is_participant(session, person.id, ref.cohort) if person else None
            if person is None or cohort is None:
                _audit_refusal(session, submission.platform, submission.user_id, person, "checkin.note", ref.cohort, submission.at)
                return Reply(text="This checklist is not yours.")
            if await people.consent_status(session, person.id) != "accepted":
                return Reply(text="Nothing was recorded: you have not agreed to take part.")
            await checkins.save_note(session, person.id, cohort.id, ref.week, (submission.note or "").strip(), submission.at)
            answered = await checkins.answers_for_week(session, person.id, cohort.id, ref.week)
            note = await checkins.note_for_week(session, person.id, cohort.id, ref.week)
        return Reply(update=checklist_message(build_checklist(program, spec, ref.week), answered, note=note))


async def _choose(session: AsyncSession, person: Person, cohort_id: int, ref: ChoiceRef, at: datetime) -> str:
    """Store a skip or a snooze of the week; returns the line the checklist shows for it."""
    zone = ZoneInfo(person.timezone)
    if ref.action == "skip":
        await checkins.set_week_choice(session, person.id, cohort_id, ref.week, skipped_at=at)
        return "Skipped this week. See you next week."
    until = at + SNOOZE if ref.action == "snooze" else _next_morning(at, zone)
    await checkins.set_week_choice(session, person.id, cohort_id, ref.week, snoozed_until=until)
    return f"Snoozed until {until.astimezone(zone):%a %H:%M}."


def _actor(platform: str, user_id: str, person: Person | None) -> str:
    """Who the audit log names: the program email when the person is known, else the platform id."""
    return person.email if person is not None and person.email else f"{platform}:{user_id}"


def _audit_refusal(
    session: AsyncSession, platform: str, user_id: str, person: Person | None, action: str, cohort: str, at: datetime
) -> None:
    audit.record(session, at, _actor(platform, user_id, person), action, subject=cohort, outcome="refused")


def _next_morning(at: datetime, zone: ZoneInfo) -> datetime:
    """08:00 local on the next weekday."""
    day = at.astimezone(zone).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, MORNING, zone)
