"""The outbox: deliveries inserted once per idempotency key, claimed by workers, marked done."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import insert
from storage.models import Delivery

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
        idempotency_key=key, kind=kind, period=period, person_id=person_id, cohort_id=cohort_id,
        platform=platform, target=target, payload=payload or {}, status="pending", attempts=0,
        due_at=due_at, next_attempt_at=due_at,
    )
    stmt = stmt.on_conflict_do_nothing(index_elements=[Delivery.idempotency_key]).returning(Delivery.id)
    return (await session.execute(stmt)).first() is not None


async def claim_due(session: AsyncSession, now: datetime, limit: int = 100, platforms: Collection[str] | None = None) -> Sequence[Delivery]:
    """Lease up to ``limit`` due rows to this worker, only for ``platforms`` when given
    (rows for a platform that is not configured wait for it rather than fail).

    On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets many workers claim disjoint batches; SQLite
    ignores the clause, and its single writer lock gives the same exclusivity.
    """
    rows = (
        await session.scalars(
            select(Delivery)
            .where(
                or_(Delivery.status == "pending", Delivery.status == "sending"),
                Delivery.next_attempt_at <= now,
                *([Delivery.platform.in_(platforms)] if platforms is not None else []),
            )
            .order_by(Delivery.next_attempt_at, Delivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if rows:
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_([r.id for r in rows]))
            .values(status="sending", attempts=Delivery.attempts + 1, next_attempt_at=now + CLAIM_LEASE)
        )
    return rows


async def mark_sent(session: AsyncSession, delivery_id: int, now: datetime, message_ref: dict[str, Any] | None) -> None:
    await session.execute(
        update(Delivery).where(Delivery.id == delivery_id).values(status="sent", sent_at=now, message_ref=message_ref, last_error=None)
    )


async def mark_failed(session: AsyncSession, delivery_id: int, reason: str, retry_at: datetime | None = None) -> None:
    """Permanently failed, or (with ``retry_at``) back to pending for another attempt."""
    values: dict[str, Any] = {"last_error": reason[:1000]}
    if retry_at is None:
        values["status"] = "failed"
    else:
        values.update(status="pending", next_attempt_at=retry_at)
    await session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


async def message_ref_for(session: AsyncSession, key: str) -> dict[str, Any] | None:
    """Where the delivery with this key landed on the platform, for updating it in place."""
    return await session.scalar(select(Delivery.message_ref).where(Delivery.idempotency_key == key))
