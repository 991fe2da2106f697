"""Tests for adapters/rubric.py: the scripted stakeholder and the deterministic rubric check."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from adapters.rubric import RubricCoach, score_pitch, scripted_reply
from bot.files import load_scenarios
from nudges.rehearsal import Feedback, Rehearsal, Usage, quote_is_real, render_feedback, review_flags
from nudges.review import initial_status
from nudges.scenarios import CRITERIA, Scenario

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "scenarios.yaml"

GOOD = (
    "Dana, can we trial a 15-minute weekly decision huddle with the product and engineering leads for six weeks? "
    "Two roadmap decisions were reopened last month and cost us about 8 days of rework, which puts the Q3 roadmap at risk.",
    "Fair point on meetings. The huddle replaces the Thursday sync, so the leads get 30 minutes back each week.",
    "Last quarter the platform team tried the same format and their reopened decisions dropped from 5 to 1.",
    "Each decision gets one named owner in the huddle, so if it turns out wrong, that owner reopens it with data. "
    "I'll send the invite for Tuesday and we review the trial on March 30.",
)
WEAK = (
    "Hi Dana, I have been thinking a lot about how we work together and about meetings in general, "
    "and I think we should maybe look at huddles at some point.",
)


@cache
def scenario() -> Scenario:
    return load_scenarios(str(EXAMPLE)).get()


async def rehearse(turns: tuple[str, ...], coach: RubricCoach | None = None) -> Rehearsal:
    """Run the turns through the offline port, the way the use case will, then type done."""
    coach = coach or RubricCoach()
    rehearsal = Rehearsal(scenario())
    for text in turns:
        rehearsal = rehearsal.leader_says(text)
        if rehearsal.awaiting == "stakeholder":
            reply, usage = await coach.reply(rehearsal)
            assert usage == Usage()
            rehearsal = rehearsal.stakeholder_says(reply)
    return rehearsal if rehearsal.done else rehearsal.leader_says("done")


def scores(feedback: Feedback) -> dict[str, int]:
    return {item.criterion: item.score for item in feedback.criteria}


# --- the scripted stakeholder -------------------------------------------------------------


async def test_scripted_stakeholder_raises_the_objections_in_order_then_closes() -> None:
    objections = scenario().stakeholder.objections
    rehearsal = await rehearse(("one", "two", "three", "four", "five"))

    assert rehearsal.stakeholder_turns == (*objections, scenario().stakeholder.closing, scenario().stakeholder.closing)


def test_scripted_reply_depends_only_on_how_much_was_said() -> None:
    rehearsal = Rehearsal(scenario()).leader_says("anything at all")

    assert scripted_reply(rehearsal) == scenario().stakeholder.objections[0]


# --- the rubric check ---------------------------------------------------------------------


async def test_a_good_pitch_scores_five_on_every_criterion() -> None:
    feedback, usage, error = await RubricCoach().feedback(await rehearse(GOOD))

    assert error is None and feedback is not None and usage == Usage()
    assert scores(feedback) == dict.fromkeys(CRITERIA, 5)
    assert feedback.source == "rubric" and feedback.confidence == "high"
    assert "give it for real" in feedback.next_step


async def test_a_weak_pitch_scores_low_and_the_next_step_names_the_weakest_criterion() -> None:
    feedback, _, _ = await RubricCoach().feedback(await rehearse(WEAK))

    assert feedback is not None
    assert scores(feedback) == {"clear_ask": 2, "business_outcome": 1, "evidence": 1, "objection_handling": 1, "next_step": 1, "brevity": 5}
    assert feedback.next_step.startswith("Focus on \u201cLink to a business outcome\u201d")
    assert "shipping the Q3 roadmap on time" in feedback.next_step


async def test_the_same_pitch_always_gets_the_same_feedback() -> None:
    first = score_pitch(await rehearse(GOOD))
    second = score_pitch(await rehearse(GOOD))

    assert first == second


async def test_every_quote_is_the_leaders_own_words() -> None:
    for turns in (GOOD, WEAK):
        rehearsal = await rehearse(turns)
        feedback = score_pitch(rehearsal)
        for item in feedback.criteria:
            if item.quote is not None:
                assert quote_is_real(item.quote, rehearsal.leader_turns), item
                assert item.quote not in rehearsal.stakeholder_turns


async def test_an_ask_buried_after_the_first_message_scores_lower() -> None:
    opening_ask = score_pitch(await rehearse(("Can we trial a weekly huddle?", "It saves time.")))
    late_ask = score_pitch(await rehearse(("Meetings are a problem for the leads.", "Can we trial a weekly huddle?")))

    assert scores(opening_ask)["clear_ask"] == 4
    assert scores(late_ask)["clear_ask"] == 3


async def test_answering_the_objections_scores_higher_than_ignoring_them() -> None:
    ignoring = await rehearse(("Can we trial a weekly huddle?", "I just think huddles are good.", "Anyway, huddles."))
    answering = await rehearse(
        (
            "Can we trial a weekly huddle?",
            "Fair point: the huddle replaces two meetings.",
            "Last month we lost 8 days to 2 reopened decisions.",
        )
    )

    assert scores(score_pitch(ignoring))["objection_handling"] <= 2
    assert scores(score_pitch(answering))["objection_handling"] == 5


async def test_leaving_before_any_objection_scores_one_on_objections() -> None:
    feedback = score_pitch(await rehearse(("Can we trial a weekly huddle for six weeks?",)))

    assert scores(feedback)["objection_handling"] == 1
    assert "Stay for the pushback" in next(i.suggestion for i in feedback.criteria if i.criterion == "objection_handling")


@pytest.mark.parametrize(("words", "score"), [(60, 5), (100, 4), (150, 3), (200, 2), (300, 1)])
async def test_brevity_follows_the_longest_message(words: int, score: int) -> None:
    long_turn = "Can we trial it? " + " ".join(["word"] * (words - 4))

    feedback = score_pitch(await rehearse((long_turn,)))

    assert scores(feedback)["brevity"] == score


async def test_next_step_needs_an_action_and_a_date_for_full_marks() -> None:
    dated = score_pitch(await rehearse(("Can we trial it? I'll send the invite by Friday.",)))
    undated = score_pitch(await rehearse(("Can we trial it? I'll send the invite.",)))

    assert scores(dated)["next_step"] == 5
    assert scores(undated)["next_step"] == 2


async def test_no_pitch_gets_no_feedback_and_says_so() -> None:
    feedback, _, error = await RubricCoach().feedback(Rehearsal(scenario()).leader_says("done"))

    assert feedback is None and error is not None
    assert "no pitch" in error.learner_message


async def test_offline_feedback_renders_as_rubric_check_with_its_review_status() -> None:
    rehearsal = await rehearse(GOOD)
    feedback = score_pitch(rehearsal)
    status = initial_status(review_flags(rehearsal, feedback))

    text = render_feedback(feedback, scenario(), status).plain()

    assert status == "not_reviewed"
    assert "Rubric check, no AI — not reviewed" in text
    assert "Clear ask: 5/5" in text


async def test_a_sensitive_pitch_is_flagged_even_offline() -> None:
    rehearsal = await rehearse(("Can we talk about my promotion before the calibration meeting next week?",))

    reasons = review_flags(rehearsal, score_pitch(rehearsal))

    assert "promotion" in [r.code for r in reasons]
    assert initial_status(reasons) == "awaiting_review"
