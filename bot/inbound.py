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

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import ChatPort, Click, Recipient, Reply, Submission, TextCommand
from bot.checkins import AnswerOutcome, enqueue_checklist_for, record_answers, record_nudge_feedback
from bot.digests import scheduled_digest
from bot.home import home_view
from bot.identity import Identities
from bot.programs import ProgramSource
from bot.rehearsals import Rehearsals
from nudges.checklist import AnswerError, ChoiceRef, build_checklist, checklist_message
from nudges.consent import ACCEPT, DECLINE
from nudges.digest import render_text
from nudges.messages import Message
from nudges.program import Program, ProgramError
from nudges.weeks import IsoWeek
from storage import audit, checkins, people
from storage.db import Database
from storage.models import Consent, Person

log = logging.getLogger(__name__)

NOTE_LIMIT = 2000
COMMAND_LIMIT = 500
HELP = (
    "Reinforce commands: `help` this list · `checkin` this week's checklist again · `rehearse` practise a pitch · "
    "`pause` / `resume` stop or restart messages · `optout` stop taking part. "
    "Sponsors: `digest COHORT`. Program owners: `status`."
)
COMMANDS = frozenset({"", "help", "pause", "resume", "optout", "checkin", "rehearse", "digest", "status"})
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
            return await self.command(TextCommand(click.platform, click.user_id, click.value.removeprefix("cmd|"), click.at))
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
        text = command.text.strip()
        verb, _, rest = text.partition(" ")
        verb = verb.lower()
        if verb not in COMMANDS:
            # Not a command: in a running rehearsal it is the leader's next line.
            during = await self.rehearsals.say(command) if self.rehearsals is not None else None
            return during if during is not None else Reply(text=f"I don't know “{verb[:40]}”. {HELP}")
        if len(text) > COMMAND_LIMIT:
            return Reply(text=f"That command is too long (over {COMMAND_LIMIT} characters).")
        match verb:
            case "" | "help":
                return Reply(text=HELP)
            case "pause" | "resume" | "optout":
                return await self._membership(command, verb)
            case "checkin":
                return await self._checkin(command)
            case "rehearse":
                if self.rehearsals is None:
                    return Reply(text="Pitch rehearsals are not configured.")
                started = await self.rehearsals.start(command.platform, command.user_id, rest.strip() or None, command.at)
                # A typed command has no message to update: say it as text instead.
                return (
                    started
                    if started.text or started.update is None
                    else Reply(text=started.update.text + ". I have sent it to our direct messages.")
                )
            case "digest" | "status":
                return await self._gated(command, verb, rest.strip())
        return Reply(text=HELP)

    async def message(self, command: TextCommand) -> Reply:
        """Free text in the DM: a rehearsal turn when one is running, else a command."""
        await self.identities.recognise(command.platform, command.user_id, command.at)
        if len(command.text) > COMMAND_LIMIT * 8:
            return Reply(text="That message is too long for me; please keep it under 4,000 characters.")
        during = await self.rehearsals.say(command) if self.rehearsals is not None else None
        return during if during is not None else await self.command(command)

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
        async with self.db.session() as session:
            person = await people.by_platform_id(session, click.platform, click.user_id)
            cohort = await people.is_participant(session, person.id, ref.cohort) if person else None
            if person is None or cohort is None:
                _audit_refusal(session, click.platform, click.user_id, person, f"checkin.{ref.action}", ref.cohort, click.at)
                return Reply(text="This checklist is not yours.")
            zone = ZoneInfo(person.timezone)
            if ref.action == "skip":
                await checkins.set_week_choice(session, person.id, cohort.id, ref.week, skipped_at=click.at)
                status = "Skipped this week. See you next week."
            else:
                until = click.at + SNOOZE if ref.action == "snooze" else _next_morning(click.at, zone)
                await checkins.set_week_choice(session, person.id, cohort.id, ref.week, snoozed_until=until)
                status = f"Snoozed until {until.astimezone(zone):%a %H:%M}."
            answered = await checkins.answers_for_week(session, person.id, cohort.id, ref.week)
            note = await checkins.note_for_week(session, person.id, cohort.id, ref.week)
        message = checklist_message(build_checklist(program, program.cohort(ref.cohort), ref.week), answered, note=note, status=status)
        return Reply(update=message)

    async def _note(self, program: Program, submission: Submission, context: str) -> Reply:
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

    async def _membership(self, command: TextCommand, verb: str) -> Reply:
        async with self.db.session() as session:
            person = await people.by_platform_id(session, command.platform, command.user_id)
            if person is None:
                return Reply(text="You are not a member of a Reinforce program.")
            if verb == "pause":
                await people.set_paused(session, person.id, command.at)
                text = "Paused: no check-ins or nudges until you type `resume`."
            elif verb == "resume":
                await people.set_paused(session, person.id, None)
                if await people.consent_status(session, person.id) in ("declined", "withdrawn"):
                    await people.set_consent(session, person.id, "pending", command.at)
                    audit.record(session, command.at, person.email, "consent.asked_again", subject=person.email)
                    return Reply(text="Welcome back. Before I record anything, please accept the consent message I am sending you.")
                text = "Resumed: your weekly check-in continues."
            else:
                await people.set_consent(session, person.id, "withdrawn", command.at)
                audit.record(session, command.at, person.email, "consent.withdrawn", subject=person.email)
                text = (
                    "You are opted out: no more check-ins, nudges or reminders, and nothing new is recorded. "
                    "Answers you already gave stay in cohort totals only; ask your program owner to delete everything about you."
                )
        return Reply(text=text)

    async def _checkin(self, command: TextCommand) -> Reply:
        program = await self.programs.get()
        async with self.db.session() as session:
            person = await people.by_platform_id(session, command.platform, command.user_id)
            if person is None:
                return Reply(text="You are not a member of a Reinforce program.")
            if await people.consent_status(session, person.id) != "accepted":
                return Reply(text="Please accept the consent message first; type `resume` to get it again.")
            cohorts = await people.participations(session, person.id)
            week = IsoWeek.of(command.at.astimezone(ZoneInfo(person.timezone)))
            running = [c for c in cohorts if program.cohort(c.key).is_running(week)]
            if not running:
                return Reply(text="Your cohort has no check-in this week.")
            cohort = running[0]
            answered = await checkins.answers_for_week(session, person.id, cohort.id, week)
            note = await checkins.note_for_week(session, person.id, cohort.id, week)
            streak = await checkins.streak(session, person.id, cohort.id, week)
        chat = self.chats.get(command.platform)
        if chat is None:
            return Reply(text="I cannot reach you on this platform right now.")
        message = checklist_message(build_checklist(program, program.cohort(cohort.key), week), answered, streak, note)
        await chat.send(Recipient(command.platform, user_id=command.user_id), message)
        return Reply(text="I have sent this week's checklist to our direct messages.")

    async def _gated(self, command: TextCommand, verb: str, argument: str) -> Reply:
        """Sponsor and admin commands: refused (and audited) for anyone without the role."""
        program = await self.programs.get()
        role = "sponsor" if verb == "digest" else "admin"
        async with self.db.session() as session:
            person = await people.by_platform_id(session, command.platform, command.user_id)
            actor = _actor(command.platform, command.user_id, person)
            cohort_key = argument.split(" ")[0] if verb == "digest" and argument else None
            if verb == "digest" and cohort_key is None and person is not None:
                owned = await people.cohorts_with_role(session, person.id, "sponsor")
                cohort_key = owned[0] if len(owned) == 1 else None
            allowed = person is not None and (
                await people.holds_role(session, person.id, "admin") or await people.holds_role(session, person.id, role, cohort_key)
            )
            if verb == "digest" and allowed and cohort_key is None:
                return Reply(text="Which cohort? Type `digest COHORT`.")
            audit.record(session, command.at, actor, f"command.{verb}", subject=cohort_key, outcome="ok" if allowed else "refused")
        if not allowed:
            return Reply(text=f"Only {role}s can use `{verb}`.")
        if verb == "status":
            return Reply(text=await _status_text(self.db, program))
        try:
            spec = program.cohort(cohort_key or "")
        except ProgramError as exc:
            return Reply(text=str(exc))
        week = IsoWeek.of(command.at)
        return Reply(text=render_text(await scheduled_digest(self.db, program, spec.key, week, command.at)))


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


async def _status_text(db: Database, program: Program) -> str:
    async with db.session() as session:
        counts = dict((await session.execute(select(Consent.status, func.count()).group_by(Consent.status))).all())
    members = sum(len(c.members) for c in program.cohorts)
    return (
        f"{program.program}: {len(program.cohorts)} cohorts, {members} members; consent accepted {counts.get('accepted', 0)}, "
        f"pending {counts.get('pending', 0)}, declined {counts.get('declined', 0)}, withdrawn {counts.get('withdrawn', 0)}."
    )
