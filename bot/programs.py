"""Program use cases: load a program file into the database, describe the one in force."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from bot.identity import ROLE_GROUPS, ROLES, Unlinked
from nudges.program import Program, ProgramError
from storage import audit, failures, people
from storage.db import Database
from storage.models import Cohort, Membership, ProgramVersion
from storage.programs import SavedProgram, current_program, save_program


async def store_program(db: Database, program: Program, source: str, now: datetime, actor: str = "cli") -> SavedProgram:
    """Store a validated program (see bot.files.load_program) and audit the load, and every role
    the file no longer gives (the person keeps their answers, not the role)."""
    async with db.session() as session:
        saved = await save_program(session, program, source, now)
        audit.record(session, now, actor, "program.load", subject=program.program, version=saved.version_id, changed=saved.changed)
        for email, role, cohort in saved.removed:
            audit.record(session, now, actor, "role.removed", subject=email, role=role, cohort=cohort)
    return saved


def load_report(source: str, program: Program, saved: SavedProgram, unlinked: list[Unlinked], warnings: Sequence[str] = ()) -> list[str]:
    """What `program load` tells the program owner: the version, the file's warnings, roles
    removed, and who could not be linked to a chat account (grouped by role, with the reason)."""
    state = f"loaded as version {saved.version_id}" if saved.changed else f"unchanged (version {saved.version_id})"
    lines = [f"{source}: {program.program} {state}: {saved.cohorts} cohorts, {saved.participants} members"]
    lines += [f"warning: {warning}" for warning in warnings]
    if saved.removed:
        lines.append(f"{len(saved.removed)} roles are no longer in the file and were removed (answers given are kept):")
        lines += [f"  {email}: {role}{f' of {cohort}' if cohort else ''}" for email, role, cohort in saved.removed]
    if unlinked:
        lines.append(f"{len(unlinked)} people could not be linked to a chat account; they get no messages and cannot act until they are")
        lines.append("(anyone not found now is linked when they first write to the bot):")
        for role in ROLES:
            group = [u for u in unlinked if u.roles[0] == role]
            if group:
                lines.append(f"  {ROLE_GROUPS[role]}:")
                lines += [f"    {u.email}: {u.reason}" for u in group]
    return lines


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


# How far back `program show` counts failed deliveries.
FAILURES_SINCE = timedelta(days=7)


async def describe_program(db: Database, now: datetime | None = None) -> str:
    """A short summary of the program in force, with member counts from the database, and the
    deliveries that failed: channels the bot cannot post in first, since nobody else is told."""
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
        failing = await failures.failing_channels(session)
        failed, reasons = await failures.recent(session, (now or datetime.now(UTC)) - FAILURES_SINCE)
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
    if failing:
        lines.append("channels the bot cannot post in (their latest post failed):")
        lines += [f"  {f.platform} {f.channel} ({f.kind}): {f.reason}" for f in failing]
    if failed:
        lines.append(f"failed deliveries in the last {FAILURES_SINCE.days} days: {failed}")
        lines += [f"  {g.count} {g.kind}: {g.reason}" for g in reasons]
    return "\n".join(lines)
