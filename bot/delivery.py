"""The delivery engine: claim due outbox rows, send them at the platforms' pace, and record what became of each."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import ChannelUnreachable, ChatPort, DeliveryError, Recipient
from bot import admin_notices, metrics
from bot.ratelimit import RateLimiter
from nudges.checklist import build_checklist, checklist_message, is_complete, reminder_message
from nudges.coaching import NudgeChoice, nudge_message, parse_nudge_id
from nudges.consent import consent_message
from nudges.messages import Message
from nudges.program import Program
from nudges.weeks import IsoWeek
from storage import accounts, checkins, outbox
from storage.db import Database
from storage.models import Delivery, Person
from storage.outbox import Outcome

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
# Outcomes are committed at least this often (seconds) while sends go on, so slowly paced
# sends are not left looking unsent for long: a crash then leaves little to re-check.
RECORD_WITHIN = 1.0
VERIFIED = "already delivered (verified after a lease ran out)"

# Renders a claimed row of a kind this module does not know (digests); returns the message.
Renderer = Callable[[outbox.Claimed, datetime], Awaitable[Message]]


@dataclass(slots=True)
class Member:
    """What sending to a member needs of their row."""

    id: int
    email: str
    paused_at: datetime | None
    accounts: dict[str, str] = field(default_factory=dict)  # platform -> member id


@dataclass(slots=True)
class Work:
    """A claimed row with what rendering it needs: its member, and the answers a checklist shows."""

    row: outbox.Claimed
    person: Member | None
    answered: dict[str, str]


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

    def count(self, outcome: Outcome) -> None:
        if outcome.status == "sent":
            if outcome.last_error == VERIFIED:
                self.verified += 1
            else:
                self.sent += 1
        elif outcome.status in ("pending", "verifying"):
            self.retrying += 1
        else:
            self.failed += 1


@dataclass
class Deliverer:
    """Sends everything due for the configured platforms; one per process.

    Exactly-once, as far as a chat platform allows it: a row is leased before it is sent and
    its outcome recorded right after; a row whose lease ran out mid-send (its worker crashed)
    is checked with the platform (``ChatPort.find_sent``) before it is sent again.
    """

    db: Database
    chats: Mapping[str, ChatPort]
    limiter: RateLimiter = field(default_factory=RateLimiter)
    concurrency: int = 32
    batch: int = 500
    renderers: dict[str, Renderer] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)

    async def deliver_due(self, program: Program, clock: Callable[[], datetime]) -> DeliveryReport:
        """Deliver batch after batch until a claim finds nothing due at ``clock()``.

        Each batch is claimed in one transaction, the next one while this one is sent (so the
        sends never wait for a claim; ``claim_size`` keeps two batches within a lease), and its
        rows are sent with at most ``concurrency`` sends at once. Outcomes are committed at
        least every ``RECORD_WITHIN`` seconds. When the worker stops (this is cancelled) or the
        database fails, the sends under way finish and every outcome is recorded if the
        database allows it; rows claimed but not started yet stay leased, and come back
        (checked with the platform first) once their lease runs out.
        """
        report = DeliveryReport()
        sends = _Sends(self.concurrency)
        claiming = asyncio.create_task(self._claim(clock()))
        try:
            while work := await claiming:
                # Claimed ahead: with the sends waiting for each claim, 5,000 members paced at
                # 500/s took 11.6 s instead of 10.9 s (four alternating runs), and the fan-out
                # guard (within 10% of the limit's minimum) sat at its edge.
                claiming = asyncio.create_task(self._claim(clock()))
                for item in work:
                    await sends.free_slot()
                    sends.start(self._attempt(program, item, clock))
                    if sends.unrecorded_for() > RECORD_WITHIN:
                        await self._record(sends, report)
            while not await sends.finish(RECORD_WITHIN):
                await self._record(sends, report)
            await self._record(sends, report)
        finally:
            claiming.cancel()  # a claim under way is rolled back, its rows stay due
            await asyncio.wait({claiming})
            # Stopped, or the database failed: once more, for what is still unrecorded (if anything).
            await sends.finish()
            await self._record(sends, report)
        return report

    def claim_size(self) -> int:
        """Rows to claim at once: at most what the slowest configured workspace/tenant pace sends
        in half a lease, so no row (its batch claimed while the one before is sent) is still
        waiting for its turn when its lease runs out (a worker would then claim it again and
        send it twice)."""
        rate = self.limiter.slowest_rate(list(self.chats))
        if rate is None:
            return self.batch
        return max(1, min(self.batch, int(rate * outbox.CLAIM_LEASE.total_seconds() / 2)))

    async def drain(self, program: Program, clock: Callable[[], datetime] | None = None, idle: float = 0.05) -> DeliveryReport:
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

    async def _claim(self, now: datetime) -> list[Work]:
        """Lease the next batch of due rows, with their people and the answers their checklists show."""
        async with self.db.session() as session:
            claimed = await outbox.claim_due(session, now, self.claim_size(), platforms=list(self.chats))
            people = await _people(session, {c.person_id for c in claimed if c.person_id})
            weeks = {c.id: week for c in claimed if (week := _checklist_week(c)) is not None}
            answers = await checkins.answers_for(session, weeks.values())
        return [
            Work(c, people.get(c.person_id) if c.person_id else None, answers.get(weeks[c.id], {}) if c.id in weeks else {})
            for c in claimed
        ]

    async def _record(self, sends: _Sends, report: DeliveryReport) -> None:
        """Commit the outcomes of the sends finished so far. They leave ``sends.finished`` only
        once committed, so a failed commit loses none of them."""
        recording = sends.finished[:]
        if recording:
            async with self.db.session() as session:
                await outbox.mark_many(session, recording)
        sends.recorded(len(recording))
        for outcome in recording:
            report.count(outcome)

    async def _attempt(self, program: Program, work: Work, clock: Callable[[], datetime]) -> Outcome:
        """Send one row; every error becomes an outcome (a retry or a failure)."""
        row = work.row
        chat = self.chats[row.platform or ""]
        tenant = ""
        try:
            to = await self._recipient(chat, row, work.person)
            tenant = _tenant(to)
            if row.ambiguous and (ref := await chat.find_sent(to, row.key)) is not None:
                metrics.DELIVERIES.labels(row.kind, "verified").inc()
                return Outcome(row.id, "sent", VERIFIED, sent_at=clock(), message_ref=ref)
            message = await self._render(program, row, work.answered, clock)
            if (wait := self.limiter.reserve(row.platform or "", tenant, to.user_id or to.channel_id or "")) > 0:
                await asyncio.sleep(wait)
            ref = await chat.send(to, message, key=row.key)
        except ChannelUnreachable as exc:
            await self._tell_admins(row, exc, clock())
            return self._failure(row, exc, clock(), tenant)
        except DeliveryError as exc:
            return self._failure(row, exc, clock(), tenant)
        except Exception as exc:  # a bug must not take the batch down; the row is retried and the error logged
            log.exception("delivery %s crashed", row.key)
            metrics.ERRORS.labels("delivery").inc()
            return self._failure(row, DeliveryError(f"internal error: {exc.__class__.__name__}"), clock(), tenant)
        metrics.DELIVERIES.labels(row.kind, "sent").inc()
        return Outcome(row.id, "sent", sent_at=clock(), message_ref=ref)

    async def _tell_admins(self, row: outbox.Claimed, problem: ChannelUnreachable, now: datetime) -> None:
        try:
            if await admin_notices.tell_admins(self.db, row.platform or "", problem, now):
                log.warning("cannot post in %s channel %s; the admins are told: %s", row.platform, problem.channel, problem.fix)
        except Exception:  # the failure is recorded all the same, and `doctor` and `program show` list it
            log.exception("could not queue the admins' notice about channel %s", problem.channel)
            metrics.ERRORS.labels("delivery").inc()

    def _failure(self, row: outbox.Claimed, exc: DeliveryError, now: datetime, tenant: str) -> Outcome:
        if exc.permanent or row.attempts >= MAX_ATTEMPTS:
            reason = exc.reason if exc.permanent else f"gave up after {row.attempts} attempts: {exc.reason}"
            metrics.DELIVERIES.labels(row.kind, "failed").inc()
            log.warning("delivery %s failed for good: %s", row.key, reason)
            return Outcome(row.id, "failed", reason[:1000])
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
        return Outcome(row.id, status, exc.reason[:1000], next_attempt_at=now + delay)

    async def _recipient(self, chat: ChatPort, row: outbox.Claimed, person: Member | None) -> Recipient:
        if row.target:
            return Recipient(platform=row.platform or "", channel_id=row.target)
        if person is None:
            raise DeliveryError("the delivery names nobody", permanent=True)
        if person.paused_at is not None:
            raise DeliveryError("the member paused Reinforce", permanent=True)
        platform = row.platform or ""
        if platform not in person.accounts:
            # Not linked at `program load` (not found then): look them up now.
            user_id = await chat.resolve(person.email)
            if user_id is None:
                raise DeliveryError(f"{person.email} was not found on {platform}", permanent=True)
            async with self.db.session() as session:
                await accounts.link(session, person.id, platform, user_id, utc_now())
            person.accounts[platform] = user_id
        return Recipient(platform=platform, user_id=person.accounts[platform])

    async def _render(self, program: Program, row: outbox.Claimed, answered: dict[str, str], clock: Callable[[], datetime]) -> Message:
        if row.kind == "consent":
            return consent_message(program)
        if row.kind == admin_notices.KIND:
            return admin_notices.notice_message(row.payload)
        if row.kind in ("checklist", "reminder"):
            checklist = build_checklist(program, program.cohort(row.payload["cohort"]), IsoWeek.parse(row.payload["week"]))
            if row.kind == "checklist":
                return checklist_message(checklist, answered)
            if is_complete(checklist, answered):
                raise DeliveryError("the week was answered before its reminder went out", permanent=True)
            return reminder_message(checklist, answered)
        if row.kind == "nudge":
            behavior_key, index = parse_nudge_id(row.payload["nudge_id"])
            choice = NudgeChoice(program.behavior(behavior_key), index, row.payload["mode"], tuple(row.payload["recent"]))
            return nudge_message(choice, IsoWeek.parse(row.payload["week"]))
        renderer = self.renderers.get(row.kind)
        if renderer is None:
            raise DeliveryError(f"deliveries of kind {row.kind!r} are not supported", permanent=True)
        return await renderer(row, clock())


class _Sends:
    """The sends under way (at most ``limit`` at once) and the outcomes of those that finished."""

    def __init__(self, limit: int) -> None:
        self.finished: list[Outcome] = []
        self._slots = asyncio.Semaphore(limit)
        self._running: set[asyncio.Task[None]] = set()
        self._recorded_at = time.monotonic()

    async def free_slot(self) -> None:
        """Wait until fewer than ``limit`` sends are under way, and take the free slot."""
        await self._slots.acquire()

    def start(self, attempt: Coroutine[Any, Any, Outcome]) -> None:
        """Run ``attempt`` in the slot taken by ``free_slot``."""
        task = asyncio.create_task(self._run(attempt))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def finish(self, timeout: float | None = None) -> bool:
        """Wait for the sends under way, at most ``timeout`` seconds; True once none is left.
        (They are never cancelled: a send cut short could not say whether it arrived.)"""
        if self._running:
            await asyncio.wait(self._running, timeout=timeout)
        return not self._running

    def unrecorded_for(self) -> float:
        """Seconds since outcomes were last committed."""
        return time.monotonic() - self._recorded_at

    def recorded(self, count: int) -> None:
        """The first ``count`` finished outcomes are committed."""
        del self.finished[:count]
        self._recorded_at = time.monotonic()

    async def _run(self, attempt: Coroutine[Any, Any, Outcome]) -> None:
        try:
            self.finished.append(await attempt)  # _attempt turns every error into an outcome
        finally:
            self._slots.release()


def _checklist_week(row: outbox.Claimed) -> tuple[int, int, IsoWeek] | None:
    """(person, cohort, week) of a checklist or reminder, whose message shows the answers so far."""
    if row.kind in ("checklist", "reminder") and row.person_id and row.cohort_id:
        return row.person_id, row.cohort_id, IsoWeek.parse(row.payload["week"])
    return None


def _tenant(to: Recipient) -> str:
    """The workspace/tenant part of an opaque "TENANT:ID" platform id ('' when there is none)."""
    target = to.user_id or to.channel_id or ""
    tenant, sep, _rest = target.partition(":")
    return tenant if sep else ""


async def _people(session: AsyncSession, ids: set[int]) -> dict[int, Member]:
    if not ids:
        return {}
    rows = await session.execute(select(Person.id, Person.email, Person.paused_at).where(Person.id.in_(ids)))
    linked = await accounts.linked(session, ids)
    return {row.id: Member(row.id, row.email, row.paused_at, linked.get(row.id, {})) for row in rows}


def utc_now() -> datetime:
    return datetime.now(UTC)
