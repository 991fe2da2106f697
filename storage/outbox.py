"""The outbox: deliveries inserted once per idempotency key, claimed by workers, marked done."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import insert, json_time
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


async def enqueue_many(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Insert many deliveries (dicts of Delivery columns, ``idempotency_key`` included) in one
    statement, skipping keys that exist; returns the kinds of the rows this call added."""
    if not rows:
        return []
    table = Delivery.__table__
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


def _claim_statement(status: str, some_platforms: bool) -> Any:
    """Lease the oldest due rows of one status: UPDATE ... WHERE id IN (SELECT ... FOR UPDATE
    SKIP LOCKED) RETURNING. Built once, with bound parameters: a fan-out claims a batch
    every few hundred milliseconds, and building the statement cost more than running it."""
    c = Delivery.__table__.c
    oldest = (
        select(c.id)
        .where(
            c.status == status,
            c.next_attempt_at <= bindparam("now"),
            *([c.platform.in_(bindparam("platforms", expanding=True))] if some_platforms else []),
        )
        .order_by(c.next_attempt_at, c.id)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True)
    )
    # A row that was still 'sending' (its worker's lease ran out) comes back as
    # 'verifying', which is how the caller knows to ask the platform first.
    return (
        update(Delivery.__table__)
        .where(c.id.in_(oldest.scalar_subquery()))
        .values(
            status="sending" if status == "pending" else "verifying",
            attempts=c.attempts + 1,
            next_attempt_at=bindparam("lease_until", type_=c.next_attempt_at.type),
        )
        .returning(c.id, c.idempotency_key, c.kind, c.period, c.person_id, c.cohort_id, c.platform, c.target, c.payload, c.attempts)
    )


# One statement per status, with and without the platform filter.
_CLAIM = {(status, some): _claim_statement(status, some) for status in ("sending", "verifying", "pending") for some in (False, True)}


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
    params: dict[str, Any] = {"now": now, "lease_until": now + CLAIM_LEASE}
    if platforms is not None:
        params["platforms"] = list(platforms)
    for status in ("sending", "verifying", "pending"):
        if len(claimed) >= limit:
            break
        params["limit"] = limit - len(claimed)
        ambiguous = status != "pending"
        claimed += [
            Claimed(i, key, kind, period, person_id, cohort_id, platform, target, payload or {}, attempts, ambiguous)
            for i, key, kind, period, person_id, cohort_id, platform, target, payload, attempts in await session.execute(
                _CLAIM[status, platforms is not None], params
            )
        ]
    return sorted(claimed, key=lambda c: c.id)


async def mark_many(session: AsyncSession, outcomes: Sequence[tuple[int, str, dict[str, Any]]]) -> None:
    """Record many outcomes at once: (delivery id, status, values) with status sent, pending
    (a retry; values carry next_attempt_at), verifying (a retry that must first ask the
    platform whether the last attempt arrived) or failed. The outcomes of one status carry
    the same columns; one statement per status."""
    table = Delivery.__table__
    for status in ("sent", "pending", "verifying", "failed"):
        group = [(i, values) for i, st, values in outcomes if st == status]
        if not group:
            continue
        if status == "sent":
            await _mark_sent_many(session, group)
            continue
        columns = sorted(group[0][1])
        stmt = update(table).where(table.c.id == bindparam("b_id")).values(status=status, **{c: bindparam(f"b_{c}") for c in columns})
        names = {c: f"b_{c}" for c in columns}
        rows = []
        for i, values in group:
            row = {names[c]: v for c, v in values.items()}
            row["b_id"] = i
            rows.append(row)
        await session.execute(stmt, rows)


# Sent outcomes are nearly all a fan-out records, thousands a second: one statement reads
# them from a single JSON parameter, which the database unpacks, instead of an executemany
# whose per-row parameter handling in Python costs more than the send's own bookkeeping.
# Written per dialect because SQLAlchemy has no portable "UPDATE ... FROM json rows".
_MARK_SENT = {
    "postgresql": text(
        "UPDATE deliveries SET status = 'sent', sent_at = v.sent_at, message_ref = v.ref, last_error = v.error "
        "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v(id bigint, sent_at timestamptz, ref json, error text) "
        "WHERE deliveries.id = v.id"
    ),
    "sqlite": text(
        "UPDATE deliveries SET status = 'sent', sent_at = json_extract(v.value, '$.sent_at'), "
        "message_ref = json_extract(v.value, '$.ref'), last_error = json_extract(v.value, '$.error') "
        "FROM json_each(:rows) AS v WHERE deliveries.id = json_extract(v.value, '$.id')"
    ),
}


async def _mark_sent_many(session: AsyncSession, group: list[tuple[int, dict[str, Any]]]) -> None:
    dialect = session.bind.dialect.name
    rows = [
        {"id": i, "sent_at": json_time(dialect, values["sent_at"]), "ref": values["message_ref"], "error": values["last_error"]}
        for i, values in group
    ]
    await session.execute(_MARK_SENT[dialect], {"rows": json.dumps(rows)})


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


async def backlog(session: AsyncSession, now: datetime) -> Backlog:
    """The outbox's backlog at ``now``; a row whose lease ran out counts as due."""
    by_status = select(Delivery.status, func.count()).where(Delivery.status.in_((*_UNSENT, "failed"))).group_by(Delivery.status)
    counts: dict[str, int] = {status: n for status, n in await session.execute(by_status)}
    due = select(func.min(Delivery.next_attempt_at)).where(Delivery.status.in_(_UNSENT), Delivery.next_attempt_at <= now)
    oldest = await session.scalar(due)
    return Backlog(pending=sum(counts.get(s, 0) for s in _UNSENT), failed=counts.get("failed", 0), oldest_due=oldest)
