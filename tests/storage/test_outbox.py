"""The outbox inserts once per key and leases due rows to one worker at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from adapters.slack.chat import SingleWorkspace, SlackChat, make_client
from bot.delivery import Deliverer
from bot.files import load_program
from nudges.messages import Message
from storage import outbox
from storage.db import Database
from storage.models import Delivery
from tests.fakes.slack import running_fake_slack

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


async def _enqueue(db: Database, key: str, due: datetime = T0, target: str | None = None) -> bool:
    async with db.session() as session:
        return await outbox.enqueue(session, key=key, kind="note", period="2026-W02", due_at=due, platform="slack", target=target)


async def _note(row: outbox.Claimed, now: datetime) -> Message:
    return Message(text=f"A note for {row.key}")


async def test_same_key_enqueued_twice_is_one_row(db: Database) -> None:
    assert await _enqueue(db, "checklist:1:pilot-a:2026-W02") is True
    assert await _enqueue(db, "checklist:1:pilot-a:2026-W02") is False
    async with db.session() as session:
        assert len((await session.scalars(select(Delivery))).all()) == 1


async def test_claimed_rows_are_not_claimed_again_until_the_lease_ends(db: Database) -> None:
    await _enqueue(db, "a")
    await _enqueue(db, "b", due=T0 + timedelta(hours=1))
    async with db.session() as session:
        first = [d.key for d in await outbox.claim_due(session, T0)]
    async with db.session() as session:
        again = await outbox.claim_due(session, T0 + timedelta(seconds=1))
    assert first == ["a"] and again == []
    async with db.session() as session:
        after_lease = [d.key for d in await outbox.claim_due(session, T0 + outbox.CLAIM_LEASE + timedelta(hours=1))]
    assert after_lease == ["a", "b"]


async def test_sent_and_failed_rows_are_never_claimed(db: Database) -> None:
    for key in ("failed", "retry", "sent"):
        await _enqueue(db, key, target=f"C{key}")
    async with running_fake_slack() as fake:
        # Sent one at a time, in the order of their ids: the first is refused for good, the
        # second draws a server error (a retry), the third goes through.
        fake.fail("chat.postMessage", error="is_archived")
        fake.fail("chat.postMessage", status=503)
        chat = SlackChat(make_client(fake.url, "xoxb-test", retries=0), SingleWorkspace("xoxb-test"))
        deliverer = Deliverer(db, {"slack": chat}, concurrency=1, renderers={"note": _note})
        report = await deliverer.deliver_due(load_program("examples/program.yaml"), lambda: T0)
        landed = list(fake.messages)
    assert (report.sent, report.retrying, report.failed) == (1, 1, 1)
    async with db.session() as session:
        later = [d.key for d in await outbox.claim_due(session, T0 + timedelta(days=1))]
        assert later == ["retry"]
        ref = await outbox.message_ref_for(session, "sent")
    assert ref is not None and landed == [(ref["channel"], ref["ts"])] and ref["channel"] == "Csent"


async def test_a_row_whose_lease_ran_out_mid_send_is_claimed_again_as_ambiguous(db: Database) -> None:
    await _enqueue(db, "crashed")
    await _enqueue(db, "fresh")
    async with db.session() as session:
        first = await outbox.claim_due(session, T0, limit=1)
    assert [(c.key, c.ambiguous, c.attempts) for c in first] == [("crashed", False, 1)]
    async with db.session() as session:
        again = await outbox.claim_due(session, T0 + outbox.CLAIM_LEASE + timedelta(seconds=1))
    assert [(c.key, c.ambiguous) for c in again] == [("crashed", True), ("fresh", False)]


async def test_mark_many_records_sent_retry_and_failed_in_one_go(db: Database) -> None:
    for key in ("s", "r", "f"):
        await _enqueue(db, key)
    async with db.session() as session:
        ids = {c.key: c.id for c in await outbox.claim_due(session, T0)}
        await outbox.mark_many(
            session,
            [
                outbox.Outcome(ids["s"], "sent", sent_at=T0, message_ref={"ts": "1"}),
                outbox.Outcome(ids["r"], "pending", "503", next_attempt_at=T0 + timedelta(minutes=3)),
                outbox.Outcome(ids["f"], "failed", "channel_not_found"),
            ],
        )
    async with db.session() as session:
        rows = {d.idempotency_key: d for d in (await session.scalars(select(Delivery))).all()}
    assert {k: (d.status, d.last_error) for k, d in rows.items()} == {
        "s": ("sent", None),
        "r": ("pending", "503"),
        "f": ("failed", "channel_not_found"),
    }
    # What comes back is what went in: times as aware UTC datetimes, references as JSON.
    assert (rows["s"].sent_at, rows["s"].message_ref) == (T0, {"ts": "1"})
    assert rows["r"].next_attempt_at == T0 + timedelta(minutes=3)


async def test_many_sent_outcomes_keep_their_own_times_and_references(db: Database) -> None:
    keys = [f"k{n}" for n in range(30)]
    for key in keys:
        await _enqueue(db, key)
    async with db.session() as session:
        ids = {c.key: c.id for c in await outbox.claim_due(session, T0)}
        await outbox.mark_many(
            session,
            [
                outbox.Outcome(
                    ids[k],
                    "sent",
                    "already delivered" if n == 7 else None,
                    sent_at=T0 + timedelta(microseconds=n * 1001),
                    message_ref={"channel": "D1", "ts": f"{n}.000100", "note": "ü <&>"},
                )
                for n, k in enumerate(keys)
            ],
        )
    async with db.session() as session:
        rows = {d.idempotency_key: d for d in (await session.scalars(select(Delivery))).all()}
    for n, key in enumerate(keys):
        assert rows[key].status == "sent"
        assert rows[key].sent_at == T0 + timedelta(microseconds=n * 1001)
        assert rows[key].message_ref == {"channel": "D1", "ts": f"{n}.000100", "note": "ü <&>"}
        assert rows[key].last_error == ("already delivered" if n == 7 else None)


async def test_a_claim_takes_ambiguous_rows_first_then_the_oldest_pending_ones(db: Database) -> None:
    await _enqueue(db, "crashed", due=T0 - timedelta(hours=1))
    for minute in (3, 1, 2):
        await _enqueue(db, f"due+{minute}", due=T0 + timedelta(minutes=minute))
    async with db.session() as session:
        assert [c.key for c in await outbox.claim_due(session, T0, limit=1)] == ["crashed"]
    after_lease = T0 + outbox.CLAIM_LEASE + timedelta(seconds=1)
    async with db.session() as session:
        claimed = await outbox.claim_due(session, after_lease, limit=3)
    # The crashed row's lease ran out later than the others fell due, and it still comes first.
    assert sorted((c.key, c.ambiguous) for c in claimed) == [("crashed", True), ("due+1", False), ("due+2", False)]
    async with db.session() as session:
        assert [c.key for c in await outbox.claim_due(session, after_lease, limit=3)] == ["due+3"]
