"""Where a chat platform lets the bot write proactively (conversation references), and what
installing or removing the app means for the people of the program.

Queries take a session like the rest of storage; ``AddressBook`` runs each event in one
transaction for a chat adapter, which gets it from the composition root.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from storage import accounts, audit
from storage.db import Database, insert
from storage.models import Account, AuditEntry, ConversationRef, Person

PERSONAL = "personal"
# The audit entry that pauses a member because they removed the app; reinstalling resumes
# them only if that is still why they are paused.
PAUSED, APP_REMOVED = "delivery.paused", "app_removed"


async def save(
    session: AsyncSession, platform: str, tenant_id: str, target: str, scope: str, reference: dict[str, Any], now: datetime
) -> None:
    """Insert or replace the reference for (platform, tenant, target)."""
    values = {"platform": platform, "tenant_id": tenant_id, "target": target, "scope": scope, "reference": reference, "updated_at": now}
    stmt = insert(session, ConversationRef).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[ConversationRef.platform, ConversationRef.tenant_id, ConversationRef.target],
        set_={"scope": scope, "reference": reference, "updated_at": now},
    )
    await session.execute(stmt)


async def find(session: AsyncSession, platform: str, target: str) -> ConversationRef | None:
    """The reference for a member or channel id (targets are unique across tenants in practice)."""
    return await session.scalar(
        select(ConversationRef)
        .where(ConversationRef.platform == platform, ConversationRef.target == target)
        .order_by(ConversationRef.updated_at.desc())
        .limit(1)
    )


async def delete(session: AsyncSession, platform: str, tenant_id: str, target: str) -> bool:
    result = await session.execute(
        sql_delete(ConversationRef).where(
            ConversationRef.platform == platform, ConversationRef.tenant_id == tenant_id, ConversationRef.target == target
        )
    )
    return bool(cast(CursorResult[Any], result).rowcount)


async def in_scope(session: AsyncSession, platform: str, scope: str) -> list[ConversationRef]:
    rows = await session.scalars(
        select(ConversationRef).where(ConversationRef.platform == platform, ConversationRef.scope == scope).order_by(ConversationRef.id)
    )
    return list(rows)


async def unlinked(session: AsyncSession, platform: str) -> list[ConversationRef]:
    """Personal references whose member no person of the program is linked to."""
    linked = select(Account.user_id).where(Account.platform == platform)
    rows = await session.scalars(
        select(ConversationRef)
        .where(ConversationRef.platform == platform, ConversationRef.scope == PERSONAL, ConversationRef.target.not_in(linked))
        .order_by(ConversationRef.id)
    )
    return list(rows)


async def link(session: AsyncSession, platform: str, target: str, emails: Collection[str], now: datetime) -> Person | None:
    """Link the member id ``target`` to the program person with one of ``emails`` (whatever their
    role); resume them if removing the app is what paused them."""
    wanted = {e.strip().lower() for e in emails if e}
    if not wanted:
        return None
    person = await session.scalar(select(Person).where(Person.email.in_(wanted)).order_by(Person.id).limit(1))
    if person is None:
        return None
    if await accounts.link(session, person.id, platform, target, now):
        audit.record(session, now, person.email, "account.linked", subject=person.email, platform=platform, how="app installed")
    if person.paused_at is not None and await _paused_by_removal(session, person):
        person.paused_at = None
        audit.record(
            session, now, person.email, "delivery.resumed", subject=person.email, reason="the app was installed again", platform=platform
        )
    return person


async def unlink(session: AsyncSession, platform: str, target: str, now: datetime, reason: str) -> Person | None:
    """Pause the person with member id ``target`` because they removed the app, with ``reason``
    in the audit log; someone already paused stays paused as they chose."""
    person = await accounts.person_of(session, platform, target)
    if person is None:
        return None
    if person.paused_at is None:
        person.paused_at = now
        audit.record(session, now, person.email, PAUSED, subject=person.email, reason=reason, cause=APP_REMOVED, platform=platform)
    else:
        audit.record(session, now, person.email, "chat.app_removed", subject=person.email, reason=reason, platform=platform)
    return person


async def _paused_by_removal(session: AsyncSession, person: Person) -> bool:
    """Whether the latest pause on record is the app's removal, and nothing paused them since."""
    entry = await session.scalar(
        select(AuditEntry)
        .where(AuditEntry.action == PAUSED, AuditEntry.subject == person.email)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(1)
    )
    return (
        entry is not None
        and (entry.detail or {}).get("cause") == APP_REMOVED
        and person.paused_at is not None
        and entry.at >= person.paused_at
    )


class AddressBook:
    """One platform's conversation references and the install events around them, each event
    in one transaction; matches the ``Addresses`` protocol of a chat adapter."""

    def __init__(self, db: Database, platform: str) -> None:
        self.db = db
        self.platform = platform

    async def remember(
        self, tenant_id: str, target: str, scope: str, reference: dict[str, Any], now: datetime, emails: Collection[str] = ()
    ) -> str | None:
        async with self.db.session() as session:
            await save(session, self.platform, tenant_id, target, scope, reference, now)
            person = await link(session, self.platform, target, emails, now) if scope == PERSONAL else None
            return person.email if person else None

    async def forget(self, tenant_id: str, target: str, scope: str, now: datetime, reason: str) -> str | None:
        async with self.db.session() as session:
            await delete(session, self.platform, tenant_id, target)
            if scope != PERSONAL:
                audit.record(
                    session, now, f"{self.platform}:{target}", "chat.app_removed", subject=target, reason=reason, platform=self.platform
                )
                return None
            person = await unlink(session, self.platform, target, now, reason)
            return person.email if person else None

    async def reference(self, target: str) -> dict[str, Any] | None:
        async with self.db.session() as session:
            found = await find(session, self.platform, target)
            return found.reference if found else None

    async def references(self, scope: str) -> list[tuple[str, dict[str, Any]]]:
        async with self.db.session() as session:
            return [(r.target, r.reference) for r in await in_scope(session, self.platform, scope)]

    async def unlinked(self) -> list[tuple[str, dict[str, Any]]]:
        async with self.db.session() as session:
            return [(r.target, r.reference) for r in await unlinked(session, self.platform)]
