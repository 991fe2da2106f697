"""Digest use case: gather a cohort's aggregates, freeze its analysis plan, compute and store its figures.

Producing any digest (the CLI, a sponsor's chat command, the scheduled post) freezes the
plan: once figures have been seen, the analysis can no longer change unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chart import chart_png
from nudges import plan as plan_lock
from nudges.digest import BASELINE_WEEKS, TREND_WEEKS, Digest, GroupAggregates, build_digest
from nudges.digest_formats import digest_message as render_message
from nudges.digest_formats import figures
from nudges.messages import Message
from nudges.program import Cohort as CohortSpec
from nudges.program import Program
from nudges.weeks import IsoWeek
from storage import aggregates, audit, digests, outbox, plans
from storage.db import Database
from storage.models import Cohort

SYSTEM_ACTOR = "reinforce"


class DigestError(ValueError):
    """A digest cannot be produced as asked; the message says what to do."""


async def cohort_digest(db: Database, program: Program, cohort_key: str, week: IsoWeek, now: datetime | None = None) -> Digest:
    """Figures for one cohort and week, in one transaction: the plan is frozen (or a new
    version recorded) first, and the figures are stored in the digests table."""
    spec = program.cohort(cohort_key)
    now = now or datetime.now(UTC)
    async with db.session() as session:
        keys = [spec.key, *([spec.comparison] if spec.comparison else [])]
        ids = dict((await session.execute(select(Cohort.key, Cohort.id).where(Cohort.key.in_(keys)))).all())
        cohort_id = ids.get(spec.key)
        if cohort_id is None:
            raise DigestError(f"cohort {spec.key!r} is not in the database: run `reinforce program load` first")
        version, created = await plans.lock(session, cohort_id, plan_lock.snapshot(program, spec), now)
        if created:
            action = "plan.frozen" if version.version == 1 else "plan.changed"
            audit.record(session, now, SYSTEM_ACTOR, action, subject=spec.key, version=version.version, changed=list(version.changed))
        group = await _gather(session, cohort_id, week, spec, own=True)
        comparison = None
        if spec.comparison and spec.comparison in ids:
            comparison = await _gather(session, ids[spec.comparison], week, spec, own=False)
        digest = build_digest(program, spec, week, group, comparison, version)
        await digests.save(session, cohort_id, week, version.version, figures(digest), now)
    return digest


async def _gather(session: AsyncSession, cohort_id: int, week: IsoWeek, subject: CohortSpec, own: bool) -> GroupAggregates:
    """What the digest of ``subject`` needs from cohort ``cohort_id``: everything for its own
    cohort, the comparable figures for its comparison cohort. The subject's plan (primary
    behavior, minimum exposure, weeks from its start) applies to both sides alike."""
    plan = subject.plan
    first = IsoWeek.of(subject.starts)
    found = GroupAggregates(
        members=await aggregates.member_count(session, cohort_id),
        this_week=await aggregates.behavior_tallies(session, cohort_id, week),
    )
    if plan is not None:
        baseline_weeks = [first + i for i in range(BASELINE_WEEKS)] if own and plan.method == "baseline" else None
        exposure = await aggregates.exposure(session, cohort_id, plan.primary_behavior, week, plan.min_exposure_weeks, baseline_weeks)
        found = replace(
            found,
            series=await aggregates.weekly_series(session, cohort_id, plan.primary_behavior, first, week),
            exposed=exposure.exposed,
            primary=exposure.primary,
            paired=exposure.paired,
        )
    if not own:
        return found
    start = datetime.combine(week.monday(), time(0), UTC)
    return replace(
        found,
        baseline=await aggregates.baseline_tallies(session, cohort_id, [first + i for i in range(BASELINE_WEEKS)]),
        participation=await aggregates.participation(session, cohort_id, [week + -i for i in range(TREND_WEEKS)]),
        activity=await aggregates.activity(session, cohort_id, start, start + timedelta(weeks=1)),
    )


async def digest_message(db: Database, program: Program, cohort_key: str, week: IsoWeek, now: datetime) -> Message:
    """The digest of a cohort-week as a neutral chat message, with the chart as an Image block
    (``Image.data`` holds the PNG bytes to upload); what the scheduler posts."""
    digest = await cohort_digest(db, program, cohort_key, week, now)
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
