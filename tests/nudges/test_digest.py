"""Tests for nudges/digest.py: intervals, suppression of small groups, baseline and the text."""

from __future__ import annotations

import math
import re
from functools import cache
from pathlib import Path

import pytest

from nudges.digest import (
    BehaviorFigures,
    Digest,
    Estimate,
    Participation,
    Tally,
    build_digest,
    estimate,
    render_text,
    wilson,
)
from nudges.program import Program, load_program
from nudges.weeks import IsoWeek

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
W01, W02, W03, W04 = IsoWeek(2026, 1), IsoWeek(2026, 2), IsoWeek(2026, 3), IsoWeek(2026, 4)
THIS_WEEK = IsoWeek(2026, 10)  # week 9 of pilot-a, which starts in 2026-W02


@cache
def _example() -> Program:
    return load_program(str(EXAMPLE))


@pytest.fixture
def program() -> Program:
    return _example()


def yes_no(yes: int, n: int) -> Tally:
    """A tally of n yes/no answers of which ``yes`` were yes (values 1 and 0, so squares equal values)."""
    return Tally(n=n, total=float(yes), total_sq=float(yes))


def values(*xs: float) -> Tally:
    return Tally(n=len(xs), total=float(sum(xs)), total_sq=float(sum(x * x for x in xs)))


# --- wilson -------------------------------------------------------------------------------


def test_wilson_for_none_of_ten() -> None:
    low, high = wilson(0, 10)

    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=1e-4)


def test_wilson_for_half_of_ten() -> None:
    low, high = wilson(5, 10)

    assert low == pytest.approx(0.2366, abs=1e-4)
    assert high == pytest.approx(0.7634, abs=1e-4)


def test_wilson_for_all_of_ten_reaches_one() -> None:
    low, high = wilson(10, 10)

    assert low == pytest.approx(0.7225, abs=1e-4)
    assert high == pytest.approx(1.0, abs=1e-12)  # exactly 1 in theory; one ulp below in floating point
    assert high <= 1.0


def test_wilson_for_one_of_twenty() -> None:
    low, high = wilson(1, 20)

    assert low == pytest.approx(0.0089, abs=1e-4)
    assert high == pytest.approx(0.2361, abs=1e-4)


def test_wilson_accepts_fractional_successes_between_neighbours() -> None:
    low, high = wilson(5.5, 10)

    assert wilson(5, 10)[0] < low < wilson(6, 10)[0]
    assert wilson(5, 10)[1] < high < wilson(6, 10)[1]


def test_wilson_with_no_responses_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one response"):
        wilson(0, 0)


# --- estimate -----------------------------------------------------------------------------


def test_estimate_below_the_minimum_group_is_suppressed() -> None:
    est = estimate(yes_no(4, 4), "yes_partly_no", min_group_size=5)

    assert est == Estimate(n=4)
    assert not est.shown


def test_estimate_at_the_minimum_group_is_shown() -> None:
    est = estimate(yes_no(4, 5), "yes_partly_no", min_group_size=5)

    assert est.shown
    assert est.value == pytest.approx(0.8)
    assert (est.low, est.high) == pytest.approx(wilson(4, 5))
    assert est.n == 5


def test_estimate_above_the_minimum_group_is_shown() -> None:
    est = estimate(yes_no(3, 12), "yes_partly_no", min_group_size=5)

    assert est.value == pytest.approx(0.25)
    assert est.n == 12


def test_estimate_of_nothing_is_empty() -> None:
    est = estimate(Tally(), "yes_partly_no", min_group_size=5)

    assert est == Estimate(n=0)


def test_estimate_is_suppressed_when_few_people_gave_many_responses() -> None:
    est = estimate(yes_no(6, 10), "yes_partly_no", min_group_size=5, people=4)

    assert not est.shown
    assert est.n == 10


def test_partly_answers_count_as_half_in_the_rate() -> None:
    est = estimate(values(1, 0.5, 0.5, 0, 1), "yes_partly_no", min_group_size=5)

    assert est.value == pytest.approx(0.6)
    assert (est.low, est.high) == pytest.approx(wilson(3.0, 5))


def test_scale_estimate_is_a_mean_with_a_normal_interval() -> None:
    est = estimate(values(1, 2, 3, 4, 5), "scale_1_5", min_group_size=5)

    half = 1.959963984540054 * math.sqrt(2.5 / 5)  # sample variance of 1..5 is 2.5
    assert est.value == pytest.approx(3.0)
    assert est.low == pytest.approx(3.0 - half)
    assert est.high == pytest.approx(3.0 + half)
    assert est.low == pytest.approx(1.614, abs=1e-3)


def test_count_estimate_with_identical_answers_has_a_zero_width_interval() -> None:
    est = estimate(values(2, 2, 2, 2, 2, 2), "count", min_group_size=5)

    assert (est.value, est.low, est.high) == pytest.approx((2.0, 2.0, 2.0))


def test_scale_estimate_below_the_minimum_group_is_suppressed() -> None:
    assert not estimate(values(5, 5, 5, 5), "scale_1_5", min_group_size=5).shown


# --- build_digest -------------------------------------------------------------------------


def pilot_tallies() -> dict[tuple[str, IsoWeek], Tally]:
    return {
        # weeks outside the baseline, which must not be pooled into it
        ("decision_huddle", W01): yes_no(10, 10),
        ("decision_huddle", W04): yes_no(10, 10),
        # baseline: the cohort's first two ISO weeks, 2026-W02 and 2026-W03
        ("decision_huddle", W02): yes_no(3, 10),
        ("decision_huddle", W03): yes_no(5, 10),
        ("decision_huddle", THIS_WEEK): yes_no(7, 10),
        # every baseline week has only 4 people, so the pooled 8 responses stay hidden
        ("escalate_24h", W02): yes_no(2, 4),
        ("escalate_24h", W03): yes_no(3, 4),
        ("escalate_24h", THIS_WEEK): yes_no(6, 9),
        # specific_feedback: nobody answered this week
        ("specific_feedback", W02): yes_no(6, 8),
        ("specific_feedback", W03): yes_no(4, 8),
    }


def wave_tallies() -> dict[tuple[str, IsoWeek], Tally]:
    return {
        ("decision_huddle", THIS_WEEK): yes_no(4, 8),
        ("escalate_24h", THIS_WEEK): yes_no(4, 4),  # 4 people: below the group size
        ("decision_huddle", W02): yes_no(8, 8),  # other weeks of the comparison are not used
    }


@pytest.fixture
def digest(program: Program) -> Digest:
    return build_digest(
        program,
        program.cohort("pilot-a"),
        THIS_WEEK,
        pilot_tallies(),
        Participation(delivered=18, answered=15),
        comparison_tallies=wave_tallies(),
    )


def figures(digest: Digest, key: str) -> BehaviorFigures:
    return next(b for b in digest.behaviors if b.key == key)


def test_digest_names_the_cohort_week_and_comparison(digest: Digest) -> None:
    assert digest.cohort_key == "pilot-a"
    assert digest.week == THIS_WEEK
    assert (digest.week_number, digest.weeks) == (9, 12)
    assert digest.min_group_size == 5
    assert digest.comparison_name == "Wave B"
    assert [b.key for b in digest.behaviors] == ["decision_huddle", "escalate_24h", "specific_feedback"]


def test_digest_rate_this_week(digest: Digest) -> None:
    huddle = figures(digest, "decision_huddle")

    assert huddle.this_week.value == pytest.approx(0.7)
    assert (huddle.this_week.low, huddle.this_week.high) == pytest.approx(wilson(7, 10))
    assert huddle.this_week.n == 10


def test_digest_baseline_pools_the_cohorts_first_two_iso_weeks(digest: Digest) -> None:
    huddle = figures(digest, "decision_huddle")

    assert huddle.baseline.n == 20
    assert huddle.baseline.value == pytest.approx(8 / 20)
    assert (huddle.baseline.low, huddle.baseline.high) == pytest.approx(wilson(8, 20))


def test_digest_change_is_this_week_minus_baseline(digest: Digest) -> None:
    assert figures(digest, "decision_huddle").change == pytest.approx(0.7 - 0.4)


def test_digest_baseline_with_fewer_people_than_the_group_size_each_week_is_suppressed(digest: Digest) -> None:
    escalate = figures(digest, "escalate_24h")

    assert not escalate.baseline.shown
    assert escalate.baseline.n == 8
    assert escalate.this_week.shown
    assert escalate.change is None


def test_digest_comparison_estimate_for_the_same_week(digest: Digest) -> None:
    comparison = figures(digest, "decision_huddle").comparison

    assert comparison is not None
    assert comparison.value == pytest.approx(0.5)
    assert comparison.n == 8


def test_digest_comparison_with_four_people_is_suppressed(digest: Digest) -> None:
    comparison = figures(digest, "escalate_24h").comparison

    assert comparison is not None
    assert not comparison.shown
    assert comparison.n == 4


def test_digest_behavior_without_answers_this_week_is_empty(digest: Digest) -> None:
    feedback = figures(digest, "specific_feedback")

    assert feedback.this_week == Estimate(n=0)
    assert feedback.baseline.value == pytest.approx(10 / 16)
    assert feedback.change is None
    assert feedback.comparison == Estimate(n=0)


def test_digest_without_comparison_tallies_has_no_comparison(program: Program) -> None:
    digest = build_digest(program, program.cohort("pilot-a"), THIS_WEEK, pilot_tallies(), Participation(18, 15))

    assert digest.comparison_name is None
    assert all(b.comparison is None for b in digest.behaviors)


def test_digest_uses_the_programs_minimum_group_size(program: Program) -> None:
    stricter = program.model_copy(update={"min_group_size": 11})

    digest = build_digest(stricter, stricter.cohort("pilot-a"), THIS_WEEK, pilot_tallies(), Participation(18, 15))

    huddle = figures(digest, "decision_huddle")
    assert not huddle.this_week.shown  # 10 people < 11
    # 20 pooled responses, but at least only 10 distinct people (the larger week): hidden too
    assert not huddle.baseline.shown
    assert huddle.baseline.n == 20


def test_participation_rate() -> None:
    assert Participation(delivered=20, answered=15).rate == pytest.approx(0.75)
    assert Participation(delivered=0, answered=0).rate is None


# --- render_text --------------------------------------------------------------------------


def block_of(text: str, question: str) -> list[str]:
    """The indented lines under one question in the rendered digest."""
    lines = text.splitlines()
    start = lines.index(question) + 1
    end = start
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    return lines[start:end]


def test_render_text_shows_rates_intervals_change_and_comparison(digest: Digest, program: Program) -> None:
    text = render_text(digest)

    assert text.splitlines()[0] == "Product leadership pilot — Pilot A, week 9 of 12 (2026-W10)"
    assert "Participation: 15 of 18 managers answered (83%)" in text
    lines = block_of(text, program.behavior("decision_huddle").question)
    low, high = wilson(7, 10)
    assert lines[0] == f"  this week: 70% (95% CI {low:.0%}–{high:.0%}, n=10)"
    assert lines[1].startswith("  first 2 weeks: 40% (95% CI ")
    assert lines[1].endswith("n=20)")
    assert lines[2] == "  change since the first weeks: +30 points"
    assert lines[3].startswith("  Wave B this week: 50% (95% CI ")


def test_render_text_never_shows_a_number_for_a_suppressed_figure(digest: Digest, program: Program) -> None:
    text = render_text(digest)

    lines = block_of(text, program.behavior("escalate_24h").question)
    assert lines[0].startswith("  this week: 67% ")
    assert lines[1] == "  first 2 weeks: fewer than 5 responses"
    assert lines[2] == "  Wave B this week: fewer than 5 responses"
    assert len(lines) == 3  # no change line when the baseline is hidden
    for line in lines[1:]:
        figure = line.split(": ", 1)[1]
        assert not re.search(r"\d", figure.replace("fewer than 5 responses", ""))
    assert "100%" not in text  # the wave's 4 of 4 never leaks
    assert "n=4" not in text


def test_render_text_says_no_responses_for_an_empty_figure(digest: Digest, program: Program) -> None:
    lines = block_of(render_text(digest), program.behavior("specific_feedback").question)

    assert lines[0] == "  this week: no responses"
    assert lines[-1] == "  Wave B this week: no responses"


def test_render_text_with_everything_suppressed_shows_no_behavior_figures(program: Program) -> None:
    tallies = {(key, week): yes_no(3, 4) for key in program.cohort("pilot-a").checklist for week in (W02, W03, THIS_WEEK)}
    digest = build_digest(
        program, program.cohort("pilot-a"), THIS_WEEK, tallies, Participation(4, 4), comparison_tallies=tallies
    )

    text = render_text(digest)

    for key in digest.behaviors:
        for line in block_of(text, key.question):
            assert line.endswith(": fewer than 5 responses")
    assert "%" not in text
    assert "Participation: fewer than 5 managers had a checklist this week" in text
    assert "4 of 4" not in text
    assert "Figures from fewer than 5 people are not shown." in text


def test_render_text_for_a_scale_behavior_uses_one_decimal(program: Program) -> None:
    scale_first = ["delegation_confidence", "one_on_ones", "decision_huddle"]
    cohort = program.cohort("pilot-a").model_copy(update={"checklist": scale_first})
    tallies = {
        ("delegation_confidence", W02): values(2, 2, 3, 3, 2),
        ("delegation_confidence", W03): values(3, 2, 3, 3, 2),
        ("delegation_confidence", THIS_WEEK): values(1, 2, 3, 4, 5),
    }

    text = render_text(build_digest(program, cohort, THIS_WEEK, tallies, Participation(5, 5)))

    lines = block_of(text, program.behavior("delegation_confidence").question)
    assert lines[0].startswith("  this week: 3.0 (95% CI 1.6–4.4, n=5)")
    assert lines[1].startswith("  first 2 weeks: 2.5 ")
    assert lines[2] == "  change since the first weeks: +0.5"
