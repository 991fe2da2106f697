"""The check-in loop through the use cases and the console adapter: queue, deliver, click, record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.base import Click
from adapters.console import ConsoleChat
from bot.checkins import AnswerOutcome, deliver_outbox, record_answers
from bot.files import load_program
from nudges.checklist import ChoiceRef
from nudges.program import Program
from nudges.weeks import IsoWeek
from storage import people
from storage.db import Database
from storage.models import BehaviorSignal, CheckinAnswer, Consent, Delivery, Person
from storage.programs import save_program
from tests.rig import tick_monday_mornings
from tests.seed import link

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
MONDAY = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WEEK = IsoWeek.of(MONDAY)


@pytest.fixture
async def program(db: Database) -> Program:
    program = load_program(str(EXAMPLE))
    async with db.session() as session:
        await save_program(session, program, "examples/program.yaml", MONDAY)
    return program


async def _consent_all(db: Database, status: str = "accepted") -> None:
    async with db.session() as session:
        for person in (await session.scalars(select(Person))).all():
            await people.set_consent(session, person.id, status, MONDAY)


async def _count(db: Database, model: type) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def _deliver_week(db: Database, program: Program, chat: ConsoleChat) -> None:
    await deliver_outbox(db, program, {"slack": chat, "teams": chat}, await tick_monday_mornings(db, program, MONDAY))


async def _answer(db: Database, program: Program, click: Click) -> AnswerOutcome:
    return (await record_answers(db, program, [(click, ChoiceRef.decode(click.value))]))[0]


def _first_message_to(chat: ConsoleChat, email: str) -> str:
    return next(mid for mid, p in chat.posted.items() if p.to.user_id == f"console:{email}")


async def test_members_first_get_the_consent_request_and_checklists_only_after_accepting(db: Database, program: Program) -> None:
    chat = ConsoleChat()
    members = sum(len(c.members) for c in program.cohorts)
    await _deliver_week(db, program, chat)
    await _deliver_week(db, program, chat)
    assert len(chat.posted) == members
    assert all(p.message.text.endswith("may I send you a weekly three-question check-in?") for p in chat.posted.values())
    async with db.session() as session:
        assert set((await session.scalars(select(Consent.status))).all()) == {"pending"}
    await _consent_all(db)
    await _deliver_week(db, program, chat)
    await _deliver_week(db, program, chat)
    checklists = [p for p in chat.posted.values() if "check-in: 3 questions" in p.message.text]
    assert len(checklists) == members
    assert len({p.to.user_id for p in checklists}) == members


async def test_a_member_who_cannot_be_found_fails_for_good_with_the_reason(db: Database, program: Program) -> None:
    lost = program.cohorts[0].members[0].email
    chat = ConsoleChat(unreachable={lost})
    await _consent_all(db)
    await _deliver_week(db, program, chat)
    async with db.session() as session:
        failed = (await session.execute(select(Delivery.status, Delivery.last_error).where(Delivery.status != "sent"))).all()
    assert failed == [("failed", f"{lost} was not found on {program.cohorts[0].members[0].platform}")]


async def test_same_click_delivered_three_times_records_one_answer(db: Database, program: Program) -> None:
    chat = ConsoleChat()
    await _consent_all(db)
    await _deliver_week(db, program, chat)
    email = program.cohorts[0].members[0].email
    click = chat.click(_first_message_to(chat, email), "q:decision_huddle", "Yes", MONDAY + timedelta(minutes=3))
    outcomes = [await _answer(db, program, click) for _ in range(3)]
    assert [o.status for o in outcomes] == ["recorded", "duplicate", "duplicate"]
    assert (await _count(db, CheckinAnswer), await _count(db, BehaviorSignal)) == (1, 1)
    async with db.session() as session:
        assert (await session.execute(select(CheckinAnswer.event_id, CheckinAnswer.answered_at))).all() == [(click.event_id, click.at)]
    assert all("1 of 3 answered" in o.message.plain() for o in outcomes)


async def test_changing_an_answer_keeps_the_last_one_and_updates_the_message(db: Database, program: Program) -> None:
    chat = ConsoleChat()
    await _consent_all(db)
    await _deliver_week(db, program, chat)
    mid = _first_message_to(chat, program.cohorts[0].members[0].email)
    await _answer(db, program, chat.click(mid, "q:decision_huddle", "No", MONDAY + timedelta(minutes=1)))
    outcome = await _answer(db, program, chat.click(mid, "q:decision_huddle", "Partly", MONDAY + timedelta(minutes=2)))
    async with db.session() as session:
        assert (await session.execute(select(CheckinAnswer.value))).scalars().all() == ["partly"]
        assert (await session.execute(select(BehaviorSignal.value))).scalars().all() == [0.5]
    assert "[x] Partly" in outcome.message.plain() and "[x] No" not in outcome.message.plain()


@pytest.mark.parametrize("together", [False, True], ids=["apart", "in-one-request"])
async def test_an_older_click_arriving_late_changes_nothing_and_shows_the_newer_answer(
    db: Database, program: Program, together: bool
) -> None:
    chat = ConsoleChat()
    await _consent_all(db)
    await _deliver_week(db, program, chat)
    mid = _first_message_to(chat, program.cohorts[0].members[0].email)
    older = chat.click(mid, "q:decision_huddle", "No", MONDAY + timedelta(minutes=1))
    newer = chat.click(mid, "q:decision_huddle", "Partly", MONDAY + timedelta(minutes=2))
    if together:  # a retry of the older click lands in the same request (a card), after the newer one
        outcomes = await record_answers(db, program, [(click, ChoiceRef.decode(click.value)) for click in (newer, older)])
    else:
        outcomes = [await _answer(db, program, click) for click in (older, newer, older)][1:]
    assert [o.status for o in outcomes] == ["recorded", "duplicate"]
    async with db.session() as session:
        assert (await session.execute(select(CheckinAnswer.value, CheckinAnswer.event_id))).all() == [("partly", newer.event_id)]
        assert (await session.execute(select(BehaviorSignal.value))).scalars().all() == [0.5]
    assert all("[x] Partly" in o.message.plain() and "[x] No" not in o.message.plain() for o in outcomes)


async def test_three_answers_thank_the_member_with_their_streak(db: Database, program: Program) -> None:
    chat = ConsoleChat()
    await _consent_all(db)
    await _deliver_week(db, program, chat)
    mid = _first_message_to(chat, program.cohorts[0].members[0].email)
    at = MONDAY + timedelta(minutes=1)
    for block in ("q:decision_huddle", "q:escalate_24h", "q:specific_feedback"):
        outcome = await _answer(db, program, chat.click(mid, block, "Yes", at))
    assert "Thank you, all three answered. That is 1 week in a row." in outcome.message.plain()


async def test_a_click_from_someone_without_consent_stores_nothing(db: Database, program: Program) -> None:
    chat = ConsoleChat()
    await _consent_all(db)
    await _deliver_week(db, program, chat)
    email = program.cohorts[0].members[0].email
    click = chat.click(_first_message_to(chat, email), "q:decision_huddle", "Yes", MONDAY)
    async with db.session() as session:
        person = await people.by_email(session, email)
        await people.set_consent(session, person.id, "withdrawn", MONDAY)
    outcome = await _answer(db, program, click)
    assert outcome.status == "refused" and "not agreed" in outcome.reply
    assert (await _count(db, CheckinAnswer), await _count(db, BehaviorSignal)) == (0, 0)


async def test_pressing_a_button_on_another_cohorts_checklist_is_refused(db: Database, program: Program) -> None:
    chat = ConsoleChat()
    await _consent_all(db)
    await _deliver_week(db, program, chat)
    pilot_member = program.cohorts[0].members[0].email
    wave_member = program.cohorts[1].members[0]
    click = chat.click(_first_message_to(chat, pilot_member), "q:decision_huddle", "Yes", MONDAY)
    forged = Click(wave_member.platform, "forged-1", f"console:{wave_member.email}", click.value, MONDAY)
    outcome = await _answer(db, program, forged)
    assert outcome.status == "refused" and "not part of" in outcome.reply
    assert await _count(db, CheckinAnswer) == 0


@pytest.mark.parametrize(
    ("value", "reply"),
    [
        ("answer|no-such-cohort|2026-W02|decision_huddle|yes", "not from a current Reinforce checklist"),
        ("answer|pilot-a|2026-W02|one_on_ones|2", "not on your checklist"),
        ("answer|pilot-a|2026-W02|decision_huddle|maybe", "'maybe' is not an answer"),
        ("answer|pilot-a|2026-W09|decision_huddle|yes", "Week 8 of 12 has not started yet. Nothing was recorded."),
        ("answer|pilot-a|2025-W50|decision_huddle|yes", "Pilot A had not started that week"),
    ],
)
async def test_invalid_answers_are_refused_with_a_reason_and_store_nothing(db: Database, program: Program, value: str, reply: str) -> None:
    await _consent_all(db)
    member = program.cohorts[0].members[0]
    async with db.session() as session:
        await link(session, member.email, member.platform, "U1")
    outcome = await _answer(db, program, Click(member.platform, "e1", "U1", value, MONDAY))
    assert outcome.status == "refused" and reply in outcome.reply
    assert (await _count(db, CheckinAnswer), await _count(db, BehaviorSignal)) == (0, 0)
