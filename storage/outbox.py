"""The outbox: deliveries inserted once per idempotency key, claimed by workers, marked done."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import insert
from storage.models import Base, Delivery, Person

_DELIVERIES = Base.metadata.tables[Delivery.__tablename__]  # the Core table, typed as one

# A claimed row that was neither marked sent nor failed within this time (its worker
# crashed mid-send) becomes claimable again.
CLAIM_LEASE = timedelta(minutes=5)


async def enqueue(
    session: AsyncSession,
    *,
    key: str,
    kind: str,
    period: str,
    due_at: datetime,
    person_id: int | None = None,
    cohort_id: int | None = None,
    platform: str | None = None,
    target: str | None = None,
    payload: dict[str, Any] | None = None,
) -> bool:
    """Insert a delivery unless one with the same key exists; True if this call inserted it."""
    stmt = insert(session, Delivery).values(
        idempotency_key=key,
        kind=kind,
        period=period,
        person_id=person_id,
        cohort_id=cohort_id,
        platform=platform,
        target=target,
        payload=payload or {},
        status="pending",
        attempts=0,
        due_at=due_at,
        next_attempt_at=due_at,
    )
    stmt = stmt.on_conflict_do_nothing(index_elements=[Delivery.idempotency_key]).returning(Delivery.id)
    return (await session.execute(stmt)).first() is not None


def row(
    *,
    key: str,
    kind: str,
    period: str,
    due_at: datetime,
    cohort_id: int | None = None,
    person: Person | None = None,
    platform: str | None = None,
    target: str | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A delivery for ``enqueue_many``: to ``person`` (on ``platform``, else the one the program
    file names for them) or to the channel ``target`` on ``platform``."""
    return {
        "idempotency_key": key,
        "kind": kind,
        "period": period,
        "due_at": due_at,
        "cohort_id": cohort_id,
        "person_id": person.id if person else None,
        "platform": platform or (person.platform if person else None),
        "target": target,
        "payload": payload or {},
    }


async def enqueue_many(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Insert many deliveries (dicts of Delivery columns, ``idempotency_key`` included) in one
    statement, skipping keys that exist; returns the kinds of the rows this call added."""
    if not rows:
        return []
    table = _DELIVERIES
    stmt = insert(session, table).on_conflict_do_nothing(index_elements=[table.c.idempotency_key]).returning(table.c.kind)
    defaults = {"payload": {}, "status": "pending", "attempts": 0, "person_id": None, "cohort_id": None, "platform": None, "target": None}
    result = await session.execute(stmt, [{**defaults, **row, "next_attempt_at": row["due_at"]} for row in rows])
    return list(result.scalars().all())


@dataclass(slots=True)
class Claimed:
    """A delivery leased to this worker. ``ambiguous`` when an earlier worker's lease on it
    ran out mid-send: the message may or may not have reached the platform."""

    id: int
    key: str
    kind: str
    period: str
    person_id: int | None
    cohort_id: int | None
    platform: str | None
    target: str | None
    payload: dict[str, Any]
    attempts: int
    ambiguous: bool


def _claim(status: str, now: datetime, limit: int, platforms: Collection[str] | None) -> Any:
    """Lease the oldest due rows of one status: UPDATE ... WHERE id IN (SELECT ... FOR UPDATE
    SKIP LOCKED) RETURNING."""
    c = _DELIVERIES.c
    oldest = (
        select(c.id)
        .where(c.status == status, c.next_attempt_at <= now, *([c.platform.in_(list(platforms))] if platforms is not None else []))
        .order_by(c.next_attempt_at, c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    # A row that was still 'sending' (its worker's lease ran out) comes back as
    # 'verifying', which is how the caller knows to ask the platform first.
    return (
        update(_DELIVERIES)
        .where(c.id.in_(oldest.scalar_subquery()))
        .values(status="sending" if status == "pending" else "verifying", attempts=c.attempts + 1, next_attempt_at=now + CLAIM_LEASE)
        .returning(c.id, c.idempotency_key, c.kind, c.period, c.person_id, c.cohort_id, c.platform, c.target, c.payload, c.attempts)
    )


async def claim_due(session: AsyncSession, now: datetime, limit: int = 100, platforms: Collection[str] | None = None) -> list[Claimed]:
    """Lease up to ``limit`` due rows to this worker, only for ``platforms`` when given (rows
    for a platform that is not configured wait for it rather than fail).

    Rows whose last attempt may have reached the platform ('sending' with a lease run out,
    'verifying') come first, then 'pending' rows, each status oldest first. One
    UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) per status: on PostgreSQL
    many workers claim disjoint batches without waiting on each other, SQLite runs each
    statement under its one writer lock, which gives the same exclusivity; and each reads
    its rows in the order of the index on (status, next_attempt_at, id), so a claim costs
    the rows it takes, not the whole backlog.
    """
    claimed: list[Claimed] = []
    for status in ("sending", "verifying", "pending"):
        if len(claimed) >= limit:
            break
        ambiguous = status != "pending"
        claimed += [
            Claimed(i, key, kind, period, person_id, cohort_id, platform, target, payload or {}, attempts, ambiguous)
            for i, key, kind, period, person_id, cohort_id, platform, target, payload, attempts in await session.execute(
                _claim(status, now, limit - len(claimed), platforms)
            )
        ]
    return sorted(claimed, key=lambda c: c.id)


@dataclass(slots=True)
class Outcome:
    """What became of one attempt at a claimed delivery. ``status`` is sent (with ``sent_at``
    and ``message_ref``), pending (a retry at ``next_attempt_at``), verifying (a retry that
    must first ask the platform whether the last attempt arrived) or failed."""

    id: int
    status: str
    last_error: str | None = None
    sent_at: datetime | None = None
    message_ref: dict[str, Any] | None = None
    next_attempt_at: datetime | None = None


# The columns each status sets besides status and last_error.
_SETS = {"sent": ("sent_at", "message_ref"), "pending": ("next_attempt_at",), "verifying": ("next_attempt_at",), "failed": ()}


async def mark_many(session: AsyncSession, outcomes: Sequence[Outcome]) -> None:
    """Record many outcomes at once: one UPDATE per set of columns, run as an executemany."""
    table = _DELIVERIES
    for columns in dict.fromkeys(_SETS.values()):
        group = [o for o in outcomes if _SETS[o.status] == columns]
        if not group:
            continue
        # The parameters are prefixed: SQLAlchemy reserves a column's own name for its SET clause.
        names = ("status", "last_error", *columns)
        stmt = update(table).where(table.c.id == bindparam("p_id")).values({name: bindparam(f"p_{name}") for name in names})
        await session.execute(stmt, [{"p_id": o.id, **{f"p_{name}": getattr(o, name) for name in names}} for o in group])


async def message_ref_for(session: AsyncSession, key: str) -> dict[str, Any] | None:
    """Where the delivery with this key landed on the platform, for updating it in place."""
    return await session.scalar(select(Delivery.message_ref).where(Delivery.idempotency_key == key))


async def touches(session: AsyncSession, cohort_id: int, periods: Collection[str]) -> dict[tuple[int, str], dict[str, datetime]]:
    """(person, period) -> kind -> when it was sent (or is due), for the member touches of a
    cohort in the given weeks: what the schedule needs to know was already done."""
    rows = await session.execute(
        select(Delivery.person_id, Delivery.period, Delivery.kind, func.coalesce(Delivery.sent_at, Delivery.due_at)).where(
            Delivery.cohort_id == cohort_id,
            Delivery.period.in_(list(periods)),
            Delivery.kind.in_(("checklist", "reminder", "nudge")),
            Delivery.status != "failed",
        )
    )
    found: dict[tuple[int, str], dict[str, datetime]] = {}
    for person_id, period, kind, at in rows:
        if person_id is not None:  # always set for member touches; the column allows NULL for channel deliveries
            found.setdefault((person_id, period), {})[kind] = at if at.tzinfo else at.replace(tzinfo=UTC)
    return found


async def nudges_sent(session: AsyncSession, person_ids: Collection[int]) -> dict[int, list[tuple[str, str]]]:
    """person -> [(nudge id, week)] of the coaching nudges queued for them."""
    if not person_ids:
        return {}
    rows = await session.execute(
        select(Delivery.person_id, Delivery.payload, Delivery.period).where(
            Delivery.kind == "nudge", Delivery.person_id.in_(list(person_ids))
        )
    )
    found: dict[int, list[tuple[str, str]]] = {}
    for person_id, payload, period in rows:
        if payload and payload.get("nudge_id"):
            found.setdefault(person_id, []).append((payload["nudge_id"], period))
    return found


async def nudge_delivery(session: AsyncSession, person_id: int, nudge_id: str, period: str) -> dict[str, Any] | None:
    """The payload of the nudge queued for this person in this week, if it is that nudge."""
    payload = await session.scalar(
        select(Delivery.payload).where(Delivery.kind == "nudge", Delivery.person_id == person_id, Delivery.period == period)
    )
    return payload if payload and payload.get("nudge_id") == nudge_id else None


@dataclass(frozen=True)
class Backlog:
    """The outbox at a glance: rows not sent yet, rows failed for good, and when the oldest
    row that is due (and unsent) fell due."""

    pending: int
    failed: int
    oldest_due: datetime | None


_UNSENT = ("pending", "sending", "verifying")


async def backlog(session: AsyncSession, now: datetime, platforms: Collection[str] | None = None) -> Backlog:
    """The outbox's backlog at ``now`` (only of ``platforms`` when given); a row whose lease ran out counts as due."""
    only = [Delivery.platform.in_(list(platforms))] if platforms is not None else []
    by_status = select(Delivery.status, func.count()).where(Delivery.status.in_((*_UNSENT, "failed")), *only).group_by(Delivery.status)
    counts: dict[str, int] = {status: n for status, n in await session.execute(by_status)}
    due = select(func.min(Delivery.next_attempt_at)).where(Delivery.status.in_(_UNSENT), Delivery.next_attempt_at <= now, *only)
    oldest = await session.scalar(due)
    return Backlog(pending=sum(counts.get(s, 0) for s in _UNSENT), failed=counts.get("failed", 0), oldest_due=oldest)
