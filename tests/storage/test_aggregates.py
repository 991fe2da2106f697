"""Digest aggregates on SQLite and PostgreSQL: each GROUP BY against hand-counted figures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import insert

from nudges.digest import Activity, Participation
from nudges.intervals import Tally
from nudges.weeks import IsoWeek
from storage import aggregates
from storage.db import Database
from storage.models import BehaviorSignal, Cohort, Delivery, FeedbackReview, Membership, Person, RehearsalSession

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
W02, W03, W04 = IsoWeek(2026, 2), IsoWeek(2026, 3), IsoWeek(2026, 4)

# person -> {(behavior, week): value}; people 1-6 are active participants of cohort A,
# 7 an inactive one, 8 its sponsor, 9 a participant of cohort B.
HUDDLE, ESCALATE = "decision_huddle", "escalate_24h"
SIGNALS = {
    1: {(HUDDLE, W02): 1, (HUDDLE, W03): 1, (HUDDLE, W04): 1, (ESCALATE, W04): 0},
    2: {(HUDDLE, W02): 0, (HUDDLE, W03): 1, (HUDDLE, W04): 0.5},
    3: {(HUDDLE, W02): 0.5, (HUDDLE, W04): 1},
    4: {(HUDDLE, W03): 0, (HUDDLE, W04): 0},
    5: {(HUDDLE, W04): 1},
    6: {(ESCALATE, W02): 1, (ESCALATE, W03): 1, (ESCALATE, W04): 1},
}


async def seed(db: Database) -> tuple[int, int]:
    """Two cohorts with the signals above, deliveries, rehearsals and reviews; returns (A, B)."""
    async with db.session() as session:
        a = Cohort(key="a", name="A", starts=date(2026, 1, 5), weeks=12)
        b = Cohort(key="b", name="B", starts=date(2026, 1, 5), weeks=12)
        session.add_all([a, b])
        session.add_all([Person(id=i, email=f"p{i}@example.com", created_at=T0) for i in range(1, 10)])
        await session.flush()
        roles = [(i, a.id, "participant", True) for i in range(1, 7)] + [
            (7, a.id, "participant", False),
            (8, a.id, "sponsor", True),
            (9, b.id, "participant", True),
        ]
        await session.execute(
            insert(Membership), [dict(person_id=p, cohort_id=c, role=r, active=act, joined_at=T0) for p, c, r, act in roles]
        )
        rows = [
            dict(person_id=p, cohort_id=a.id, behavior_key=k, week=str(w), value=v, source="checkin", recorded_at=T0)
            for p, answers in SIGNALS.items()
            for (k, w), v in answers.items()
        ]
        rows.append(dict(person_id=5, cohort_id=a.id, behavior_key=HUDDLE, week=str(W02), value=1, source="survey", recorded_at=T0))
        rows.append(dict(person_id=9, cohort_id=b.id, behavior_key=HUDDLE, week=str(W04), value=1, source="checkin", recorded_at=T0))
        await session.execute(insert(BehaviorSignal), rows)
        deliveries = [(p, a.id, "checklist", W04, "sent") for p in range(1, 6)] + [(p, a.id, "checklist", W03, "sent") for p in range(1, 4)]
        deliveries += [
            (6, a.id, "checklist", W04, "pending"),
            (7, a.id, "checklist", W04, "failed"),
            (1, a.id, "nudge", W04, "sent"),
            (9, b.id, "checklist", W04, "sent"),
        ]
        await session.execute(
            insert(Delivery),
            [
                dict(
                    idempotency_key=f"{kind}:{p}:{c}:{w}",
                    kind=kind,
                    period=str(w),
                    person_id=p,
                    cohort_id=c,
                    status=status,
                    due_at=T0,
                    next_attempt_at=T0,
                )
                for p, c, kind, w, status in deliveries
            ],
        )
        w04 = datetime(2026, 1, 19, 10, tzinfo=UTC)
        sessions = {
            "p1-w04": RehearsalSession(person_id=1, scenario_key="s", status="finished", started_at=w04),
            "p2-w04": RehearsalSession(person_id=2, scenario_key="s", status="finished", started_at=w04 + timedelta(days=6, hours=13)),
            "p7-w04": RehearsalSession(person_id=7, scenario_key="s", status="finished", started_at=w04),  # inactive member
            "p1-w03": RehearsalSession(person_id=1, scenario_key="s", status="finished", started_at=w04 - timedelta(minutes=1, hours=10)),
        }
        session.add_all(sessions.values())
        await session.flush()
        for key, status in (
            ("p1-w04", "awaiting_review"),
            ("p2-w04", "approved"),
            ("p1-w03", "awaiting_review"),
            ("p7-w04", "awaiting_review"),
        ):
            session.add(FeedbackReview(session_id=sessions[key].id, source="rubric", feedback={}, status=status, created_at=T0))
        return a.id, b.id


async def test_weekly_tallies_count_each_weeks_checkin_answers_per_behavior(db: Database) -> None:
    a, _b = await seed(db)
    async with db.session() as session:
        tallies = await aggregates.weekly_tallies(session, a, [W03, W04])

    # the survey signal of W02 and cohort B's answer do not count; W02 was not asked for
    assert tallies == {
        (W03, HUDDLE): Tally(3, 2.0, 2.0),
        (W03, ESCALATE): Tally(1, 1.0, 1.0),
        (W04, HUDDLE): Tally(5, 3.5, 3.25),
        (W04, ESCALATE): Tally(2, 1.0, 1.0),
    }


async def test_baseline_tallies_count_each_person_once_with_their_mean(db: Database) -> None:
    a, _b = await seed(db)
    async with db.session() as session:
        tallies = await aggregates.baseline_tallies(session, a, [W02, W03])

    # person 1 answered both weeks (1, 1), person 2 (0, 1) -> 0.5; the survey signal does not count
    assert tallies[HUDDLE] == Tally(4, 2.0, 1.5)
    assert tallies[ESCALATE] == Tally(1, 1.0, 1.0)


async def test_participation_counts_sent_checklists_and_distinct_people_who_answered(db: Database) -> None:
    a, _b = await seed(db)
    async with db.session() as session:
        found = await aggregates.participation(session, a, [W02, W03, W04])

    assert found == {W02: Participation(0, 4), W03: Participation(3, 4), W04: Participation(5, 6)}


async def test_member_count_is_active_participants_only(db: Database) -> None:
    a, b = await seed(db)
    async with db.session() as session:
        assert await aggregates.member_count(session, a) == 6
        assert await aggregates.member_count(session, b) == 1


async def test_exposure_counts_weeks_with_a_primary_answer_and_restricts_the_primary_behavior(db: Database) -> None:
    a, _b = await seed(db)
    async with db.session() as session:
        found = {k: await aggregates.exposure(session, a, HUDDLE, W04, k) for k in (2, 3, 4)}

    # 3 weeks: people 1 and 2; person 6 answered another question every week, which does
    # not count, and person 5's survey signal in W02 is not a check-in
    assert (found[3].exposed, found[3].primary, found[3].paired) == (2, Tally(2, 1.5, 1.25), None)
    assert (found[2].exposed, found[2].primary) == (4, Tally(4, 2.5, 2.25))
    assert (found[4].exposed, found[4].primary) == (0, Tally())


async def test_exposure_counts_only_weeks_up_to_the_digest_week(db: Database) -> None:
    a, _b = await seed(db)
    async with db.session() as session:
        found = await aggregates.exposure(session, a, HUDDLE, W03, 2)

    assert found.exposed == 2  # people 1 and 2 answered in both W02 and W03
    assert found.primary == Tally(2, 2.0, 2.0)


async def test_exposure_pairs_this_week_with_the_same_members_baseline(db: Database) -> None:
    a, _b = await seed(db)
    async with db.session() as session:
        found = await aggregates.exposure(session, a, HUDDLE, W04, 2, baseline=[W02, W03])

    # exposed people 1-4 answered the huddle this week and in the baseline
    assert found.paired == (Tally(4, 2.5, 2.25), Tally(4, 2.0, 1.5))


async def test_activity_counts_this_weeks_rehearsals_and_feedback_awaiting_review(db: Database) -> None:
    a, _b = await seed(db)
    start = datetime(2026, 1, 19, tzinfo=UTC)
    async with db.session() as session:
        found = await aggregates.activity(session, a, start, start + timedelta(weeks=1))

    assert found == Activity(rehearsals=2, rehearsal_people=2, awaiting_review=2, awaiting_people=1)
