"""The tick against a real database: what gets queued when, for whom, and never twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.files import load_program
from bot.jobs import tick
from nudges.program import Program, parse_program
from nudges.weeks import IsoWeek
from storage import accounts, checkins, people
from storage.db import Database
from storage.models import Cohort, Consent, Delivery, Person
from storage.programs import save_program

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
LOADED = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def program(db: Database) -> Program:
    data = load_program(str(EXAMPLE)).model_dump(mode="json")
    zones = ["Europe/Lisbon", "America/New_York", "Asia/Kolkata", "Pacific/Auckland"]
    for cohort in data["cohorts"]:
        cohort["members"] = [{"email": f"{cohort['key']}-{i}@example.com", "platform": "slack", "timezone": zones[i % 4]} for i in range(8)]
    program = parse_program(data, "test")
    async with db.session() as session:
        await save_program(session, program, "test", LOADED)
        for person in (await session.scalars(select(Person))).all():
            await people.set_consent(session, person.id, "accepted", LOADED)
    return program


async def _queued(db: Database, kind: str | None = None) -> list[tuple[str, str, str]]:
    async with db.session() as session:
        rows = await session.execute(
            select(Delivery.kind, Person.email, Delivery.period).outerjoin(Person, Person.id == Delivery.person_id).order_by(Delivery.id)
        )
    return [(k, e or "", p) for k, e, p in rows if kind is None or k == kind]


def _local(day: str, clock: str, zone: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


async def test_the_checklist_is_queued_at_0900_monday_in_each_members_own_zone(db: Database, program: Program) -> None:
    # 09:30 in Lisbon on Monday 5 January: Kolkata (15:00) is past its slot too; New York
    # (04:30) is not; Auckland is already in Tuesday 22:30, inside its quiet hours.
    await tick(db, program, _local("2026-01-05", "09:30", "Europe/Lisbon"))
    zones = {m.email: m.timezone for c in program.cohorts for m in c.members}
    got = {zones[email] for _k, email, _p in await _queued(db, "checklist")}
    assert got == {"Europe/Lisbon", "Asia/Kolkata"}
    await tick(db, program, _local("2026-01-05", "09:05", "America/New_York"))
    got = {zones[email] for _k, email, _p in await _queued(db, "checklist")}
    assert got == {"Europe/Lisbon", "Asia/Kolkata", "America/New_York"}


async def test_auckland_gets_its_week_two_checklist_while_it_is_still_sunday_in_utc(db: Database, program: Program) -> None:
    at = _local("2026-01-12", "09:15", "Pacific/Auckland")
    assert at.astimezone(UTC).weekday() == 6  # Sunday in UTC
    await tick(db, program, at)
    assert {(email.split("-")[-1], period) for _k, email, period in await _queued(db, "checklist")} == {
        ("3@example.com", "2026-W03"),
        ("7@example.com", "2026-W03"),
    }


async def test_ticking_again_or_twice_at_once_queues_nothing_twice(db: Database, db_url: str, program: Program) -> None:
    at = _local("2026-01-05", "18:00", "Europe/Lisbon")
    other = Database(db_url)
    try:
        await asyncio.gather(tick(db, program, at), tick(other, program, at))
    finally:
        await other.close()
    await tick(db, program, at)
    queued = await _queued(db)
    assert len(queued) == len(set(queued)) > 0


async def test_a_reminder_goes_only_to_those_who_have_not_answered(db: Database, program: Program) -> None:
    monday = _local("2026-01-05", "10:00", "Europe/Lisbon")
    await tick(db, program, monday)
    async with db.session() as session:
        lisbon = (await session.scalars(select(Person).where(Person.timezone == "Europe/Lisbon").order_by(Person.id))).all()
        await session.execute(Delivery.__table__.update().values(status="sent", sent_at=monday))
        answered = lisbon[0]
        cohort_id = (await people.participations(session, answered.id))[0].id
        week = IsoWeek.of(monday)
        for key in program.cohorts[0].checklist:
            await checkins.save_answers(session, [checkins.Answer(answered.id, cohort_id, week, key, "yes", 1.0, monday, f"e-{key}")])
    await tick(db, program, _local("2026-01-07", "14:30", "Europe/Lisbon"))
    reminded = {email for _k, email, _p in await _queued(db, "reminder")}
    assert answered.email not in reminded
    assert {p.email for p in lisbon[1:]} <= reminded


async def test_coaching_nudges_go_to_members_with_answers_aimed_at_their_weakest_behavior(db: Database, program: Program) -> None:
    monday = _local("2026-01-05", "10:00", "Europe/Lisbon")
    await tick(db, program, monday)
    async with db.session() as session:
        member = (await session.scalars(select(Person).where(Person.timezone == "Europe/Lisbon").order_by(Person.id))).first()
        cohort_id = (await people.participations(session, member.id))[0].id
        for key, value, signal in (("decision_huddle", "yes", 1.0), ("escalate_24h", "no", 0.0), ("specific_feedback", "yes", 1.0)):
            await checkins.save_answers(
                session, [checkins.Answer(member.id, cohort_id, IsoWeek.of(monday), key, value, signal, monday, f"e-{key}")]
            )
    await tick(db, program, _local("2026-01-08", "10:30", "Europe/Lisbon"))
    async with db.session() as session:
        nudges = (await session.execute(select(Delivery.person_id, Delivery.payload).where(Delivery.kind == "nudge"))).all()
    assert [(pid, payload["nudge_id"].split(":")[0]) for pid, payload in nudges] == [(member.id, "escalate_24h")]


async def test_the_digest_is_queued_once_on_its_slot_in_the_sponsor_channels_zone(db: Database, program: Program) -> None:
    friday = _local("2026-01-09", "16:05", "Europe/Lisbon")
    await tick(db, program, friday - timedelta(minutes=10))
    assert await _queued(db, "digest") == []
    await tick(db, program, friday)
    await tick(db, program, friday + timedelta(hours=1))
    async with db.session() as session:
        digests = (
            await session.execute(select(Delivery.platform, Delivery.target, Delivery.period).where(Delivery.kind == "digest"))
        ).all()
    assert ("slack", "C0SPONSOR", "2026-W02") in digests
    assert len([d for d in digests if d[1] == "C0SPONSOR"]) == 1


async def test_skipped_weeks_and_paused_members_get_nothing(db: Database, program: Program) -> None:
    monday = _local("2026-01-05", "10:00", "Europe/Lisbon")
    async with db.session() as session:
        lisbon = (await session.scalars(select(Person).where(Person.timezone == "Europe/Lisbon").order_by(Person.id))).all()
        skipper, paused = lisbon[0], lisbon[1]
        cohort_id = (await people.participations(session, skipper.id))[0].id
        await checkins.set_week_choice(session, skipper.id, cohort_id, IsoWeek.of(monday), skipped_at=monday)
        await people.set_paused(session, paused.id, monday)
    await tick(db, program, monday)
    emails = {email for _k, email, _p in await _queued(db)}
    assert skipper.email not in emails and paused.email not in emails
    assert {p.email for p in lisbon[2:]} <= emails


async def test_a_member_without_consent_gets_only_the_consent_request(db: Database, program: Program) -> None:
    async with db.session() as session:
        person = (await session.scalars(select(Person).where(Person.timezone == "Europe/Lisbon").order_by(Person.id))).first()
        await session.execute(people.Consent.__table__.delete().where(people.Consent.person_id == person.id))
    await tick(db, program, _local("2026-01-05", "10:00", "Europe/Lisbon"))
    await tick(db, program, _local("2026-01-05", "11:00", "Europe/Lisbon"))
    assert [(k, p) for k, e, p in await _queued(db) if e == person.email] == [("consent", "once")]


async def test_not_for_me_is_stored_shown_and_counted_for_the_program_owner(db: Database, program: Program) -> None:
    from adapters.base import Click
    from bot.checkins import record_nudge_feedback
    from bot.programs import describe_program
    from nudges.coaching import NudgeFeedback

    monday = _local("2026-01-05", "10:00", "Europe/Lisbon")
    await tick(db, program, monday)
    async with db.session() as session:
        member = (await session.scalars(select(Person).where(Person.timezone == "Europe/Lisbon").order_by(Person.id))).first()
        await accounts.link(session, member.id, "slack", "T1:U1", monday)
        cohort_id = (await people.participations(session, member.id))[0].id
        for key, value, signal in (("decision_huddle", "yes", 1.0), ("escalate_24h", "no", 0.0), ("specific_feedback", "yes", 1.0)):
            await checkins.save_answers(
                session, [checkins.Answer(member.id, cohort_id, IsoWeek.of(monday), key, value, signal, monday, f"e-{key}")]
            )
    await tick(db, program, _local("2026-01-08", "10:30", "Europe/Lisbon"))
    async with db.session() as session:
        payload = await session.scalar(select(Delivery.payload).where(Delivery.kind == "nudge"))
    value = NudgeFeedback(payload["nudge_id"], IsoWeek.parse(payload["week"]), "not_for_me").encode()
    outcome = await record_nudge_feedback(db, program, Click("slack", "e2", "T1:U1", value, monday + timedelta(days=3)))
    assert outcome.status == "recorded" and "✓" not in outcome.message.plain() and "[x] Not for me" in outcome.message.plain()
    assert f"{payload['nudge_id']}: 0 / 1" in await describe_program(db)
    forged = NudgeFeedback("decision_huddle:0", IsoWeek.parse(payload["week"]), "useful").encode()
    if payload["nudge_id"] != "decision_huddle:0":
        assert (await record_nudge_feedback(db, program, Click("slack", "e3", "T1:U1", forged, monday))).status == "refused"


async def test_the_consent_request_waits_for_the_members_morning(db: Database, program: Program) -> None:
    async with db.session() as session:
        await session.execute(people.Consent.__table__.delete())
    at = _local("2026-01-05", "10:00", "Europe/Lisbon")  # 05:00 in New York
    await tick(db, program, at)
    async with db.session() as session:
        rows = (
            await session.execute(
                select(Person.timezone, Delivery.due_at).join(Person, Person.id == Delivery.person_id).where(Delivery.kind == "consent")
            )
        ).all()
    due = {zone: when for zone, when in rows}
    assert due["Europe/Lisbon"] == at
    assert due["America/New_York"] == _local("2026-01-05", "08:00", "America/New_York")


async def test_a_concurrent_comparison_cohort_gets_checklists_and_reminders_but_no_nudges(tmp_path: Path) -> None:
    # Three weeks of the real loop (tick, delivery, simulated members clicking answers):
    # Wave B runs beside the pilot as its comparison and is treated only from 6 April.
    from bot.demo import run_demo

    await run_demo(tmp_path, weeks=3, managers=20)
    database = Database(f"sqlite:///{tmp_path / 'reinforce.db'}")
    try:
        async with database.session() as session:
            rows = await session.execute(
                select(Cohort.key, Delivery.kind, Delivery.person_id)
                .join(Cohort, Cohort.id == Delivery.cohort_id)
                .join(Consent, Consent.person_id == Delivery.person_id)
                .where(Consent.status == "accepted")
            )
            sent: dict[tuple[str, str], list[int]] = {}
            for cohort, kind, person in rows:
                sent.setdefault((cohort, kind), []).append(person)
    finally:
        await database.close()
    for cohort in ("pilot-a", "wave-b"):
        checklists = sent[(cohort, "checklist")]
        assert len(set(checklists)) >= 8 and all(checklists.count(p) == 3 for p in checklists), cohort  # one a week, each member
    assert sent.get(("wave-b", "reminder")) and sent.get(("pilot-a", "nudge"))
    assert ("wave-b", "nudge") not in sent


def test_a_comparison_cohort_is_treated_only_from_its_treatment_start(program: Program) -> None:
    assert program.treatment_starts("pilot-a") == program.cohort("pilot-a").starts
    assert program.treatment_starts("wave-b") == date(2026, 4, 6)
    assert not program.is_treated("wave-b", date(2026, 4, 5))
    assert program.is_treated("wave-b", date(2026, 4, 6))
    assert program.treatment_summary("wave-b") == "checklists only until 2026-04-06, then coaching nudges and rehearsals"
    data = program.model_dump(mode="json")
    data["cohorts"][1]["treatment_starts"] = None
    untreated = parse_program(data, "test")
    assert not untreated.is_treated("wave-b", date(2027, 1, 1))
    assert untreated.treatment_summary("wave-b") == "checklists only (the comparison for Pilot A)"
