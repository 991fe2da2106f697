"""Queries about people: lookup by email or platform id, consent, roles."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import accounts
from storage.db import insert
from storage.models import Cohort, Consent, Membership, NudgeFeedback, Person


async def by_email(session: AsyncSession, email: str) -> Person | None:
    return await session.scalar(select(Person).where(Person.email == email.strip().lower()))


async def by_platform_id(session: AsyncSession, platform: str, user_id: str) -> Person | None:
    """The person whose linked account on ``platform`` is ``user_id``."""
    return await accounts.person_of(session, platform, user_id)


async def by_emails(session: AsyncSession, emails: Iterable[str]) -> Person | None:
    """The person whose program email is one of ``emails`` (a platform profile may give two)."""
    wanted = sorted({e.strip().lower() for e in emails if e})
    if not wanted:
        return None
    return await session.scalar(select(Person).where(Person.email.in_(wanted)).order_by(Person.id).limit(1))


async def consent_status(session: AsyncSession, person_id: int) -> str | None:
    return await session.scalar(select(Consent.status).where(Consent.person_id == person_id))


async def set_consent(session: AsyncSession, person_id: int, status: str, now: datetime) -> None:
    stmt = insert(session, Consent).values(person_id=person_id, status=status, changed_at=now)
    await session.execute(stmt.on_conflict_do_update(index_elements=[Consent.person_id], set_={"status": status, "changed_at": now}))


async def is_participant(session: AsyncSession, person_id: int, cohort_key: str) -> Cohort | None:
    """The cohort if the person is an active participant of it, else None."""
    return await session.scalar(
        select(Cohort)
        .join(Membership, Membership.cohort_id == Cohort.id)
        .where(Cohort.key == cohort_key, Membership.person_id == person_id, Membership.role == "participant", Membership.active)
    )


async def reachable_participants(session: AsyncSession, cohort_id: int) -> list[tuple[Person, str | None, datetime]]:
    """Active, unpaused participants of a cohort with their consent status and when they
    joined, in a stable order."""
    rows = await session.execute(
        select(Person, Consent.status, Membership.joined_at)
        .join(Membership, Membership.person_id == Person.id)
        .outerjoin(Consent, Consent.person_id == Person.id)
        .where(Membership.cohort_id == cohort_id, Membership.role == "participant", Membership.active, Person.paused_at.is_(None))
        .order_by(Person.id)
    )
    return [(person, status, joined) for person, status, joined in rows]


async def set_paused(session: AsyncSession, person_id: int, paused_at: datetime | None) -> None:
    person = await session.get(Person, person_id)
    if person is not None:
        person.paused_at = paused_at


async def participations(session: AsyncSession, person_id: int) -> list[Cohort]:
    """The cohorts a person is an active participant of (normally one)."""
    rows = await session.scalars(
        select(Cohort)
        .join(Membership, Membership.cohort_id == Cohort.id)
        .where(Membership.person_id == person_id, Membership.role == "participant", Membership.active)
        .order_by(Cohort.id)
    )
    return list(rows)


async def holds_role(session: AsyncSession, person_id: int, role: str, cohort_key: str | None = None) -> bool:
    """Whether the person holds ``role`` (in ``cohort_key``, when given; admins hold it everywhere)."""
    query = (
        select(Membership.id)
        .outerjoin(Cohort, Membership.cohort_id == Cohort.id)
        .where(Membership.person_id == person_id, Membership.role == role, Membership.active)
    )
    if cohort_key is not None:
        query = query.where(Cohort.key == cohort_key)
    return await session.scalar(query.limit(1)) is not None


async def with_role(session: AsyncSession, role: str) -> list[Person]:
    """Everyone who actively holds ``role`` somewhere (admins: program-wide), in a stable order."""
    rows = await session.scalars(
        select(Person)
        .join(Membership, Membership.person_id == Person.id)
        .where(Membership.role == role, Membership.active)
        .distinct()
        .order_by(Person.id)
    )
    return list(rows)


async def cohorts_with_role(session: AsyncSession, person_id: int, role: str) -> list[str]:
    rows = await session.scalars(
        select(Cohort.key)
        .join(Membership, Membership.cohort_id == Cohort.id)
        .where(Membership.person_id == person_id, Membership.role == role, Membership.active)
        .order_by(Cohort.key)
    )
    return list(rows)


async def not_for_me_counts(session: AsyncSession, person_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """person -> nudge id -> how often they said "Not for me" to it."""
    ids = list(set(person_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(NudgeFeedback.person_id, NudgeFeedback.nudge_id, func.count())
        .where(NudgeFeedback.person_id.in_(ids), NudgeFeedback.verdict == "not_for_me")
        .group_by(NudgeFeedback.person_id, NudgeFeedback.nudge_id)
    )
    found: dict[int, dict[str, int]] = {}
    for person_id, nudge, count in rows:
        found.setdefault(person_id, {})[nudge] = count
    return found


async def save_nudge_feedback(session: AsyncSession, person_id: int, nudge_id: str, week: str, verdict: str, now: datetime) -> None:
    stmt = insert(session, NudgeFeedback).values(person_id=person_id, nudge_id=nudge_id, week=week, verdict=verdict, at=now)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[NudgeFeedback.person_id, NudgeFeedback.nudge_id, NudgeFeedback.week], set_={"verdict": verdict, "at": now}
        )
    )


async def nudge_verdicts(session: AsyncSession) -> dict[str, dict[str, int]]:
    """nudge id -> verdict -> how many members gave it: the program owner's view of what works."""
    rows = await session.execute(
        select(NudgeFeedback.nudge_id, NudgeFeedback.verdict, func.count()).group_by(NudgeFeedback.nudge_id, NudgeFeedback.verdict)
    )
    found: dict[str, dict[str, int]] = {}
    for nudge, verdict, count in rows:
        found.setdefault(nudge, {})[verdict] = count
    return found
