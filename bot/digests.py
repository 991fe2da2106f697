"""Digest use case: freeze the analysis plan, read a closed week's stored figures (storing them
first if this is the first digest since the week closed), and store what the digest showed.

Producing any digest (the CLI, a sponsor's chat command, the scheduled post) freezes the
plan: once figures have been seen, the analysis can no longer change unnoticed. Behavior
figures come only from closed weeks, computed once (storage.week_figures); a week still
open shows counts only, so no two digests of a week can be subtracted to reveal an answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chart import chart_png
from nudges import plan as plan_lock
from nudges.digest import (
    BASELINE_WEEKS,
    TREND_WEEKS,
    Activity,
    Digest,
    GroupAggregates,
    Participation,
    build_digest,
    open_digest,
    open_week,
)
from nudges.digest_formats import digest_message as render_message
from nudges.digest_formats import figures
from nudges.intervals import Tally
from nudges.messages import Message
from nudges.plan import PlanVersion
from nudges.program import Cohort as CohortSpec
from nudges.program import Program
from nudges.weeks import IsoWeek
from storage import aggregates, audit, digests, outbox, plans, week_figures
from storage.db import Database
from storage.models import Cohort
from storage.week_figures import Figures, Wanted

SYSTEM_ACTOR = "reinforce"


class DigestError(ValueError):
    """A digest cannot be produced as asked; the message says what to do."""


async def cohort_digest(db: Database, program: Program, cohort_key: str, week: IsoWeek, now: datetime | None = None) -> Digest:
    """The digest of one cohort-week as asked for on demand: a closed week's figures, or a
    week still open's counts only. The plan is frozen (or a new version recorded) first,
    and what the digest shows is stored in the digests table, all in one transaction."""
    return await _produce(db, program, cohort_key, week, week, now or datetime.now(UTC))


async def scheduled_digest(db: Database, program: Program, cohort_key: str, week: IsoWeek, now: datetime) -> Digest:
    """What the sponsor channel gets on ``week``'s digest slot: ``week`` itself if it has closed,
    otherwise the most recent closed week ("last week") with the counts so far of the weeks
    after it, up to ``week``, that are still open. Counts only while no week has closed yet."""
    spec = program.cohort(cohort_key)
    reported = week
    if not spec.is_closed(week, now):
        last = spec.last_closed_week(now)
        reported = min(last, week) if last is not None else week
    return await _produce(db, program, cohort_key, reported, week, now)


async def _produce(db: Database, program: Program, cohort_key: str, reported: IsoWeek, upto: IsoWeek, now: datetime) -> Digest:
    spec = program.cohort(cohort_key)
    async with db.session() as session:
        keys = [spec.key, *([spec.comparison] if spec.comparison else [])]
        ids = dict((await session.execute(select(Cohort.key, Cohort.id).where(Cohort.key.in_(keys)))).all())
        cohort_id = ids.get(spec.key)
        if cohort_id is None:
            raise DigestError(f"cohort {spec.key!r} is not in the database: run `reinforce program load` first")
        version = await _lock_plan(session, program, spec, cohort_id, now)
        if not spec.is_closed(reported, now):
            digest = open_digest(program, spec, reported, await _live(session, cohort_id, reported), version)
        else:
            group = await _closed(session, cohort_id, reported, spec, own=True, now=now)
            comparison = None
            if spec.comparison and spec.comparison in ids:
                comparison = await _closed(session, ids[spec.comparison], reported, spec, own=False, now=now)
            still_open = [reported + i for i in range(1, upto - reported + 1)]
            counts = await aggregates.participation(session, cohort_id, still_open)
            later = [open_week(program, spec, w, counts[w]) for w in still_open]
            digest = build_digest(program, spec, reported, group, comparison, version, later)
        await digests.save(session, cohort_id, reported, version.version, figures(digest), now)
    return digest


async def _lock_plan(session: AsyncSession, program: Program, spec: CohortSpec, cohort_id: int, now: datetime) -> PlanVersion:
    version, created = await plans.lock(session, cohort_id, plan_lock.snapshot(program, spec), now)
    if created:
        action = "plan.frozen" if version.version == 1 else "plan.changed"
        audit.record(session, now, SYSTEM_ACTOR, action, subject=spec.key, version=version.version, changed=list(version.changed))
    return version


async def _live(session: AsyncSession, cohort_id: int, week: IsoWeek) -> GroupAggregates:
    """A week still open, counts only, as they stand now: members, the participation of its
    trend weeks, and its rehearsals and feedback awaiting review."""
    return GroupAggregates(
        members=await aggregates.member_count(session, cohort_id),
        participation=await aggregates.participation(session, cohort_id, [week + -i for i in range(TREND_WEEKS)]),
        activity=await _activity(session, cohort_id, week),
    )


async def _activity(session: AsyncSession, cohort_id: int, week: IsoWeek) -> Activity:
    """Rehearsals started in ``week`` (UTC) and feedback awaiting review now: counts that are
    not behavior figures, so they are read live."""
    start = datetime.combine(week.monday(), time(0), UTC)
    return await aggregates.activity(session, cohort_id, start, start + timedelta(weeks=1))


async def freeze_closed_weeks(db: Database, program: Program, now: datetime) -> None:
    """Store the figures of each cohort's most recent closed week (and of any earlier week not
    stored yet), as its digest and its comparison's will need them, so that no digest
    computes them while a sponsor waits. The scheduler's tick calls it; once they are
    stored it only reads them."""
    ids = await _cohort_ids(db)
    for spec in program.cohorts:
        week = spec.last_closed_week(now)
        if week is None or spec.key not in ids:
            continue
        async with db.session() as session:
            await week_figures.closed_figures(session, ids[spec.key], _wanted(spec, week, own=True), now)
            if spec.comparison in ids:
                await week_figures.closed_figures(session, ids[spec.comparison], _wanted(spec, week, own=False), now)


async def _cohort_ids(db: Database) -> dict[str, int]:
    async with db.session() as session:
        return {key: cohort_id for key, cohort_id in await session.execute(select(Cohort.key, Cohort.id))}


def _wanted(subject: CohortSpec, week: IsoWeek, own: bool) -> Wanted:
    """What the digest of ``subject`` for the closed ``week`` needs of its own cohort (``own``)
    or of its comparison cohort, where the subject's plan applies alike."""
    plan = subject.plan
    first = IsoWeek.of(subject.starts)
    return Wanted(
        week=week,
        first=first,  # the chart's series starts here, and the trend never reaches before it
        behaviors=tuple(subject.checklist),
        exposure=(plan.primary_behavior, plan.min_exposure_weeks) if plan is not None else None,
        baseline=tuple(first + i for i in range(BASELINE_WEEKS)) if own else (),
        paired=own and plan is not None and plan.method == "baseline",
    )


async def _closed(session: AsyncSession, cohort_id: int, week: IsoWeek, subject: CohortSpec, own: bool, now: datetime) -> GroupAggregates:
    """The closed ``week`` of cohort ``cohort_id`` as the digest of ``subject`` needs it, from the
    stored figures: everything for its own cohort, the comparable figures for its comparison
    cohort. The subject's plan (primary behavior, minimum exposure, weeks from its start)
    applies to both sides alike."""
    plan = subject.plan
    wanted = _wanted(subject, week, own)
    stored = await week_figures.closed_figures(session, cohort_id, wanted, now)
    found = GroupAggregates(
        members=await aggregates.member_count(session, cohort_id),
        this_week={b: stored.get((week, week_figures.answers(b)), Tally()) for b in subject.checklist},
    )
    if plan is not None:
        found = _with_plan(found, stored, wanted, plan.primary_behavior, plan.min_exposure_weeks)
    if not own:
        return found
    at = min(week, wanted.baseline[-1])
    return replace(
        found,
        baseline={b: stored.get((at, week_figures.baseline(b)), Tally()) for b in subject.checklist},
        participation={w: _participation(stored, w) for w in wanted.weeks()},
        activity=await _activity(session, cohort_id, week),
    )


def _with_plan(found: GroupAggregates, stored: Figures, wanted: Wanted, behavior: str, k: int) -> GroupAggregates:
    """``found`` with the plan's figures for ``wanted.week``: exposure, the exposed members'
    answers, their pairing with their baseline, and the primary behavior's weekly series."""
    week = wanted.week
    paired = None
    if wanted.paired and stored[(week, week_figures.paired(behavior, k))].n:
        paired = (stored[(week, week_figures.paired(behavior, k))], stored[(week, week_figures.paired_baseline(behavior, k))])
    return replace(
        found,
        series={w: stored.get((w, week_figures.answers(behavior)), Tally()) for w in wanted.weeks()},
        exposed=stored[(week, week_figures.exposed(behavior, k))].n,
        primary=stored[(week, week_figures.exposed_answers(behavior, k))],
        paired=paired,
    )


def _participation(stored: Figures, week: IsoWeek) -> Participation:
    return Participation(delivered=stored[(week, week_figures.DELIVERED)].n, answered=stored[(week, week_figures.ANSWERED)].n)


async def digest_message(db: Database, program: Program, cohort_key: str, week: IsoWeek, now: datetime) -> Message:
    """The scheduled digest of ``week`` (``scheduled_digest``) as a neutral chat message, with the
    chart as an Image block (``Image.data`` holds the PNG bytes to upload); what is posted."""
    digest = await scheduled_digest(db, program, cohort_key, week, now)
    return render_message(digest, await chart_png(digest))


@dataclass(frozen=True)
class QueuedDigest:
    key: str
    platform: str
    channel: str
    queued: bool  # False: a digest for this cohort-week was already in the outbox


def digest_key(cohort_key: str, week: IsoWeek) -> str:
    """The outbox key that makes a cohort-week's digest one post, however often it is asked for."""
    return f"digest:{cohort_key}:{week}"


async def queue_digest(db: Database, program: Program, cohort_key: str, week: IsoWeek, now: datetime) -> QueuedDigest:
    """Put the cohort-week's digest in the outbox for its sponsor channel (once per cohort-week).

    The delivery worker renders it when it sends it (``digest_message``), so the post carries
    the figures as of sending.
    """
    spec = program.cohort(cohort_key)
    if spec.sponsor_channel is None:
        raise DigestError(f"cohort {spec.key!r} has no sponsor_channel in the program file, so there is nowhere to post its digest")
    channel = spec.sponsor_channel
    key = digest_key(spec.key, week)
    async with db.session() as session:
        cohort_id = await session.scalar(select(Cohort.id).where(Cohort.key == spec.key))
        if cohort_id is None:
            raise DigestError(f"cohort {spec.key!r} is not in the database: run `reinforce program load` first")
        queued = await outbox.enqueue(
            session,
            key=key,
            kind="digest",
            period=str(week),
            due_at=now,
            cohort_id=cohort_id,
            platform=channel.platform,
            target=channel.id,
            payload={"cohort": spec.key, "week": str(week)},
        )
    return QueuedDigest(key, channel.platform, channel.id, queued)
