"""Rehearsals through the use cases: DM turns answered after the ack, feedback stored with
its review status, flagged items reviewed by coaches only, the learner told the outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from adapters.base import Click, TextCommand
from adapters.console import ConsoleChat
from adapters.llm import OpenAiLlm
from adapters.rubric import RubricCoach
from bot.delivery import Deliverer
from bot.files import load_program, load_scenarios
from bot.inbound import InboundHandler
from bot.programs import ProgramSource
from bot.rehearsals import Rehearsals
from storage import accounts, people, rehearsals
from storage.db import Database
from storage.models import Account, AuditEntry, Delivery, FeedbackReview, RehearsalSession
from storage.programs import save_program
from tests.fakes.openai_server import FakeOpenAI, fake_openai
from tests.seed import link

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 6, 10, 0, tzinfo=UTC)
GOOD_PITCH = (
    "Dana, can we trial a 15-minute weekly decision huddle for six weeks, starting Tuesday? "
    "Last quarter 4 of 9 launches slipped waiting on decisions."
)


@dataclass
class Rig:
    db: Database
    chat: ConsoleChat
    inbound: InboundHandler
    rehearsals: Rehearsals
    deliverer: Deliverer
    leader: str  # platform user id
    coach: str
    other: str


async def _rig(db: Database, coach_port: object) -> Rig:
    program = load_program(str(ROOT / "examples" / "program.yaml"))
    async with db.session() as session:
        await save_program(session, program, "test", NOW)
        leader = program.cohorts[0].members[0]
        ids = {}
        for email, platform in (
            (leader.email, leader.platform),
            ("coach@example.com", "slack"),
            ("owner@example.com", "slack"),
            (program.cohorts[0].members[1].email, "slack"),
        ):
            await link(session, email, platform, f"T1:{email}", consent=True)
            ids[email] = f"T1:{email}"
    chat = ConsoleChat()
    chats = {"slack": chat, "teams": chat}
    programs = ProgramSource(db)
    book = load_scenarios(str(ROOT / "examples" / "scenarios.yaml"))
    rehearsals = Rehearsals(db, programs, book, coach_port, chats)  # type: ignore[arg-type]
    deliverer = Deliverer(db, chats, renderers=rehearsals.renderers())
    inbound = InboundHandler(db, programs, chats, rehearsals)
    return Rig(
        db, chat, inbound, rehearsals, deliverer, ids[leader.email], ids["coach@example.com"], ids[program.cohorts[0].members[1].email]
    )


@pytest.fixture
async def offline(db: Database) -> Rig:
    return await _rig(db, RubricCoach())


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with fake_openai() as fake:
        yield fake


async def _say(rig: Rig, text: str, platform: str = "slack", event: str | None = None) -> None:
    await rig.inbound.message(TextCommand(platform, rig.leader, text, NOW, event_id=event))
    await rig.rehearsals.drain()


def _last(rig: Rig) -> str:
    return list(rig.chat.posted.values())[-1].message.plain()


async def _platform(rig: Rig) -> str:
    async with rig.db.session() as session:
        return (await session.scalar(select(Account.platform).where(Account.user_id == rig.leader))) or "slack"


async def test_rehearse_lists_scenarios_then_a_choice_starts_one_with_its_introduction(offline: Rig) -> None:
    platform = await _platform(offline)
    reply = await offline.inbound.command(TextCommand(platform, offline.leader, "rehearse", NOW))
    assert "Pick a scenario" in reply.text
    await offline.rehearsals.drain()  # the menu is sent after the answer
    assert "Which conversation do you want to practise?" in _last(offline)
    reply = await offline.inbound.click(Click(platform, "c1", offline.leader, "rehearse|vp-decision-huddles", NOW))
    assert "Rehearsal started" in reply.update.text
    await offline.rehearsals.drain()
    assert "Your goal:" in _last(offline) and "no AI" in _last(offline)


async def test_offline_rehearsal_answers_each_turn_then_gives_rubric_feedback_not_reviewed(offline: Rig) -> None:
    platform = await _platform(offline)
    await offline.inbound.command(TextCommand(platform, offline.leader, "rehearse vp-decision-huddles", NOW))
    await _say(offline, GOOD_PITCH, platform)
    first_reply = _last(offline)
    assert "thinking" not in first_reply  # the thinking message was replaced by the answer
    await _say(offline, "It replaces the Thursday sync, so no extra meeting time. I'll send the invite by Friday.", platform)
    await _say(offline, "done", platform)
    feedback = _last(offline)
    assert "Rubric check, no AI" in feedback and "not reviewed" in feedback and "/5" in feedback
    async with offline.db.session() as session:
        run = await session.scalar(select(RehearsalSession))
        review = await session.scalar(select(FeedbackReview))
    assert run.status == "finished" and len(run.transcript) == 4
    assert review.status == "not_reviewed" and review.source == "rubric"


async def test_the_same_message_delivered_twice_is_one_turn(offline: Rig) -> None:
    platform = await _platform(offline)
    await offline.inbound.command(TextCommand(platform, offline.leader, "rehearse vp-decision-huddles", NOW))
    await _say(offline, GOOD_PITCH, platform, event="Ev1")
    await _say(offline, GOOD_PITCH, platform, event="Ev1")
    async with offline.db.session() as session:
        run = await session.scalar(select(RehearsalSession))
    assert [t["speaker"] for t in run.transcript] == ["leader", "stakeholder"]


async def _stored_line(rig: Rig, text: str, at: datetime) -> None:
    """Seed a running rehearsal whose last line was stored at ``at`` and never answered."""
    platform = await _platform(rig)
    await rig.inbound.command(TextCommand(platform, rig.leader, "rehearse vp-decision-huddles", NOW))
    await rig.rehearsals.drain()
    async with rig.db.session() as session:
        run = await session.scalar(select(RehearsalSession))
        await rehearsals.save_progress(session, run.id, [{"speaker": "leader", "text": text, "at": at.isoformat()}], 0, 0)


async def test_a_line_while_the_stakeholder_is_still_answering_is_refused_and_stores_nothing(offline: Rig) -> None:
    await _stored_line(offline, GOOD_PITCH, NOW - timedelta(minutes=1))
    reply = await offline.inbound.message(TextCommand(await _platform(offline), offline.leader, "And another thing", NOW, event_id="Ev2"))
    assert reply.text == "One moment: the stakeholder is still answering."
    await offline.rehearsals.drain()
    async with offline.db.session() as session:
        run = await session.scalar(select(RehearsalSession))
    assert [t["text"] for t in run.transcript] == [GOOD_PITCH]


async def test_a_line_whose_answer_was_lost_long_ago_gives_way_to_the_next(offline: Rig) -> None:
    """The process that stored a line stopped before answering it: the next line replaces it."""
    await _stored_line(offline, "A line nobody answered", NOW - timedelta(minutes=11))
    await _say(offline, GOOD_PITCH, await _platform(offline), event="Ev2")
    async with offline.db.session() as session:
        run = await session.scalar(select(RehearsalSession))
    assert [t["speaker"] for t in run.transcript] == ["leader", "stakeholder"]
    assert run.transcript[0]["text"] == GOOD_PITCH
    assert all(t["at"] == NOW.isoformat() for t in run.transcript)


async def test_a_typed_rehearse_delivered_twice_starts_one_rehearsal_with_one_introduction(offline: Rig) -> None:
    platform = await _platform(offline)
    command = TextCommand(platform, offline.leader, "rehearse vp-decision-huddles", NOW, event_id="Ev1")
    first, again = await offline.inbound.message(command), await offline.inbound.message(command)
    await offline.rehearsals.drain()
    assert "Rehearsal started" in (first.text or "") and again.text is None
    async with offline.db.session() as session:
        assert len((await session.scalars(select(RehearsalSession))).all()) == 1
    assert sum("Your goal:" in p.message.plain() for p in offline.chat.posted.values()) == 1


async def test_a_sensitive_pitch_is_flagged_sent_to_the_review_channel_and_only_a_coach_decides(offline: Rig) -> None:
    platform = await _platform(offline)
    await offline.inbound.command(TextCommand(platform, offline.leader, "rehearse vp-decision-huddles", NOW))
    await _say(offline, "If the huddles fail I will put Sam on a PIP and cut his bonus.", platform)
    await _say(offline, "done", platform)
    assert "awaiting coach review" in _last(offline)
    await offline.deliverer.deliver_due(await offline.rehearsals.programs.get(), lambda: NOW)
    review_post = next(p for p in offline.chat.posted.values() if p.to.channel_id == "C0REVIEW")
    assert "Flagged because" in review_post.message.plain() and "[ ] Approve" in review_post.message.plain()
    async with offline.db.session() as session:
        review_id = await session.scalar(select(FeedbackReview.id))

    refused = await offline.inbound.click(Click("slack", "r1", offline.other, f"review|{review_id}|approve", NOW))
    assert refused.text == "Only the cohort's coaches can review this feedback."
    async with offline.db.session() as session:
        assert await session.scalar(select(FeedbackReview.status)) == "awaiting_review"
        assert await session.scalar(select(AuditEntry.outcome).where(AuditEntry.action == "review.approve")) == "refused"

    decided = await offline.inbound.click(Click("slack", "r2", offline.coach, f"review|{review_id}|reject", NOW))
    assert "Rejected by coach@example.com" in decided.update.plain()
    async with offline.db.session() as session:
        review = await session.scalar(select(FeedbackReview))
    assert (review.status, review.reviewer) == ("rejected", "coach@example.com") and review.decided_at is not None
    again = await offline.inbound.click(Click("slack", "r3", offline.coach, f"review|{review_id}|approve", NOW))
    assert "already" in again.text
    await offline.deliverer.deliver_due(await offline.rehearsals.programs.get(), lambda: NOW)
    told = [p.message.plain() for p in offline.chat.posted.values() if p.to.user_id == offline.leader]
    assert "rejected by a coach" in told[-1] and "withdrew" in told[-1]


async def test_llm_rehearsal_through_the_real_client_stores_usage_and_parses_feedback(db: Database, server: FakeOpenAI) -> None:
    async with OpenAiLlm(model="m", base_url=server.base_url, api_key="sk-test", timeout=0.5, max_retries=0) as llm:
        rig = await _rig(db, llm)
        platform = await _platform(rig)
        await rig.inbound.command(TextCommand(platform, rig.leader, "rehearse vp-decision-huddles", NOW))
        server.answer("Why would my team give up more time?", usage=(120, 15))
        await _say(rig, GOOD_PITCH, platform)
        assert "Why would my team give up more time?" in _last(rig)
        criteria = ["clear_ask", "business_outcome", "evidence", "objection_handling", "next_step", "brevity"]
        server.answer_json(
            {
                "criteria": [
                    {"criterion": c, "score": 4, "quote": "weekly decision huddle", "suggestion": "Keep it up."} for c in criteria
                ],
                "next_step": "Send the invite.",
                "confidence": "high",
            },
            usage=(600, 150),
        )
        await _say(rig, "done", platform)
        assert "AI feedback — not reviewed" in _last(rig)
        async with rig.db.session() as session:
            run = await session.scalar(select(RehearsalSession))
        assert (run.prompt_tokens, run.completion_tokens) == (720, 165)
        system = server.requests[0].messages[0]
        assert system["role"] == "system" and GOOD_PITCH not in system["content"]


@pytest.mark.parametrize("failure", ["500", "timeout", "unparseable"])
async def test_llm_failures_end_with_a_clear_message_and_a_flagged_review_never_invented_scores(
    db: Database, server: FakeOpenAI, failure: str
) -> None:
    async with OpenAiLlm(model="m", base_url=server.base_url, api_key="sk-test", timeout=0.5, max_retries=0) as llm:
        rig = await _rig(db, llm)
        platform = await _platform(rig)
        await rig.inbound.command(TextCommand(platform, rig.leader, "rehearse vp-decision-huddles", NOW))
        server.answer("Why now?")
        await _say(rig, GOOD_PITCH, platform)
        {
            "500": lambda: server.fail(500, times=5),
            "timeout": lambda: server.hang(times=5),
            "unparseable": lambda: server.answer("I liked it!"),
        }[failure]()
        await _say(rig, "done", platform)
        shown = _last(rig)
        assert "/5" not in shown and "awaiting coach review" in shown
        async with rig.db.session() as session:
            review = await session.scalar(select(FeedbackReview))
        assert review.status == "awaiting_review" and "criteria" not in review.feedback
        assert "unparsed" in {r["code"] for r in review.flag_reasons}


async def test_a_failed_stakeholder_reply_keeps_the_turn_so_it_can_be_sent_again(db: Database, server: FakeOpenAI) -> None:
    async with OpenAiLlm(model="m", base_url=server.base_url, api_key="sk-test", timeout=0.5, max_retries=0) as llm:
        rig = await _rig(db, llm)
        platform = await _platform(rig)
        await rig.inbound.command(TextCommand(platform, rig.leader, "rehearse vp-decision-huddles", NOW))
        server.fail(503, times=3)
        await _say(rig, GOOD_PITCH, platform)
        assert "try again" in _last(rig).lower()
        async with rig.db.session() as session:
            run = await session.scalar(select(RehearsalSession))
        assert run.transcript == [] and run.status == "active"


async def test_without_consent_nothing_is_recorded(offline: Rig) -> None:
    async with offline.db.session() as session:
        person = await accounts.person_of(session, await _platform(offline), offline.leader)
        await people.set_consent(session, person.id, "withdrawn", NOW)
    reply = await offline.inbound.command(TextCommand(await _platform(offline), offline.leader, "rehearse vp-decision-huddles", NOW))
    assert "accept the consent" in reply.text
    async with offline.db.session() as session:
        assert (await session.scalars(select(RehearsalSession))).all() == []
        assert (await session.scalars(select(Delivery))).all() == []


async def test_a_comparison_cohort_member_cannot_rehearse_before_its_treatment_starts(offline: Rig) -> None:
    program = await offline.rehearsals.programs.get()
    member = program.cohort("wave-b").members[0]
    async with offline.db.session() as session:
        await link(session, member.email, member.platform, "T1:wave-b-member", consent=True)
    for scenario in (None, "vp-decision-huddles"):
        reply = await offline.rehearsals.start(member.platform, "T1:wave-b-member", scenario, NOW)
        assert reply.text == "Rehearsals are part of the training your cohort starts later: they open for you from 6 April 2026."
    async with offline.db.session() as session:
        assert (await session.scalars(select(RehearsalSession))).all() == []
    assert offline.chat.posted == {}
    # The pilot's members rehearse as before.
    assert (await offline.rehearsals.start("slack", offline.leader, "vp-decision-huddles", NOW)).update is not None


async def test_flagged_feedback_nobody_decides_reminds_coaches_then_admins_once_each(offline: Rig) -> None:
    from bot.jobs import tick

    platform = await _platform(offline)
    await offline.inbound.command(TextCommand(platform, offline.leader, "rehearse vp-decision-huddles", NOW))
    await _say(offline, "If the huddles fail I will put Sam on a PIP and cut his bonus.", platform)
    await _say(offline, "done", platform)  # flagged on Tuesday 6 January, 10:00
    program = await offline.rehearsals.programs.get()

    async def queued_at(at: datetime) -> list[str]:
        await tick(offline.db, program, at)
        await offline.deliverer.deliver_due(program, lambda: at)
        async with offline.db.session() as session:
            keys = await session.scalars(select(Delivery.idempotency_key).where(Delivery.kind.in_(("review_reminder", "review_pending"))))
            return sorted(key.rsplit(":", 1)[0] if ":admin:" in key else key.split(":")[0] + ":" + key.split(":")[-1] for key in keys)

    assert await queued_at(datetime(2026, 1, 7, 10, 0, tzinfo=UTC)) == []  # one working day
    assert await queued_at(datetime(2026, 1, 8, 10, 0, tzinfo=UTC)) == ["review_pending:1", "review_reminder:coaches"]
    channel = [p.message.plain() for p in offline.chat.posted.values() if p.to.channel_id == "C0REVIEW"]
    assert "Still waiting for a coach since Tue 6 Jan" in channel[-1] and "[ ] Approve" in channel[-1]
    told = [p.message.plain() for p in offline.chat.posted.values() if p.to.user_id == offline.leader]
    assert "is still pending" in told[-1]
    # Friday is the third working day; Monday 12 January the fourth: the admins are told.
    assert await queued_at(datetime(2026, 1, 9, 10, 0, tzinfo=UTC)) == ["review_pending:1", "review_reminder:coaches"]
    assert await queued_at(datetime(2026, 1, 12, 10, 0, tzinfo=UTC)) == [
        "review_pending:1",
        "review_reminder:1:admin",
        "review_reminder:coaches",
    ]
    admins = [p for p in offline.chat.posted.values() if p.to.user_id == "T1:owner@example.com"]
    assert len(admins) == 1 and "Still waiting for a coach" in admins[0].message.plain()
    before = len(offline.chat.posted)
    assert len(await queued_at(datetime(2026, 1, 13, 10, 0, tzinfo=UTC))) == 3
    assert len(offline.chat.posted) == before  # nothing twice


def test_working_days_skip_the_weekend() -> None:
    from nudges.review import add_working_days, escalations_due

    friday = datetime(2026, 1, 9, 15, 0, tzinfo=UTC)
    assert add_working_days(friday, 2) == datetime(2026, 1, 13, 15, 0, tzinfo=UTC)
    assert add_working_days(datetime(2026, 1, 10, 15, 0, tzinfo=UTC), 1) == datetime(2026, 1, 13, 0, 0, tzinfo=UTC)
    assert escalations_due(friday, datetime(2026, 1, 13, 14, 59, tzinfo=UTC)) == ()
    assert escalations_due(friday, datetime(2026, 1, 15, 15, 0, tzinfo=UTC)) == ("coaches", "admins")
