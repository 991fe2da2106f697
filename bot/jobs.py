"""The scheduler's work: on every tick, queue what is due for every member and cohort.

A tick only inserts outbox rows under unique keys (member, kind, period), so ticks may
run late, twice, or in two scheduler processes at once without sending anything twice.
Sending is the delivery engine's job (bot.delivery).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.digests import freeze_closed_weeks
from bot.reviews import review_reminders
from nudges.coaching import choose_nudge
from nudges.program import Cohort as CohortSpec
from nudges.program import Program
from nudges.schedule import Due, MemberState, Rules, digest_due, due_for_member, next_allowed
from nudges.weeks import IsoWeek
from storage import checkins, outbox, people
from storage.db import Database
from storage.models import Cohort, Person

# Coaching nudges look at this many weeks of answers (the selection uses the last two answered).
NUDGE_LOOKBACK_WEEKS = 8


@dataclass
class TickReport:
    queued: dict[str, int]

    def total(self) -> int:
        return sum(self.queued.values())


def rules_of(cohort: CohortSpec) -> Rules:
    limits = cohort.limits
    return Rules(
        day_start=time.fromisoformat(limits.day_start),
        day_end=time.fromisoformat(limits.day_end),
        weekends=limits.weekends,
        fatigue_cap=limits.fatigue_cap,
    )


async def tick(db: Database, program: Program, now: datetime) -> TickReport:
    """Queue everything due at ``now``: consent requests, checklists, reminders, nudges, digests."""
    report = TickReport(queued={})
    for spec in program.cohorts:
        async with db.session() as session:
            cohort_id = await session.scalar(select(Cohort.id).where(Cohort.key == spec.key))
            if cohort_id is None:
                continue
            rows = await _members(session, program, spec, cohort_id, now)
            rows += _digest(spec, cohort_id, now)
            for kind in await outbox.enqueue_many(session, rows):
                report.queued[kind] = report.queued.get(kind, 0) + 1
    async with db.session() as session:
        for kind in await outbox.enqueue_many(session, await review_reminders(session, program, now)):
            report.queued[kind] = report.queued.get(kind, 0) + 1
    # A week that closed since the last tick has its figures computed here, once, rather
    # than by the first digest that asks for them while a sponsor waits.
    await freeze_closed_weeks(db, program, now)
    return report


async def _members(session: AsyncSession, program: Program, spec: CohortSpec, cohort_id: int, now: datetime) -> list[dict[str, Any]]:
    """The member deliveries due at ``now`` (outbox rows, not yet inserted)."""
    members = await people.reachable_participants(session, cohort_id)
    weeks = {IsoWeek.of(now.astimezone(ZoneInfo(p.timezone))) for p, _c, _j in members}
    if not any(spec.is_running(w) for w in weeks):
        return []
    rows: list[dict[str, Any]] = []
    sent = await outbox.touches(session, cohort_id, [str(w) for w in weeks])
    states = await checkins.week_states(session, cohort_id, weeks)
    rules = rules_of(spec)
    nudges: list[tuple[Person, Due]] = []
    for person, consent, joined_at in members:
        week = IsoWeek.of(now.astimezone(ZoneInfo(person.timezone)))
        if not spec.is_running(week):
            continue
        if consent is None:
            await people.set_consent(session, person.id, "pending", now)
            # The consent request is a touch like any other: not in the member's quiet hours.
            due_at = next_allowed(now, person.timezone, rules)
            rows.append(
                outbox.row(key=f"consent:{person.id}", kind="consent", period="once", due_at=due_at, person=person, cohort_id=cohort_id)
            )
            continue
        if consent != "accepted":
            continue
        answered, choice = states.get((person.id, week), (0, None))
        state = MemberState(
            joined_at=joined_at,
            sent=sent.get((person.id, str(week)), {}),  # type: ignore[arg-type]
            answered_this_week=answered >= len(spec.checklist),
            skipped_weeks=frozenset({week}) if choice is not None and choice.skipped_at is not None else frozenset(),
            snoozed_until=choice.snoozed_until if choice is not None else None,
        )
        for due in due_for_member(spec, person.timezone, state, now, rules):
            if due.kind == "nudge":
                # A comparison cohort is measured, not treated: no coaching until its treatment starts.
                if program.is_treated(spec.key, week.monday()):
                    nudges.append((person, due))
                continue
            rows.append(
                outbox.row(
                    key=f"{due.kind}:{person.id}:{spec.key}:{due.period}",
                    kind=due.kind,
                    period=due.period,
                    due_at=due.due_at,
                    person=person,
                    cohort_id=cohort_id,
                    payload={"cohort": spec.key, "week": str(due.week)},
                )
            )
    if nudges:
        rows += await _nudges(session, program, spec, cohort_id, nudges)
    return rows


async def _nudges(
    session: AsyncSession, program: Program, spec: CohortSpec, cohort_id: int, due: list[tuple[Person, Due]]
) -> list[dict[str, Any]]:
    """Pick each member's coaching nudge from their own recent answers, and queue it."""
    ids = [person.id for person, _d in due]
    earliest = min(d.week for _p, d in due) + -NUDGE_LOOKBACK_WEEKS
    signals = await checkins.recent_signals(session, cohort_id, ids, earliest)
    history = await outbox.nudges_sent(session, ids)
    rejected = await people.not_for_me_counts(session, ids)
    behaviors = [program.behavior(key) for key in spec.checklist]
    rows = []
    for person, d in due:
        # Seeded by member and week: two schedulers racing on the same tick pick the same nudge.
        rng = random.Random(f"{person.id}:{d.week}")
        sent = [(nid, IsoWeek.parse(period)) for nid, period in history.get(person.id, [])]
        choice = choose_nudge(behaviors, signals.get(person.id, {}), d.week, rng, sent=sent, not_for_me=rejected.get(person.id))
        if choice is None:
            continue  # no answers yet, or every nudge was used recently: nothing honest to say
        rows.append(
            outbox.row(
                key=f"nudge:{person.id}:{spec.key}:{d.period}",
                kind="nudge",
                period=d.period,
                due_at=d.due_at,
                person=person,
                cohort_id=cohort_id,
                payload={
                    "cohort": spec.key,
                    "week": str(d.week),
                    "nudge_id": choice.nudge_id,
                    "mode": choice.mode,
                    "recent": list(choice.recent),
                },
            )
        )
    return rows


def _digest(spec: CohortSpec, cohort_id: int, now: datetime) -> list[dict[str, Any]]:
    channel = spec.sponsor_channel
    due = digest_due(spec, channel.timezone, now) if channel is not None else None
    if channel is None or due is None:
        return []
    return [
        outbox.row(
            key=f"digest:{spec.key}:{due.period}",
            kind="digest",
            period=due.period,
            due_at=due.due_at,
            cohort_id=cohort_id,
            platform=channel.platform,
            target=channel.id,
            payload={"cohort": spec.key, "week": str(due.week)},
        )
    ]
