"""Typed commands (`pause`, `checkin`, `digest` ...), each carried out once per platform event.

A command's platform event id is claimed in the transaction that stores its effect, and the
adapter answers the platform only after that transaction: a command the platform saw
answered is stored, a retry after a failure runs it, and a retry after success does nothing.
A reply that changes nothing (help, an unknown word, a refusal) claims nothing: a retry of
it is answered again. What is slow (sending a checklist, a rehearsal's answer) follows the
answer, through the outbox or the rehearsal's own work after the ack.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import Reply, TextCommand
from bot.checkins import queue_checklist
from bot.digests import scheduled_digest
from bot.programs import ProgramSource
from bot.rehearsals import Rehearsals
from nudges.digest import render_text
from nudges.program import Program, ProgramError
from nudges.weeks import IsoWeek
from storage import audit, checkins, people
from storage.db import Database
from storage.models import Consent, Person

COMMAND_LIMIT = 500
MESSAGE_LIMIT = 4000
HELP = (
    "Reinforce commands: `help` this list · `checkin` this week's checklist again · `rehearse` practise a pitch · "
    "`pause` / `resume` stop or restart messages · `optout` stop taking part. "
    "Sponsors: `digest COHORT`. Program owners: `status`."
)
COMMANDS = frozenset({"", "help", "pause", "resume", "optout", "checkin", "rehearse", "digest", "status"})
NOT_A_MEMBER = "You are not a member of a Reinforce program."
NEEDS_PROGRAM = frozenset({"checkin", "rehearse", "digest", "status"})


async def _first_time(session: AsyncSession, command: TextCommand) -> bool:
    """Claim the command's platform event in ``session``'s transaction, the one that stores its
    effect: False for a retry of an event already carried out. A command without an event id
    (a slash command, which Slack never retries) is always new."""
    return command.event_id is None or await checkins.claim_event(session, command.platform, command.event_id, command.at)


def _copy_key(command: TextCommand) -> str:
    """What tells one `checkin` request from another: its event (or, without one, the member
    and the instant), hashed to fit the outbox key."""
    source = command.event_id or f"{command.user_id}@{command.at.isoformat()}"
    return hashlib.sha256(f"{command.platform}\0{source}".encode()).hexdigest()[:24]


class Commands:
    """The typed-command use cases behind adapters.base.Inbound's ``command`` and ``message``."""

    def __init__(self, db: Database, programs: ProgramSource, rehearsals: Rehearsals | None = None) -> None:
        self.db = db
        self.programs = programs
        self.rehearsals = rehearsals

    async def message(self, command: TextCommand) -> Reply:
        """Free text in the DM: a rehearsal turn when one is running, else a command."""
        if len(command.text) > MESSAGE_LIMIT:
            return Reply(text="That message is too long for me; please keep it under 4,000 characters.")
        during = await self.rehearsals.say(command) if self.rehearsals is not None else None
        return during if during is not None else await self._run(command)

    async def command(self, command: TextCommand) -> Reply:
        """A command typed where only commands are expected; other text is a rehearsal's next line."""
        verb = command.text.strip().partition(" ")[0].lower()
        if verb not in COMMANDS and self.rehearsals is not None and (during := await self.rehearsals.say(command)) is not None:
            return during
        return await self._run(command)

    async def _run(self, command: TextCommand) -> Reply:
        text = command.text.strip()
        verb, _, rest = text.partition(" ")
        verb = verb.lower()
        if verb not in COMMANDS:
            return Reply(text=f"I don't know “{verb[:40]}”. {HELP}")
        if len(text) > COMMAND_LIMIT:
            return Reply(text=f"That command is too long (over {COMMAND_LIMIT} characters).")
        if verb in NEEDS_PROGRAM and not await self._program_loaded():
            return Reply(text="Reinforce is not set up yet: your program owner has not loaded the program.")
        match verb:
            case "pause" | "resume" | "optout":
                return await self._membership(command, verb)
            case "checkin":
                return await self._checkin(command)
            case "rehearse":
                return await self._rehearse(command, rest.strip())
            case "digest" | "status":
                return await self._gated(command, verb, rest.strip())
        return Reply(text=HELP)

    async def _program_loaded(self) -> bool:
        """Whether a program is loaded (before the first `reinforce program load`, none is: a
        member is told so rather than the platform getting a 500 to retry)."""
        try:
            await self.programs.get()
        except ProgramError:
            return False
        return True

    async def _membership(self, command: TextCommand, verb: str) -> Reply:
        async with self.db.session() as session:
            person = await people.by_platform_id(session, command.platform, command.user_id)
            if person is None:
                return Reply(text=NOT_A_MEMBER)
            if not await _first_time(session, command):
                return Reply()
            if verb == "pause":
                await people.set_paused(session, person.id, command.at)
                return Reply(text="Paused: no check-ins or nudges until you type `resume`.")
            if verb == "resume":
                return Reply(text=await _resume(session, person, command.at))
            await people.set_consent(session, person.id, "withdrawn", command.at)
            audit.record(session, command.at, person.email, "consent.withdrawn", subject=person.email)
        return Reply(
            text="You are opted out: no more check-ins, nudges or reminders, and nothing new is recorded. "
            "Answers you already gave stay in cohort totals only; ask your program owner to delete everything about you."
        )

    async def _checkin(self, command: TextCommand) -> Reply:
        """Queue this week's checklist again, one outbox row per request (the worker sends it)."""
        program = await self.programs.get()
        async with self.db.session() as session:
            person = await people.by_platform_id(session, command.platform, command.user_id)
            if person is None:
                return Reply(text=NOT_A_MEMBER)
            if await people.consent_status(session, person.id) != "accepted":
                return Reply(text="Please accept the consent message first; type `resume` to get it again.")
            week = IsoWeek.of(command.at.astimezone(ZoneInfo(person.timezone)))
            running = [c for c in await people.participations(session, person.id) if program.cohort(c.key).is_running(week)]
            if not running:
                return Reply(text="Your cohort has no check-in this week.")
            if not await _first_time(session, command):
                return Reply()
            for cohort in running:
                await queue_checklist(session, person, cohort.id, cohort.key, week, command.at, copy=_copy_key(command))
        return Reply(text="This week's checklist is on its way to our direct messages.")

    async def _rehearse(self, command: TextCommand, key: str) -> Reply:
        if self.rehearsals is None:
            return Reply(text="Pitch rehearsals are not configured.")
        started = await self.rehearsals.start(command.platform, command.user_id, key or None, command.at, command.event_id)
        # A typed command has no message to update: say it as text instead.
        if started.text or started.update is None:
            return started
        return Reply(text=started.update.text + ". I have sent it to our direct messages.")

    async def _gated(self, command: TextCommand, verb: str, argument: str) -> Reply:
        """Sponsor and admin commands: refused (and audited) for anyone without the role. An
        allowed one claims its event with its audit entry; the digest is read after that
        transaction."""
        program = await self.programs.get()
        role = "sponsor" if verb == "digest" else "admin"
        async with self.db.session() as session:
            person = await people.by_platform_id(session, command.platform, command.user_id)
            actor = person.email if person is not None and person.email else f"{command.platform}:{command.user_id}"
            cohort_key = argument.split(" ")[0] if verb == "digest" and argument else None
            if verb == "digest" and cohort_key is None and person is not None:
                owned = await people.cohorts_with_role(session, person.id, "sponsor")
                cohort_key = owned[0] if len(owned) == 1 else None
            allowed = person is not None and (
                await people.holds_role(session, person.id, "admin") or await people.holds_role(session, person.id, role, cohort_key)
            )
            if verb == "digest" and allowed and cohort_key is None:
                return Reply(text="Which cohort? Type `digest COHORT`.")
            if allowed and not await _first_time(session, command):
                return Reply()
            audit.record(session, command.at, actor, f"command.{verb}", subject=cohort_key, outcome="ok" if allowed else "refused")
        if not allowed:
            return Reply(text=f"Only {role}s can use `{verb}`.")
        if verb == "status":
            return Reply(text=await _status_text(self.db, program))
        try:
            spec = program.cohort(cohort_key or "")
        except ProgramError as exc:
            return Reply(text=str(exc))
        return Reply(text=render_text(await scheduled_digest(self.db, program, spec.key, IsoWeek.of(command.at), command.at)))


async def _resume(session: AsyncSession, person: Person, at: datetime) -> str:
    await people.set_paused(session, person.id, None)
    if await people.consent_status(session, person.id) in ("declined", "withdrawn"):
        await people.set_consent(session, person.id, "pending", at)
        audit.record(session, at, person.email, "consent.asked_again", subject=person.email)
        return "Welcome back. Before I record anything, please accept the consent message I am sending you."
    return "Resumed: your weekly check-in continues."


async def _status_text(db: Database, program: Program) -> str:
    async with db.session() as session:
        counts = dict((await session.execute(select(Consent.status, func.count()).group_by(Consent.status))).all())
    members = sum(len(c.members) for c in program.cohorts)
    return (
        f"{program.program}: {len(program.cohorts)} cohorts, {members} members; consent accepted {counts.get('accepted', 0)}, "
        f"pending {counts.get('pending', 0)}, declined {counts.get('declined', 0)}, withdrawn {counts.get('withdrawn', 0)}."
    )
