"""Tests for nudges/coaching.py: which nudge is chosen, how it explains itself, and its buttons."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.files import load_program
from nudges.coaching import (
    REPEAT_WEEKS,
    FeedbackError,
    NudgeChoice,
    NudgeFeedback,
    answer_pattern,
    choose_nudge,
    normalise,
    nudge_id,
    nudge_message,
    parse_nudge_id,
)
from nudges.messages import Context, Header, Section
from nudges.program import Behavior, Program
from nudges.weeks import IsoWeek

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
WEEK = IsoWeek(2026, 8)
CHECKLIST = ("decision_huddle", "escalate_24h", "specific_feedback")
MIXED = ("decision_huddle", "one_on_ones", "delegation_confidence")


@cache
def _program() -> Program:
    return load_program(str(EXAMPLE))


def behaviors(keys: Sequence[str] = CHECKLIST) -> list[Behavior]:
    return [_program().behavior(k) for k in keys]


def pick(recent: Mapping[str, Sequence[float]], seed: int = 0, keys: Sequence[str] = CHECKLIST, **kwargs: object) -> NudgeChoice | None:
    return choose_nudge(behaviors(keys), recent, WEEK, random.Random(seed), **kwargs)  # type: ignore[arg-type]


def picks(recent: Mapping[str, Sequence[float]], draws: int = 400, **kwargs: object) -> Counter[str]:
    rng = random.Random(1234)
    counts: Counter[str] = Counter()
    for _ in range(draws):
        choice = choose_nudge(behaviors(), recent, WEEK, rng, **kwargs)  # type: ignore[arg-type]
        counts[choice.nudge_id if choice else "none"] += 1
    return counts


# --- which behavior -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_nudge_aims_at_the_weakest_behavior(seed: int) -> None:
    choice = pick({"decision_huddle": [1, 1], "escalate_24h": [0, 0.5], "specific_feedback": [1, 0.5]}, seed)

    assert choice is not None
    assert choice.behavior.key == "escalate_24h"
    assert choice.mode == "improve"


def test_only_the_last_two_answered_weeks_decide_the_weakest() -> None:
    choice = pick({"decision_huddle": [0, 0, 1, 1], "escalate_24h": [1, 1, 0.5, 1], "specific_feedback": [1, 1, 1, 1]})

    assert choice is not None and choice.behavior.key == "escalate_24h"


def test_answers_of_different_kinds_are_compared_on_one_scale() -> None:
    """2 of 5 confidence is weaker than "partly" and than four 1:1s, though 2 > 0.5 as raw numbers."""
    recent = {"decision_huddle": [0.5, 0.5], "one_on_ones": [4, 4], "delegation_confidence": [2, 2]}

    choice = pick(recent, keys=MIXED)

    assert choice is not None and choice.behavior.key == "delegation_confidence"


def test_equally_weak_behaviors_take_turns_at_random() -> None:
    counts = picks({"decision_huddle": [0, 0], "escalate_24h": [0, 0], "specific_feedback": [1, 1]})
    by_behavior = Counter(parse_nudge_id(n)[0] for n in counts.elements())

    assert set(by_behavior) == {"decision_huddle", "escalate_24h"}
    assert min(by_behavior.values()) > 120


def test_behavior_without_answers_is_left_out() -> None:
    choice = pick({"decision_huddle": [1, 1], "escalate_24h": []})

    assert choice is not None and choice.behavior.key == "decision_huddle"


def test_member_without_answers_gets_no_nudge() -> None:
    assert pick({}) is None
    assert pick({"decision_huddle": []}) is None


def test_signal_outside_its_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="not a scale_1_5 signal"):
        pick({"delegation_confidence": [0]}, keys=MIXED)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [("decision_huddle", 0.5, 0.5), ("delegation_confidence", 1, 0.0), ("delegation_confidence", 4, 0.75), ("one_on_ones", 5, 1.0)],
)
def test_signals_are_normalised_to_zero_to_one(key: str, value: float, expected: float) -> None:
    assert normalise(_program().behavior(key), value) == expected


# --- no repeats ---------------------------------------------------------------------------

WEAK_HUDDLE = {"decision_huddle": [0, 0], "escalate_24h": [1, 0.5], "specific_feedback": [1, 1]}


def test_same_nudge_is_not_sent_again_within_four_weeks() -> None:
    sent = [("decision_huddle:0", WEEK + -1), ("decision_huddle:1", WEEK + -2), ("decision_huddle:2", WEEK + -3)]

    counts = picks(WEAK_HUDDLE, draws=100, sent=sent)

    assert counts == Counter({"decision_huddle:3": 100})


def test_nudge_can_come_back_four_weeks_later() -> None:
    sent = [("decision_huddle:1", WEEK + -1), ("decision_huddle:2", WEEK + -2), ("decision_huddle:3", WEEK + -3)]
    sent.append(("decision_huddle:0", WEEK + -REPEAT_WEEKS))

    assert picks(WEAK_HUDDLE, draws=50, sent=sent) == Counter({"decision_huddle:0": 50})


def test_when_the_weakest_behavior_has_no_fresh_nudge_the_next_weakest_gets_one() -> None:
    sent = [(nudge_id("decision_huddle", i), WEEK + -1) for i in range(4)]

    choice = pick(WEAK_HUDDLE, sent=sent)

    assert choice is not None and choice.behavior.key == "escalate_24h" and choice.mode == "improve"


def test_no_nudge_when_every_nudge_was_sent_recently() -> None:
    sent = [(nudge_id(b.key, i), WEEK) for b in behaviors() for i in range(len(b.nudges))]

    assert pick(WEAK_HUDDLE, sent=sent) is None


# --- reinforcing --------------------------------------------------------------------------


def test_member_with_every_answer_at_the_top_gets_a_reinforcing_nudge() -> None:
    choice = pick({"decision_huddle": [1, 1, 1], "escalate_24h": [0, 1, 1], "specific_feedback": [1, 1]})

    assert choice is not None
    assert choice.mode == "reinforce"
    assert choice.behavior.key == "decision_huddle"  # the longest run at the top


def test_one_answer_below_the_top_makes_it_corrective_again() -> None:
    choice = pick({"decision_huddle": [1, 1, 1], "escalate_24h": [1, 0.5], "specific_feedback": [1, 1]})

    assert choice is not None and choice.mode == "improve" and choice.behavior.key == "escalate_24h"


def test_top_of_a_count_or_scale_is_also_reinforced() -> None:
    choice = pick({"decision_huddle": [1, 1], "one_on_ones": [5, 5], "delegation_confidence": [5, 5]}, keys=MIXED)

    assert choice is not None and choice.mode == "reinforce"


# --- "Not for me" -------------------------------------------------------------------------


def test_not_for_me_makes_that_nudge_much_less_likely_but_not_impossible() -> None:
    before = picks(WEAK_HUDDLE, draws=4000)
    after = picks(WEAK_HUDDLE, draws=4000, not_for_me={"decision_huddle:0": 1})

    assert 0.2 < before["decision_huddle:0"] / 4000 < 0.3  # one of four, uniformly
    assert 0.03 < after["decision_huddle:0"] / 4000 < 0.13  # a quarter of the weight: about 1 in 13
    assert all(after[nudge_id("decision_huddle", i)] > before[nudge_id("decision_huddle", i)] for i in (1, 2, 3))


def test_more_rejections_make_a_nudge_rarer_still() -> None:
    once = picks(WEAK_HUDDLE, draws=4000, not_for_me={"decision_huddle:0": 1})
    twice = picks(WEAK_HUDDLE, draws=4000, not_for_me={"decision_huddle:0": 2})

    assert twice["decision_huddle:0"] < once["decision_huddle:0"] / 2


def test_same_seed_gives_the_same_choice() -> None:
    assert pick(WEAK_HUDDLE, seed=7) == pick(WEAK_HUDDLE, seed=7)


# --- the message --------------------------------------------------------------------------


def choice_for(key: str, index: int, mode: str, recent: Sequence[float]) -> NudgeChoice:
    return NudgeChoice(_program().behavior(key), index, mode, tuple(recent))  # type: ignore[arg-type]


def test_corrective_nudge_says_why_from_the_members_answers_and_gives_one_action() -> None:
    choice = choice_for("decision_huddle", 0, "improve", [1, 0, 0])

    message = nudge_message(choice, WEEK)

    header, why, action, reason, buttons, privacy = message.blocks
    assert header == Header("Decision huddles: “No” in your last two check-ins")
    assert isinstance(why, Context) and "Did you run a decision huddle with your team this week?" in why.text
    assert "lowest answers over your last two check-ins" in why.text
    assert action == Section("For this week: Try a 15-minute huddle on Tuesday: one decision, one owner, one date.")
    assert isinstance(reason, Context) and reason.text.startswith("Why it helps:")
    assert isinstance(buttons, Section) and [c.label for c in buttons.choices] == ["Useful", "Not for me"]
    assert isinstance(privacy, Context)
    assert "Try a 15-minute huddle" in message.text


def test_reinforcing_nudge_celebrates_the_run() -> None:
    message = nudge_message(choice_for("decision_huddle", 2, "reinforce", [1, 1, 1]), WEEK)

    assert message.blocks[0] == Header("Decision huddles: “Yes” in your last three check-ins — keep it going")
    assert "at the top" in message.plain()
    assert "lowest" not in message.plain()


def test_program_reason_replaces_the_generic_one() -> None:
    message = nudge_message(choice_for("escalate_24h", 1, "improve", [0.5, 0.5]), WEEK, reason="Blockers cost a day each.")

    assert Context("Blockers cost a day each.") in message.blocks


@pytest.mark.parametrize(
    ("key", "recent", "expected"),
    [
        ("escalate_24h", [0.5, 0.5], "“Partly” in your last two check-ins"),
        ("escalate_24h", [0.5, 0.0], "“Partly”, then “No”"),
        ("escalate_24h", [0.0], "“No” in your last check-in"),
        ("delegation_confidence", [3, 2], "“3 of 5”, then “2 of 5”"),
        ("one_on_ones", [5, 5, 5, 5], "“5+” in your last four check-ins"),
        ("one_on_ones", [1, 0], "“1”, then “0”"),
    ],
)
def test_answer_pattern_reads_the_members_own_answers(key: str, recent: list[float], expected: str) -> None:
    assert answer_pattern(_program().behavior(key), recent) == expected


def test_buttons_round_trip_to_the_nudge_week_and_verdict() -> None:
    message = nudge_message(choice_for("specific_feedback", 2, "improve", [0, 0]), WEEK)
    buttons = next(b for b in message.blocks if isinstance(b, Section) and b.choices)

    decoded = [NudgeFeedback.decode(c.value) for c in buttons.choices]

    assert decoded == [NudgeFeedback("specific_feedback:2", WEEK, "useful"), NudgeFeedback("specific_feedback:2", WEEK, "not_for_me")]
    assert buttons.block_id == "nudge:specific_feedback:2"


def test_chosen_verdict_is_shown_selected() -> None:
    message = nudge_message(choice_for("specific_feedback", 2, "improve", [0, 0]), WEEK, feedback="not_for_me")
    buttons = next(b for b in message.blocks if isinstance(b, Section) and b.choices)

    assert [c.selected for c in buttons.choices] == [False, True]


# --- button values and ids ----------------------------------------------------------------

KEYS = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,62}", fullmatch=True)
WEEKS = st.dates(min_value=date(2000, 1, 3), max_value=date(2099, 12, 31)).map(IsoWeek.of)


@given(key=KEYS, index=st.integers(0, 49), week=WEEKS, verdict=st.sampled_from(["useful", "not_for_me"]))
def test_feedback_round_trips_through_its_encoding(key: str, index: int, week: IsoWeek, verdict: str) -> None:
    feedback = NudgeFeedback(nudge_id(key, index), week, verdict)  # type: ignore[arg-type]

    assert NudgeFeedback.decode(feedback.encode()) == feedback
    assert parse_nudge_id(feedback.nudge_id) == (key, index)


@given(text=st.text(alphabet="nudge|_:0123456789-Wabcfnotru", max_size=40))
def test_decode_accepts_only_what_encode_produces(text: str) -> None:
    try:
        feedback = NudgeFeedback.decode(text)
    except FeedbackError:
        return
    assert feedback.encode() == text


def test_feedback_encoding_is_readable() -> None:
    assert NudgeFeedback("decision_huddle:0", IsoWeek(2026, 5), "useful").encode() == "nudge|decision_huddle:0|2026-W05|useful"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "nudge|decision_huddle:0|2026-W05",
        "nudge|decision_huddle:0|2026-W05|useful|x",
        "answer|decision_huddle:0|2026-W05|useful",
        "nudge|decision_huddle|2026-W05|useful",
        "nudge|decision_huddle:01|2026-W05|useful",
        "nudge|Decision_huddle:0|2026-W05|useful",
        "nudge|decision_huddle:0|2025-W53|useful",
        "nudge|decision_huddle:0|2026-W5|useful",
        "nudge|decision_huddle:0|2026-W05|meh",
        "nudge|decision_huddle:0| 2026-W05|useful",
    ],
)
def test_garbage_nudge_button_is_refused(garbage: str) -> None:
    with pytest.raises(FeedbackError, match="not from a Reinforce nudge"):
        NudgeFeedback.decode(garbage)
