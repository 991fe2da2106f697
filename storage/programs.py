"""Storing the program file: its versions, and the cohorts, people and roles it declares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
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
    # Roles the file no longer gives: (email, role, cohort key or None for an admin).
    removed: list[tuple[str, str, str | None]]

    @property
    def deactivated(self) -> int:
        return len(self.removed)


Role = tuple[int, int | None, str]  # (person id, cohort id or None, role)


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
    version_id, changed = await _store_version(session, program, source, now)
    cohort_ids = {c.key: await _upsert_cohort(session, c) for c in program.cohorts}
    wanted = await _roles(session, program, cohort_ids, now)
    removed = await _apply_roles(session, wanted, now)
    participants = sum(len(c.members) for c in program.cohorts)
    return SavedProgram(version_id, changed, len(program.cohorts), participants, removed)


async def _store_version(session: AsyncSession, program: Program, source: str, now: datetime) -> tuple[int, bool]:
    """The version id of ``program`` (a new one if its content changed) and whether it is new."""
    latest = await current_program(session)
    content_hash = program.content_hash()
    if latest is not None and latest[1].content_hash == content_hash:
        return latest[1].id, False
    version = ProgramVersion(
        name=program.program, content_hash=content_hash, content=program.model_dump(mode="json"), source=source, loaded_at=now
    )
    session.add(version)
    await session.flush()
    return version.id, True


async def _roles(session: AsyncSession, program: Program, cohort_ids: dict[str, int], now: datetime) -> set[Role]:
    """Every role the file gives, its people upserted."""
    wanted: set[Role] = {(await _upsert_person(session, email, now), None, "admin") for email in program.admins}
    for cohort in program.cohorts:
        cid = cohort_ids[cohort.key]
        for member in cohort.members:
            person_id = await _upsert_person(session, member.email, now, member.platform, member.timezone, member.name)
            wanted.add((person_id, cid, "participant"))
        for role, emails in (("sponsor", cohort.sponsors), ("coach", cohort.coaches)):
            for email in emails:
                wanted.add((await _upsert_person(session, email, now), cid, role))
    return wanted


async def _apply_roles(session: AsyncSession, wanted: set[Role], now: datetime) -> list[tuple[str, str, str | None]]:
    """Add and revive the wanted roles, retire the others; returns the retired ones."""
    existing = await session.execute(
        select(Membership.id, Membership.person_id, Membership.cohort_id, Membership.role, Membership.active, Person.email, Cohort.key)
        .join(Person, Person.id == Membership.person_id)
        .outerjoin(Cohort, Cohort.id == Membership.cohort_id)
    )
    have = {(p, c, r): (mid, active, email, key) for mid, p, c, r, active, email, key in existing}
    for person_id, cohort_id, role in wanted - have.keys():
        session.add(Membership(person_id=person_id, cohort_id=cohort_id, role=role, active=True, joined_at=now))
    revive = [have[k][0] for k in wanted & have.keys() if not have[k][1]]
    retire = {k: v for k, v in have.items() if v[1] and k not in wanted}
    if revive:
        await session.execute(update(Membership).where(Membership.id.in_(revive)).values(active=True))
    if retire:
        await session.execute(update(Membership).where(Membership.id.in_([v[0] for v in retire.values()])).values(active=False))
    return sorted((email, role, key) for (_p, _c, role), (_m, _a, email, key) in retire.items())


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
            },
        )
    await session.execute(stmt)
    return await session.scalar(select(Person.id).where(Person.email == email))  # type: ignore[return-value]
