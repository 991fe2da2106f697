"""Program use cases: load a program file into the database, describe the one in force."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from nudges.program import Program, ProgramError
from storage import audit
from storage.db import Database
from storage.models import Cohort, Membership
from storage.programs import SavedProgram, current_program, save_program


async def store_program(db: Database, program: Program, source: str, now: datetime, actor: str = "cli") -> SavedProgram:
    """Store a validated program (see nudges.program.load_program) and audit the load."""
    async with db.session() as session:
        saved = await save_program(session, program, source, now)
        audit.record(session, now, actor, "program.load", subject=program.program, version=saved.version_id, changed=saved.changed)
    return saved


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
    return "\n".join(lines)
