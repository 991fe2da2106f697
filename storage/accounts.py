"""People's linked chat accounts: one per person and platform, found by the platform's member id.

The bot links them itself (storage only records it): from the program's email at `program
load`, when someone first writes to it, or when the app is installed. A member id belongs to
one person at a time; linking it to another lets the first go.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Account, Membership, Person

# "Last used" is a hint for where to write to someone, not an audit trail: refreshed at most
# this often, so answering a checklist does not write it on every click.
USED_RESOLUTION = timedelta(hours=1)


async def person_of(session: AsyncSession, platform: str, user_id: str) -> Person | None:
    """The person whose account on ``platform`` is ``user_id``."""
    return await session.scalar(
        select(Person).join(Account, Account.person_id == Person.id).where(Account.platform == platform, Account.user_id == user_id)
    )


async def find(session: AsyncSession, platform: str, user_id: str) -> tuple[Person, Account] | None:
    """The person whose account on ``platform`` is ``user_id``, and that account."""
    row = (
        await session.execute(
            select(Person, Account)
            .join(Account, Account.person_id == Person.id)
            .where(Account.platform == platform, Account.user_id == user_id)
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


async def user_id_of(session: AsyncSession, person_id: int, platform: str) -> str | None:
    """The person's member id on ``platform``, if linked."""
    return await session.scalar(select(Account.user_id).where(Account.person_id == person_id, Account.platform == platform))


async def linked(session: AsyncSession, person_ids: Collection[int]) -> dict[int, dict[str, str]]:
    """person -> platform -> member id, for many people at once."""
    if not person_ids:
        return {}
    rows = await session.execute(
        select(Account.person_id, Account.platform, Account.user_id).where(Account.person_id.in_(list(person_ids)))
    )
    found: dict[int, dict[str, str]] = {}
    for person_id, platform, user_id in rows:
        found.setdefault(person_id, {})[platform] = user_id
    return found


async def link(session: AsyncSession, person_id: int, platform: str, user_id: str, now: datetime) -> bool:
    """Make ``user_id`` the person's account on ``platform``; True when that changed anything.

    Whoever held the member id before lets it go (a person whose email changed in the file),
    and a person's earlier account on the platform is replaced (a new workspace)."""
    current = await session.scalar(select(Account).where(Account.person_id == person_id, Account.platform == platform))
    if current is not None and current.user_id == user_id:
        return False
    await session.execute(delete(Account).where(Account.platform == platform, Account.user_id == user_id, Account.person_id != person_id))
    if current is None:
        session.add(Account(person_id=person_id, platform=platform, user_id=user_id, linked_at=now, last_used_at=now))
    else:
        current.user_id, current.linked_at, current.last_used_at = user_id, now, now
    await session.flush()
    return True


async def unlink(session: AsyncSession, platform: str, user_id: str) -> Person | None:
    """Forget the account ``user_id``; returns the person it was linked to."""
    person = await person_of(session, platform, user_id)
    if person is not None:
        await session.execute(delete(Account).where(Account.platform == platform, Account.user_id == user_id))
    return person


async def used(session: AsyncSession, account: Account, now: datetime) -> None:
    """Note that the person wrote to the bot from ``account`` (at most once per ``USED_RESOLUTION``)."""
    if account.last_used_at is None or account.last_used_at < now - USED_RESOLUTION:
        account.last_used_at = now


async def reachable_on(session: AsyncSession, person: Person) -> str | None:
    """The platform to write to ``person`` on: the one the program file names for them if they
    are linked there, else the account they used last; None when they have no account."""
    accounts = (await session.scalars(select(Account).where(Account.person_id == person.id))).all()
    if any(a.platform == person.platform for a in accounts):
        return person.platform
    latest = max(accounts, key=lambda a: (a.last_used_at or a.linked_at, a.id), default=None)
    return latest.platform if latest is not None else None


async def needing_link(session: AsyncSession, platforms: Collection[str]) -> list[tuple[Person, set[str], set[str]]]:
    """Everyone who holds an active role, with their roles and the platforms they are not linked
    on yet and should be: a participant's own platform (their check-ins go there, configured or
    not), and each of ``platforms`` for a coach, sponsor or admin (they may act from any)."""
    rows = await session.execute(
        select(Person, Membership.role).join(Membership, Membership.person_id == Person.id).where(Membership.active).order_by(Person.email)
    )
    roles: dict[int, tuple[Person, set[str]]] = {}
    for person, role in rows:
        roles.setdefault(person.id, (person, set()))[1].add(role)
    accounts = await linked(session, roles)
    found = []
    for person_id, (person, held) in roles.items():
        wanted = {person.platform} if "participant" in held and person.platform else set()
        if held - {"participant"}:
            wanted |= set(platforms)
        missing = {p for p in wanted if p not in accounts.get(person_id, {})}
        if missing:
            found.append((person, held, missing))
    return found
