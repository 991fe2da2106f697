"""The delivery engine: claim due outbox rows, render, send at the platforms' pace, record.

Exactly-once, as far as a chat platform allows it: a row is leased before sending and
marked right after, and a row whose lease ran out mid-send (its worker crashed) is checked
with the platform (``find_sent``) before it is sent again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from adapters.base import ChatPort, DeliveryError, Recipient
from bot import metrics
from bot.ratelimit import RateLimiter
from nudges.checklist import ChecklistRenders
from nudges.coaching import NudgeChoice, nudge_message, parse_nudge_id
from nudges.consent import consent_message
from nudges.messages import Message
from nudges.program import Program
from nudges.weeks import IsoWeek
from storage import checkins, outbox
from storage.db import Database, among
from storage.models import Delivery, Person

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
RECORD_WITHIN = 1.0  # seconds an outcome may wait for the next claim before it is committed alone
CLAIM_AHEAD_AT = 0.5  # the next batch is claimed once this share of the current one is under way

Outcome = tuple[int, str, dict[str, Any]]


@dataclass(slots=True)
class Member:
    """What sending to a member needs of their row (read as plain columns: a fan-out loads
    thousands of them per second, and ORM objects cost more than the send)."""

    id: int
    email: str
    platform: str
    platform_user_id: str | None
    paused_at: datetime | None


# A claimed row with what rendering it needs: its member, and the answers a checklist shows.
Work = tuple[outbox.Claimed, Member | None, dict[str, str]]
# Renders a claimed row of a kind this module does not know (digests); returns the message.
Renderer = Callable[[outbox.Claimed, datetime], Awaitable[Message]]


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    verified: int = 0  # ambiguous rows the platform confirmed as already sent

    @property
    def finished(self) -> int:
        """Attempts with an outcome, whatever it was."""
        return self.sent + self.retrying + self.failed + self.verified

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed
        self.verified += other.verified


@dataclass
class Deliverer:
    """Sends everything due for the configured platforms; one per process."""

    db: Database
    chats: Mapping[str, ChatPort]
    limiter: RateLimiter = field(default_factory=RateLimiter)
    concurrency: int = 32
    batch: int = 500
    renderers: dict[str, Renderer] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    renders: ChecklistRenders = field(default_factory=ChecklistRenders, repr=False)

    async def deliver_due(self, program: Program, clock: Callable[[], datetime]) -> DeliveryReport:
        """Deliver batch after batch until nothing is due at ``clock()``.

        ``concurrency`` senders each take the next claimed row as soon as their last send is
        done, and the sends never wait on the database: the next batch is claimed (in the
        same transaction that records the outcomes so far) while the second half of the
        current one is sent, and outcomes that would otherwise wait longer than
        ``RECORD_WITHIN`` are committed in the background. One transaction at a time: SQLite
        has a single writer, and each transaction records the outcomes there are when it
        starts.
        """
        report = DeliveryReport()
        # Outcomes of finished sends not committed yet; they leave this list only once their
        # transaction has committed, so a failed commit loses none of them.
        unrecorded: list[Outcome] = []
        queue: deque[Work] = deque()
        batch = self.claim_size()
        one_at_a_time = asyncio.Lock()
        committed_at = time.monotonic()
        claiming: asyncio.Task[None] | None = None
        flushing: asyncio.Task[list[Work]] | None = None
        exhausted = False  # the last claim found nothing due
        stopping = False
        finished_at_claim = 0  # sends finished when the last claim began
        low_water = 0  # claim ahead once fewer rows than this wait

        async def commit(size: int) -> list[Work]:
            """Record the outcomes there are, and claim up to ``size`` rows (0: none)."""
            nonlocal committed_at
            async with one_at_a_time:
                claim = await self._record_and_claim(unrecorded, clock(), size)
            committed_at = time.monotonic()
            return claim

        async def claim_more() -> None:
            nonlocal claiming, exhausted, low_water, finished_at_claim
            finished_at_claim = report.finished
            claimed = await commit(batch)
            exhausted, low_water = not claimed, int(len(claimed) * (1 - CLAIM_AHEAD_AT))
            queue.extend(claimed)
            claiming = None

        def start_claim() -> asyncio.Task[None]:
            nonlocal claiming
            claiming = asyncio.create_task(claim_more())
            return claiming

        async def sender() -> None:
            # A loop per sender rather than a task per row: the next send starts in the same
            # step that finished the last one, with no task, semaphore or callback in between.
            nonlocal flushing
            while not stopping:
                if queue:
                    row, person, answered = queue.popleft()
                    if claiming is None and not exhausted and len(queue) < low_water:
                        start_claim()
                    elif unrecorded and not one_at_a_time.locked() and time.monotonic() - committed_at > RECORD_WITHIN:
                        # Sends paced slowly are recorded as they go. A failed commit keeps its
                        # outcomes for the next one, which raises if the database is still down.
                        flushing = asyncio.create_task(commit(0))
                        flushing.add_done_callback(_log_failure)
                    outcome = await self._attempt(program, row, person, answered, clock)  # turns every error into an outcome
                    unrecorded.append(outcome)
                    _count(report, outcome)
                elif exhausted:
                    return
                else:
                    claim = claiming or start_claim()
                    await asyncio.wait({claim})  # shared by the senders that wait; never raises
                    if claim.cancelled():
                        return
                    if claim.exception() is not None:
                        raise claim.exception()  # type: ignore[misc]

        senders: set[asyncio.Task[None]] = set()
        try:
            while True:
                senders = {asyncio.create_task(sender()) for _ in range(self.concurrency)}
                while senders:
                    done, senders = await asyncio.wait(senders, return_when=asyncio.FIRST_EXCEPTION)
                    for task in done:
                        task.result()  # the database failed: raise
                if report.finished == finished_at_claim:  # the claim that found nothing came after every send
                    await self._measure_lag(clock())
                    return report
                exhausted = False  # what the sends since recorded may free more work: claim again
        finally:
            # Stopped (the worker shuts down) or the database failed: sends already on their
            # way are finished, and every outcome not yet committed is recorded if it can be.
            # A claim in progress is called off (rolled back), its rows stay due.
            stopping = True
            if claiming is not None:
                claiming.cancel()
            pending = {t for t in (claiming, flushing, *senders) if t is not None}
            if pending:
                await asyncio.wait(pending)
            if unrecorded:
                await self._record_and_claim(unrecorded, clock(), 0)

    def claim_size(self) -> int:
        """Rows to claim at once: at most what the slowest configured workspace/tenant pace sends
        in half a lease, so no row is still waiting for its turn when its lease runs out (a
        worker would then claim it again and send it twice)."""
        rate = self.limiter.slowest_rate(list(self.chats))
        if rate is None:
            return self.batch
        return max(1, min(self.batch, int(rate * outbox.CLAIM_LEASE.total_seconds() / 2)))

    async def _record_and_claim(self, outcomes: list[Outcome], now: datetime, batch: int) -> list[Work]:
        """One transaction: the outcomes there are now (dropped from ``outcomes`` once committed),
        and the next ``batch`` due rows (none for 0) with what rendering them needs (their
        people, and the answers a checklist shows)."""
        recording = len(outcomes)
        async with self.db.session() as session:
            if recording:
                await outbox.mark_many(session, outcomes[:recording])
            claimed = await outbox.claim_due(session, now, batch, platforms=list(self.chats)) if batch else []
            people = await _people(session, {c.person_id for c in claimed if c.person_id})
            keys = {
                c.id: (c.person_id, c.cohort_id, IsoWeek.parse(c.payload["week"]))
                for c in claimed
                if c.kind in ("checklist", "reminder") and c.person_id and c.cohort_id
            }
            answers = await checkins.answers_for(session, keys.values())
        del outcomes[:recording]
        return [(c, people.get(c.person_id or -1), answers.get(keys.get(c.id), {})) for c in claimed]

    async def drain(self, program: Program, clock: Callable[[], datetime] = None, idle: float = 0.05) -> DeliveryReport:  # type: ignore[assignment]
        """Deliver until the outbox has nothing pending, waiting for retries as they fall due
        (with the real clock): for a one-off fan-out; the worker's loop never ends instead."""
        clock = clock or utc_now
        report = DeliveryReport()
        while True:
            report.add(await self.deliver_due(program, clock))
            async with self.db.session() as session:
                next_at = await session.scalar(
                    select(func.min(Delivery.next_attempt_at)).where(
                        Delivery.status.in_(("pending", "sending", "verifying")), Delivery.platform.in_(list(self.chats))
                    )
                )
            if next_at is None:
                return report
            await asyncio.sleep(max(idle, (next_at - clock()).total_seconds()))

    async def _attempt(
        self, program: Program, row: outbox.Claimed, person: Member | None, answered: dict[str, str], clock: Callable[[], datetime]
    ) -> Outcome:
        chat = self.chats[row.platform or ""]
        tenant = ""
        try:
            to = await self._recipient(chat, row, person)
            tenant = _tenant(to)
            if row.ambiguous:
                ref = await chat.find_sent(to, row.key)
                if ref is not None:
                    metrics.deliveries(row.kind, "verified").inc()
                    return (
                        row.id,
                        "sent",
                        {"sent_at": clock(), "message_ref": ref, "last_error": "already delivered (verified after a lease ran out)"},
                    )
            message = await self._render(program, row, answered, clock)
            if (wait := self.limiter.reserve(row.platform or "", tenant, to.user_id or to.channel_id or "")) > 0:
                await asyncio.sleep(wait)
            ref = await chat.send(to, message, key=row.key)
        except DeliveryError as exc:
            return self._failure(row, exc, clock(), tenant)
        except Exception as exc:  # a bug must not take the batch down; the row is retried and the error logged
            log.exception("delivery %s crashed", row.key)
            metrics.ERRORS.labels("delivery").inc()
            return self._failure(row, DeliveryError(f"internal error: {exc.__class__.__name__}"), clock(), tenant)
        metrics.deliveries(row.kind, "sent").inc()
        return row.id, "sent", {"sent_at": clock(), "message_ref": ref, "last_error": None}

    def _failure(self, row: outbox.Claimed, exc: DeliveryError, now: datetime, tenant: str) -> Outcome:
        if exc.permanent:
            metrics.deliveries(row.kind, "failed").inc()
            log.warning("delivery %s failed for good: %s", row.key, exc.reason)
            return row.id, "failed", {"last_error": exc.reason[:1000]}
        if row.attempts >= MAX_ATTEMPTS:
            metrics.deliveries(row.kind, "failed").inc()
            reason = f"gave up after {row.attempts} attempts: {exc.reason}"
            log.warning("delivery %s %s", row.key, reason)
            return row.id, "failed", {"last_error": reason[:1000]}
        if exc.retry_after is not None:
            metrics.RATE_LIMITED.labels(row.platform or "").inc()
            self.limiter.pause(row.platform or "", tenant, exc.retry_after)
            delay = timedelta(seconds=exc.retry_after)
        else:
            # Exponential backoff with full jitter, so a recovering platform is not hit by
            # every retry at the same instant.
            ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (row.attempts - 1))
            delay = timedelta(seconds=self.rng.uniform(0.5, 1.0) * ceiling.total_seconds())
        metrics.RETRIES.labels(row.platform or "", "rate_limited" if exc.retry_after is not None else "transient").inc()
        status = "verifying" if exc.ambiguous or row.ambiguous else "pending"
        return row.id, status, {"next_attempt_at": now + delay, "last_error": exc.reason[:1000]}

    async def _recipient(self, chat: ChatPort, row: outbox.Claimed, person: Member | None) -> Recipient:
        if row.target:
            return Recipient(platform=row.platform or "", channel_id=row.target)
        if person is None:
            raise DeliveryError("the delivery names nobody", permanent=True)
        if person.paused_at is not None:
            raise DeliveryError("the member paused Reinforce", permanent=True)
        if not person.platform_user_id:
            user_id = await chat.resolve(person.email)
            if user_id is None:
                raise DeliveryError(f"{person.email} was not found on {person.platform}", permanent=True)
            async with self.db.session() as session:
                stored = await session.get(Person, person.id)
                if stored is not None:
                    stored.platform_user_id = user_id
            person.platform_user_id = user_id
        return Recipient(platform=row.platform or "", user_id=person.platform_user_id)

    async def _render(self, program: Program, row: outbox.Claimed, answered: dict[str, str], clock: Callable[[], datetime]) -> Message:
        if row.kind == "consent":
            return consent_message(program)
        if row.kind in ("checklist", "reminder"):
            cohort = row.payload["cohort"]
            status = None
            if row.kind == "reminder":
                questions = len(program.cohort(cohort).checklist)
                status = f"A reminder: {len(answered)} of {questions} answered so far this week. About a minute for the rest."
            return self.renders.checklist(program, cohort, row.payload["week"], answered, status=status)
        if row.kind == "nudge":
            behavior_key, index = parse_nudge_id(row.payload["nudge_id"])
            choice = NudgeChoice(program.behavior(behavior_key), index, row.payload["mode"], tuple(row.payload["recent"]))
            return nudge_message(choice, IsoWeek.parse(row.payload["week"]))
        renderer = self.renderers.get(row.kind)
        if renderer is None:
            raise DeliveryError(f"deliveries of kind {row.kind!r} are not supported", permanent=True)
        return await renderer(row, clock())

    async def _measure_lag(self, now: datetime) -> None:
        async with self.db.session() as session:
            oldest = await session.scalar(
                select(func.min(Delivery.next_attempt_at)).where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
            )
        metrics.OUTBOX_LAG.set((now - oldest).total_seconds() if oldest else 0.0)


def _count(report: DeliveryReport, outcome: Outcome) -> None:
    _id, status, values = outcome
    if status == "sent":
        if (values.get("last_error") or "").startswith("already delivered"):
            report.verified += 1
        else:
            report.sent += 1
    elif status in ("pending", "verifying"):
        report.retrying += 1
    else:
        report.failed += 1


def _tenant(to: Recipient) -> str:
    """The workspace/tenant part of an opaque "TENANT:ID" platform id ('' when there is none)."""
    target = to.user_id or to.channel_id or ""
    tenant, sep, _rest = target.partition(":")
    return tenant if sep else ""


_PEOPLE = {
    dialect: select(Person.id, Person.email, Person.platform, Person.platform_user_id, Person.paused_at).where(among(Person.id, dialect))
    for dialect in ("postgresql", "sqlite")
}


async def _people(session: Any, ids: set[int]) -> dict[int, Member]:
    if not ids:
        return {}
    return {row[0]: Member(*row) for row in await session.execute(_PEOPLE[session.bind.dialect.name], {"ids": list(ids)})}


def _log_failure(task: asyncio.Task[list[Work]]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("recording delivery outcomes failed (kept for the next try): %s", exc)


def utc_now() -> datetime:
    return datetime.now(UTC)
