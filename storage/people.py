"""Queries about people: lookup by email or platform id, consent, roles."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import insert
from storage.models import Cohort, Consent, Membership, Person


async def by_email(session: AsyncSession, email: str) -> Person | None:
    return await session.scalar(select(Person).where(Person.email == email.strip().lower()))


async def by_platform_id(session: AsyncSession, platform: str, user_id: str) -> Person | None:
    return await session.scalar(select(Person).where(Person.platform == platform, Person.platform_user_id == user_id))


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


async def consented_participants(session: AsyncSession, cohort_id: int) -> list[Person]:
    """Active participants of a cohort who accepted consent, in a stable order."""
    rows = await session.scalars(
        select(Person)
        .join(Membership, Membership.person_id == Person.id)
        .join(Consent, Consent.person_id == Person.id)
        .where(Membership.cohort_id == cohort_id, Membership.role == "participant", Membership.active, Consent.status == "accepted")
        .order_by(Person.id)
    )
    return list(rows)
