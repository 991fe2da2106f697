"""The delivery engine against a fake Slack that fails the way Slack does: 429 with
Retry-After, 503, timeouts after the message arrived, and permanent errors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import ChatPort, Recipient
from adapters.slack.chat import SingleWorkspace, SlackChat, make_client
from bot.delivery import MAX_ATTEMPTS, Deliverer
from bot.files import load_program
from bot.ratelimit import TENANT_HEADROOM, Limits, RateLimiter
from nudges.messages import Message
from nudges.program import Program, parse_program
from storage import outbox
from storage.db import Database
from storage.models import Delivery
from storage.programs import save_program
from tests.fakes.slack import FakeSlack, running_fake_slack
from tests.seed import link

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
EXAMPLE = "examples/program.yaml"


class Clock:
    """A clock the test moves, so backoff of minutes passes in no time."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with running_fake_slack() as fake:
        yield fake


async def _program_with(db: Database, members: int) -> Program:
    data = load_program(EXAMPLE).model_dump(mode="json")
    data["cohorts"][0]["members"] = [{"email": f"m{i}@example.com", "platform": "slack", "timezone": "UTC"} for i in range(members)]
    data["cohorts"][1]["members"] = []
    program = parse_program(data, "test")
    async with db.session() as session:
        await save_program(session, program, "test", T0)
        for i in range(members):
            person = await link(session, f"m{i}@example.com", "slack", f"T1:U{i}", consent=True)
            await outbox.enqueue(
                session,
                key=f"checklist:{person.id}:pilot-a:2026-W02",
                kind="checklist",
                period="2026-W02",
                due_at=T0,
                person_id=person.id,
                cohort_id=1,
                platform="slack",
                payload={"cohort": "pilot-a", "week": "2026-W02"},
            )
    return program


def _deliverer(db: Database, fake: FakeSlack, timeout: int = 10) -> Deliverer:
    chat = SlackChat(make_client(fake.url, "xoxb-test", retries=0, timeout=timeout), SingleWorkspace("xoxb-test"))
    # The fake's own limits are what these tests are about; pacing per DM is not.
    return Deliverer(db, {"slack": chat}, limiter=RateLimiter(Limits(per_conversation={}, per_tenant={})))


async def _statuses(db: Database) -> dict[str, tuple[str, str | None]]:
    async with db.session() as session:
        rows = (await session.execute(select(Delivery.idempotency_key, Delivery.status, Delivery.last_error))).all()
    return {k: (s, e) for k, s, e in rows}


async def _drain(deliverer: Deliverer, program: Program, clock: Clock, rounds: int = 12) -> None:
    """Deliver, then let an hour pass, until nothing is left or ``rounds`` run out."""
    for _ in range(rounds):
        await deliverer.deliver_due(program, clock)
        clock.now += timedelta(hours=1)


async def test_429_waits_for_retry_after_then_sends_once(db: Database, fake: FakeSlack) -> None:
    program = await _program_with(db, 1)
    fake.fail("chat.postMessage", status=429, retry_after=2)
    clock = Clock()
    deliverer = _deliverer(db, fake)
    first = await deliverer.deliver_due(program, clock)
    assert (first.sent, first.retrying) == (0, 1)
    async with db.session() as session:
        retry_at = await session.scalar(select(Delivery.next_attempt_at))
    assert retry_at == T0 + timedelta(seconds=2)
    clock.now += timedelta(seconds=1)
    assert (await deliverer.deliver_due(program, clock)).sent == 0  # not before Retry-After
    clock.now += timedelta(seconds=1)
    started = time.monotonic()
    assert (await deliverer.deliver_due(program, clock)).sent == 1
    # The workspace was paused for the Retry-After on the real clock too: no send before it.
    assert time.monotonic() - started > 1.0
    assert fake.delivered() == {"DU0": 1}


async def test_server_errors_back_off_and_the_message_arrives_once(db: Database, fake: FakeSlack) -> None:
    program = await _program_with(db, 3)
    fake.fail("chat.postMessage", status=503, times=4)
    clock = Clock()
    await _drain(_deliverer(db, fake), program, clock)
    assert fake.delivered() == {"DU0": 1, "DU1": 1, "DU2": 1}
    assert {s for s, _e in (await _statuses(db)).values()} == {"sent"}


async def test_a_timeout_after_the_message_arrived_is_verified_not_sent_again(db: Database, fake: FakeSlack) -> None:
    program = await _program_with(db, 1)
    fake.fail("chat.postMessage", hang=2.0)  # stored, but answered after the client gave up
    clock = Clock()
    deliverer = _deliverer(db, fake, timeout=1)
    first = await deliverer.deliver_due(program, clock)
    assert first.retrying == 1 and fake.delivered() == {"DU0": 1}
    clock.now += timedelta(hours=1)
    second = await deliverer.deliver_due(program, clock)
    assert (second.verified, second.sent) == (1, 0)
    assert fake.delivered() == {"DU0": 1}
    assert len(fake.called("conversations.history")) == 1
    assert [status for status, _e in (await _statuses(db)).values()] == ["sent"]


@pytest.mark.parametrize("error", ["channel_not_found", "user_not_found", "is_archived", "account_inactive"])
async def test_permanent_errors_are_recorded_with_their_reason_and_never_retried(db: Database, fake: FakeSlack, error: str) -> None:
    program = await _program_with(db, 1)
    fake.fail("chat.postMessage", error=error)
    clock = Clock()
    await _drain(_deliverer(db, fake), program, clock)
    assert list((await _statuses(db)).values()) == [("failed", error)]
    assert len(fake.called("chat.postMessage")) == 1


async def test_nothing_is_retried_forever(db: Database, fake: FakeSlack) -> None:
    program = await _program_with(db, 1)
    fake.fail("chat.postMessage", status=503, times=1000)
    clock = Clock()
    await _drain(_deliverer(db, fake), program, clock, rounds=40)
    ((status, reason),) = (await _statuses(db)).values()
    assert status == "failed" and reason is not None and reason.startswith(f"gave up after {MAX_ATTEMPTS} attempts")
    assert len(fake.called("chat.postMessage")) == MAX_ATTEMPTS


async def test_under_random_faults_every_message_arrives_exactly_once(db: Database, fake: FakeSlack) -> None:
    program = await _program_with(db, 120)
    fake.chaos = {"503": 0.15, "429": 0.1, "hang": 0.05}
    fake.chaos_hang = 1.5
    clock = Clock()
    await _drain(_deliverer(db, fake, timeout=1), program, clock, rounds=20)
    delivered = fake.delivered()
    assert len(delivered) == 120 and set(delivered.values()) == {1}
    assert {s for s, _e in (await _statuses(db)).values()} == {"sent"}


async def test_outcomes_whose_commit_failed_are_recorded_before_giving_up(
    db: Database, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refusing one commit must not leave sent messages looking unsent (their
    lease would run out and they would be sent again)."""
    program = await _program_with(db, 3)
    real_mark, failures = outbox.mark_many, [RuntimeError("the database went away for a moment")]

    async def mark_once_failing(session: AsyncSession, outcomes: Sequence[outbox.Outcome]) -> None:
        if failures:
            raise failures.pop()
        await real_mark(session, outcomes)

    monkeypatch.setattr(outbox, "mark_many", mark_once_failing)
    with pytest.raises(RuntimeError):
        await _deliverer(db, fake).deliver_due(program, Clock())
    assert {s for s, _e in (await _statuses(db)).values()} == {"sent"}
    assert fake.delivered() == {"DU0": 1, "DU1": 1, "DU2": 1}


def test_a_batch_is_what_the_slowest_pace_sends_in_half_a_lease(db: Database) -> None:
    def size(limits: Limits) -> int:
        return Deliverer(db, {"slack": None, "teams": None}, limiter=RateLimiter(limits)).claim_size()  # type: ignore[dict-item]

    assert size(Limits(per_conversation={}, per_tenant={})) == 500
    assert size(Limits()) == 500  # Teams' 30 per second per tenant fills a batch in seconds
    assert size(Limits(per_tenant={"slack": 1.0})) == int(TENANT_HEADROOM * 300 / 2)


async def test_a_program_loaded_mid_week_is_what_later_checklists_show(db: Database, fake: FakeSlack) -> None:
    """A reloaded program (a question reworded) is what the checklists sent after it show."""
    program = await _program_with(db, 2)
    deliverer = _deliverer(db, fake)
    async with db.session() as session:  # the second member's checklist is due later this week
        await session.execute(update(Delivery).where(Delivery.person_id == 2).values(next_attempt_at=T0 + timedelta(days=1)))
    await deliverer.deliver_due(program, Clock())
    data = program.model_dump(mode="json")
    data["behaviors"][0]["question"] = "Did you hold a decision huddle this week?"
    reworded = parse_program(data, "test")
    clock = Clock()
    clock.now += timedelta(days=1)
    await deliverer.deliver_due(reworded, clock)
    questions = [json.dumps(c.params["blocks"]) for c in fake.called("chat.postMessage")]
    assert len(questions) == 2
    assert "Did you run a decision huddle" in questions[0] and "Did you hold a decision huddle" in questions[1]


async def test_rows_not_due_yet_wait_for_their_time(db: Database, fake: FakeSlack) -> None:
    program = await _program_with(db, 2)
    async with db.session() as session:
        await session.execute(update(Delivery).where(Delivery.person_id == 2).values(next_attempt_at=T0 + timedelta(hours=1)))
    deliverer, clock = _deliverer(db, fake), Clock()
    assert (await deliverer.deliver_due(program, clock)).sent == 1
    assert (await deliverer.deliver_due(program, clock)).sent == 0
    clock.now += timedelta(hours=1)
    assert (await deliverer.deliver_due(program, clock)).sent == 1
    assert fake.delivered() == {"DU0": 1, "DU1": 1}


class CountingChat:
    """The real SlackChat, counting how many sends are under way at once."""

    def __init__(self, chat: ChatPort) -> None:
        self.chat, self.under_way, self.most = chat, 0, 0

    async def resolve(self, email: str) -> str | None:
        return await self.chat.resolve(email)

    async def send(self, to: Recipient, message: Message, key: str | None = None) -> dict[str, Any]:
        self.under_way += 1
        self.most = max(self.most, self.under_way)
        try:
            return await self.chat.send(to, message, key)
        finally:
            self.under_way -= 1

    async def find_sent(self, to: Recipient, key: str) -> dict[str, Any] | None:
        return await self.chat.find_sent(to, key)

    async def update(self, ref: dict[str, Any], message: Message) -> None:
        await self.chat.update(ref, message)


async def test_no_more_sends_are_under_way_at_once_than_the_concurrency_allows(db: Database, fake: FakeSlack) -> None:
    program = await _program_with(db, 10)
    fake.fail("chat.postMessage", hang=0.2, times=10)  # every send takes a while: they overlap if they can
    chat = CountingChat(_deliverer(db, fake).chats["slack"])
    deliverer = Deliverer(db, {"slack": chat}, limiter=RateLimiter(Limits(per_conversation={}, per_tenant={})), concurrency=3)
    assert (await deliverer.deliver_due(program, Clock())).sent == 10
    assert chat.most == 3


async def _until(condition: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_stopped_worker_finishes_the_sends_under_way_and_records_them(db: Database, fake: FakeSlack) -> None:
    program = await _program_with(db, 6)
    fake.fail("chat.postMessage", hang=0.5, times=6)
    deliverer, clock = _deliverer(db, fake), Clock()
    deliverer.concurrency = 2
    delivering = asyncio.create_task(deliverer.deliver_due(program, clock))

    async def two_under_way() -> bool:
        return len(fake.called("chat.postMessage")) == 2

    await _until(two_under_way)
    delivering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await delivering
    statuses = sorted(s for s, _e in (await _statuses(db)).values())
    assert statuses == ["sending"] * 4 + ["sent"] * 2  # the rest stay leased to the stopped worker
    assert len(fake.delivered()) == 2
    # Once their lease runs out the rest go, after a check that they did not go already.
    clock.now += outbox.CLAIM_LEASE + timedelta(seconds=1)
    report = await deliverer.deliver_due(program, clock)
    assert (report.sent, report.verified) == (4, 0)
    assert len(fake.called("conversations.history")) == 4
    assert set(fake.delivered().values()) == {1} and len(fake.delivered()) == 6


async def test_a_message_sent_by_a_worker_that_crashed_is_verified_not_sent_again(db: Database, fake: FakeSlack) -> None:
    program = await _program_with(db, 1)
    deliverer, clock = _deliverer(db, fake), Clock()
    async with db.session() as session:  # a worker leases the row, sends it, and dies before recording it
        (row,) = await outbox.claim_due(session, T0)
    await deliverer.chats["slack"].send(Recipient("slack", user_id="T1:U0"), Message(text="Your check-in"), key=row.key)
    assert (await deliverer.deliver_due(program, clock)).finished == 0  # still leased: nobody else sends it
    clock.now += outbox.CLAIM_LEASE + timedelta(seconds=1)
    report = await deliverer.deliver_due(program, clock)
    assert (report.verified, report.sent) == (1, 0)
    assert fake.delivered() == {"DU0": 1}
    assert [status for status, _e in (await _statuses(db)).values()] == ["sent"]


async def test_slowly_paced_sends_are_recorded_as_they_go_not_when_the_batch_ends(db: Database, fake: FakeSlack) -> None:
    """A crash mid-batch then leaves few sent messages looking unsent."""
    program = await _program_with(db, 4)
    chat = _deliverer(db, fake).chats["slack"]
    deliverer = Deliverer(db, {"slack": chat}, limiter=RateLimiter(Limits(per_conversation={}, per_tenant={"slack": 2.0})))
    delivering = asyncio.create_task(deliverer.deliver_due(program, Clock()))

    async def some_recorded_while_others_wait() -> bool:
        statuses = [s for s, _e in (await _statuses(db)).values()]
        return "sent" in statuses and "sending" in statuses

    await _until(some_recorded_while_others_wait)
    assert (await delivering).sent == 4
