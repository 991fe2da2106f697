"""Program use cases: load a program file into the database, describe the one in force."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import func, select, update

from adapters.base import ChatPort, DeliveryError
from nudges.program import Program, ProgramError
from storage import audit, people
from storage.db import Database
from storage.models import Cohort, Membership, Person, ProgramVersion
from storage.programs import SavedProgram, current_program, save_program


async def store_program(db: Database, program: Program, source: str, now: datetime, actor: str = "cli") -> SavedProgram:
    """Store a validated program (see bot.files.load_program) and audit the load."""
    async with db.session() as session:
        saved = await save_program(session, program, source, now)
        audit.record(session, now, actor, "program.load", subject=program.program, version=saved.version_id, changed=saved.changed)
    return saved


class ProgramSource:
    """The program in force, parsed once per loaded version rather than once per request.

    The database is asked whether a newer version was loaded at most every ``recheck``
    seconds, so a `reinforce program load` reaches running processes within that time.
    """

    def __init__(self, db: Database, recheck: float = 5.0) -> None:
        self.db = db
        self.recheck = recheck
        self._cached: tuple[int, Program] | None = None
        self._checked_at = float("-inf")
        # One caller checks at a time: the burst of requests after a start (or a reload)
        # would otherwise each parse the program, which for thousands of members is slow.
        self._checking = asyncio.Lock()

    async def get(self) -> Program:
        """Raises ProgramError when no program has been loaded."""
        if (program := self._fresh()) is not None:
            return program
        async with self._checking:
            return self._fresh() or await self._check()  # another caller may have checked meanwhile

    def _fresh(self) -> Program | None:
        """The cached program, if it was checked within the last ``recheck`` seconds."""
        if self._cached is not None and time.monotonic() - self._checked_at < self.recheck:
            return self._cached[1]
        return None

    async def _check(self) -> Program:
        async with self.db.session() as session:
            latest = await session.scalar(select(func.max(ProgramVersion.id)))
            if latest is None:
                raise ProgramError("no program is loaded yet: run `reinforce program load FILE` first")
            if self._cached is None or self._cached[0] != latest:
                found = await current_program(session)
                assert found is not None
                self._cached = (found[1].id, found[0])
        self._checked_at = time.monotonic()
        return self._cached[1]


async def program_in_force(db: Database) -> Program:
    """The loaded program; raises ProgramError telling the operator how to load one."""
    async with db.session() as session:
        found = await current_program(session)
    if found is None:
        raise ProgramError("no program is loaded yet: run `reinforce program load FILE` first")
    return found[0]


async def describe_program(db: Database) -> str:
    """A short summary of the program in force, with member counts from the database."""
    async with db.session() as session:
        found = await current_program(session)
        if found is None:
            raise ProgramError("no program is loaded yet: run `reinforce program load FILE` first")
        program, version = found
        counts = dict(
            (
                await session.execute(
                    select(Cohort.key, func.count(Membership.id))
                    .join(Membership, Membership.cohort_id == Cohort.id)
                    .where(Membership.role == "participant", Membership.active)
                    .group_by(Cohort.key)
                )
            ).all()
        )
        verdicts = await people.nudge_verdicts(session)
    lines = [
        f"{program.program} (version {version.id}, loaded {version.loaded_at:%Y-%m-%d %H:%M} UTC from {version.source})",
        f"min group size {program.min_group_size}; admins: {', '.join(program.admins) or 'none'}",
        "behaviors:",
        *(f"  {b.key} ({b.answer}, {len(b.nudges)} nudges): {b.question}" for b in program.behaviors),
        "cohorts:",
    ]
    for c in program.cohorts:
        comparison = f", compared with {c.comparison}" if c.comparison else ""
        plan = f", plan: {c.plan.method} on {c.plan.primary_behavior} from {c.plan.first_analysis}" if c.plan else ""
        lines.append(f"  {c.key} — {c.name}: starts {c.starts}, {c.weeks} weeks, {counts.get(c.key, 0)} members{comparison}{plan}")
        lines.append(f"    checklist: {', '.join(c.checklist)}")
        lines.append(f"    receives: {program.treatment_summary(c.key)}")
    if verdicts:
        # Counts only: which nudges members find useful, never who said what.
        lines.append("nudge feedback (useful / not for me):")
        for nudge_id, counts in sorted(verdicts.items()):
            lines.append(f"  {nudge_id}: {counts.get('useful', 0)} / {counts.get('not_for_me', 0)}")
    return "\n".join(lines)


async def resolve_members(db: Database, chats: Mapping[str, ChatPort]) -> list[str]:
    """Find each participant's platform id by email; returns the ones nobody has (to report them).

    Members already resolved are not looked up again.
    """
    async with db.session() as session:
        pending = (
            await session.scalars(
                select(Person)
                .join(Membership, Membership.person_id == Person.id)
                .where(Membership.role == "participant", Membership.active, Person.platform_user_id.is_(None))
                .order_by(Person.email)
            )
        ).all()
    unresolved = []
    for person in pending:
        chat = chats.get(person.platform or "")
        if chat is None:
            unresolved.append(f"{person.email}: {person.platform} is not configured")
            continue
        try:
            user_id = await chat.resolve(person.email)
        except DeliveryError as exc:
            unresolved.append(f"{person.email}: {exc.reason}")
            continue
        if user_id is None:
            unresolved.append(f"{person.email}: nobody on {person.platform} has this email")
            continue
        async with db.session() as session:
            await session.execute(update(Person).where(Person.id == person.id).values(platform_user_id=user_id))
    return unresolved
