"""Storing the program file: its versions, and the cohorts, people and roles it declares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nudges.program import Cohort as CohortSpec
from nudges.program import Program, parse_program
from storage.db import insert
from storage.models import Cohort, Membership, Person, ProgramVersion


@dataclass(frozen=True)
class SavedProgram:
    version_id: int
    changed: bool
    cohorts: int
    participants: int
    deactivated: int


async def current_program(session: AsyncSession) -> tuple[Program, ProgramVersion] | None:
    """The program in force (the latest loaded version), or None if none was loaded."""
    row = await session.scalar(select(ProgramVersion).order_by(ProgramVersion.id.desc()).limit(1))
    if row is None:
        return None
    return parse_program(row.content, f"program version {row.id}"), row


async def save_program(session: AsyncSession, program: Program, source: str, now: datetime) -> SavedProgram:
    """Record a new version (if the content changed) and bring cohorts, people and roles in line.

    Memberships that the file no longer lists are deactivated, never deleted: their answers
    stay attached to the cohort they were given in.
    """
    latest = await current_program(session)
    content_hash = program.content_hash()
    changed = latest is None or latest[1].content_hash != content_hash
    if changed:
        version = ProgramVersion(
            name=program.program, content_hash=content_hash, content=program.model_dump(mode="json"), source=source, loaded_at=now
        )
        session.add(version)
        await session.flush()
        version_id = version.id
    else:
        version_id = latest[1].id  # type: ignore[index]

    cohort_ids = {c.key: await _upsert_cohort(session, c) for c in program.cohorts}
    wanted: set[tuple[int, int | None, str]] = set()
    for email in program.admins:
        wanted.add((await _upsert_person(session, email, now), None, "admin"))
    participants = 0
    for cohort in program.cohorts:
        cid = cohort_ids[cohort.key]
        for member in cohort.members:
            person_id = await _upsert_person(session, member.email, now, member.platform, member.timezone, member.name)
            wanted.add((person_id, cid, "participant"))
            participants += 1
        for role, emails in (("sponsor", cohort.sponsors), ("coach", cohort.coaches)):
            for email in emails:
                wanted.add((await _upsert_person(session, email, now), cid, role))

    existing = (
        await session.execute(select(Membership.id, Membership.person_id, Membership.cohort_id, Membership.role, Membership.active))
    ).all()
    have = {(p, c, r): (mid, active) for mid, p, c, r, active in existing}
    for key in wanted:
        if key not in have:
            session.add(Membership(person_id=key[0], cohort_id=key[1], role=key[2], active=True, joined_at=now))
    revive = [have[k][0] for k in wanted if k in have and not have[k][1]]
    retire = [mid for k, (mid, active) in have.items() if active and k not in wanted]
    if revive:
        await session.execute(update(Membership).where(Membership.id.in_(revive)).values(active=True))
    if retire:
        await session.execute(update(Membership).where(Membership.id.in_(retire)).values(active=False))
    return SavedProgram(version_id, changed, len(program.cohorts), participants, len(retire))


async def _upsert_cohort(session: AsyncSession, cohort: CohortSpec) -> int:
    values = {"key": cohort.key, "name": cohort.name, "starts": cohort.starts, "weeks": cohort.weeks, "comparison_key": cohort.comparison}
    stmt = insert(session, Cohort).values(**values)
    stmt = stmt.on_conflict_do_update(index_elements=[Cohort.key], set_={k: stmt.excluded[k] for k in values if k != "key"})
    await session.execute(stmt)
    return await session.scalar(select(Cohort.id).where(Cohort.key == values["key"]))  # type: ignore[return-value]


async def _upsert_person(
    session: AsyncSession, email: str, now: datetime, platform: str | None = None, timezone: str | None = None, name: str | None = None
) -> int:
    """Insert a person by email; a participant entry also refreshes platform, zone and name."""
    stmt = insert(session, Person).values(email=email, name=name, timezone=timezone or "UTC", platform=platform, created_at=now)
    if platform is None:
        stmt = stmt.on_conflict_do_nothing(index_elements=[Person.email])
    else:
        stmt = stmt.on_conflict_do_update(
            index_elements=[Person.email],
            set_={
                "platform": platform,
                "timezone": timezone,
                "name": name,
                # A member who moved platform must be resolved again on the new one.
                "platform_user_id": case((Person.platform == platform, Person.platform_user_id), else_=None),
            },
        )
    await session.execute(stmt)
    return await session.scalar(select(Person.id).where(Person.email == email))  # type: ignore[return-value]
