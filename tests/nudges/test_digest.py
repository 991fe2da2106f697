"""Tests for nudges/digest.py: figures, suppression of small groups, the primary comparison and the text."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from bot.files import load_program
from nudges.digest import (
    Activity,
    BehaviorFigures,
    Digest,
    Estimate,
    GroupAggregates,
    Participation,
    Tally,
    build_digest,
    estimate,
    render_text,
)
from nudges.intervals import mean_difference, wilson
from nudges.plan import PlanVersion
from nudges.program import Program
from nudges.weeks import IsoWeek

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
W02, W03, W09 = IsoWeek(2026, 2), IsoWeek(2026, 3), IsoWeek(2026, 9)
THIS_WEEK = IsoWeek(2026, 10)  # week 9 of pilot-a (starts 2026-W02); its first analysis is in this week


@cache
def _example() -> Program:
    return load_program(str(EXAMPLE))


@pytest.fixture
def program() -> Program:
    return _example()


def variant(program: Program, plan: dict[str, Any] | None = None, **cohort: Any) -> Program:
    """The example program with pilot-a's plan or fields (or wave-b's, via ``wave``) changed."""
    data = program.model_dump(mode="json")
    if plan is not None:
        data["cohorts"][0]["plan"].update(plan)
    wave = cohort.pop("wave", None)
    data["cohorts"][0].update(cohort)
    if wave:
        data["cohorts"][1].update(wave)
    return Program.model_validate(data)


def yes_no(yes: int, n: int) -> Tally:
    """n yes/no answers of which ``yes`` were yes (values 1 and 0, so squares equal values)."""
    return Tally(n=n, total=float(yes), total_sq=float(yes))


def values(*xs: float) -> Tally:
    return Tally(n=len(xs), total=float(sum(xs)), total_sq=float(sum(x * x for x in xs)))


def pilot(**changes: Any) -> GroupAggregates:
    base: dict[str, Any] = dict(
        members=18,
        this_week={"decision_huddle": yes_no(7, 10), "escalate_24h": yes_no(6, 9)},
        # one tally per person over the first two weeks; escalate_24h had only 4 people
        baseline={"decision_huddle": yes_no(5, 12), "escalate_24h": yes_no(2, 4), "specific_feedback": yes_no(6, 8)},
        series={W02: yes_no(3, 10), W03: yes_no(4, 4), THIS_WEEK: yes_no(7, 10)},
        exposed=14,
        primary=yes_no(56, 70),
        participation={THIS_WEEK: Participation(18, 15), W09: Participation(18, 12)},
        activity=Activity(rehearsals=7, rehearsal_people=6, awaiting_review=2, awaiting_people=2),
    )
    base.update(changes)
    return GroupAggregates(**base)


def wave(**changes: Any) -> GroupAggregates:
    base: dict[str, Any] = dict(
        members=16,
        this_week={"decision_huddle": yes_no(4, 8), "escalate_24h": yes_no(4, 4)},  # 4 people: hidden
        series={W02: yes_no(6, 8), THIS_WEEK: yes_no(4, 8)},
        exposed=12,
        primary=yes_no(48, 80),
    )
    base.update(changes)
    return GroupAggregates(**base)


PLAN = PlanVersion(1, "ab" * 32, {}, (), datetime(2026, 1, 16, 16, tzinfo=UTC))


def make(
    program: Program, week: IsoWeek = THIS_WEEK, group: GroupAggregates | None = None, comparison: GroupAggregates | None = None
) -> Digest:
    return build_digest(program, program.cohort("pilot-a"), week, group or pilot(), comparison if comparison is not None else wave(), PLAN)


@pytest.fixture
def digest(program: Program) -> Digest:
    return make(program)


def figures_of(digest: Digest, key: str) -> BehaviorFigures:
    return next(b for b in digest.behaviors if b.key == key)


def numbers_in(text: str, min_group_size: int = 5) -> list[str]:
    return re.findall(r"\d+", text.replace(f"fewer than {min_group_size}", ""))


# --- estimate -----------------------------------------------------------------------------


def test_estimate_below_the_minimum_group_is_suppressed() -> None:
    est = estimate(yes_no(4, 4), "yes_partly_no", min_group_size=5)

    assert est == Estimate(n=4)
    assert est.suppressed and not est.shown


def test_estimate_at_the_minimum_group_is_shown_with_its_wilson_interval() -> None:
    est = estimate(yes_no(4, 5), "yes_partly_no", min_group_size=5)

    assert est.value == pytest.approx(0.8)
    assert (est.low, est.high) == pytest.approx(wilson(4, 5))


def test_estimate_of_nothing_is_empty_not_suppressed() -> None:
    est = estimate(Tally(), "yes_partly_no", min_group_size=5)

    assert est == Estimate(n=0)
    assert not est.suppressed


def test_estimate_of_all_yes_and_all_no() -> None:
    assert estimate(yes_no(6, 6), "yes_partly_no", 5).high == 1.0
    assert estimate(yes_no(0, 6), "yes_partly_no", 5).low == 0.0


def test_partly_answers_count_as_half_in_the_rate() -> None:
    est = estimate(values(1, 0.5, 0.5, 0, 1), "yes_partly_no", min_group_size=5)

    assert est.value == pytest.approx(0.6)
    assert (est.low, est.high) == pytest.approx(wilson(3.0, 5))


def test_scale_estimate_is_a_mean_with_a_t_interval() -> None:
    est = estimate(values(1, 2, 3, 4, 5), "scale_1_5", min_group_size=5)

    assert (est.value, est.low, est.high) == pytest.approx((3.0, 1.03676, 4.96324), abs=1e-4)


# --- behaviors ----------------------------------------------------------------------------


def test_digest_names_the_cohort_week_and_comparison(digest: Digest) -> None:
    assert (digest.cohort_key, digest.week, digest.week_number, digest.weeks) == ("pilot-a", THIS_WEEK, 9, 12)
    assert (digest.comparison_key, digest.comparison_name) == ("wave-b", "Wave B")
    assert [b.key for b in digest.behaviors] == ["decision_huddle", "escalate_24h", "specific_feedback"]
    assert digest.plan == PLAN


def test_rate_this_week_has_a_wilson_interval(digest: Digest) -> None:
    huddle = figures_of(digest, "decision_huddle")

    assert huddle.this_week == Estimate(10, 0.7, *wilson(7, 10))


def test_baseline_counts_distinct_people_and_gives_the_change(digest: Digest) -> None:
    huddle = figures_of(digest, "decision_huddle")

    assert huddle.baseline == Estimate(12, 5 / 12, *wilson(5, 12))
    assert huddle.change == pytest.approx(0.7 - 5 / 12)


def test_baseline_from_four_people_is_suppressed_and_has_no_change(digest: Digest) -> None:
    escalate = figures_of(digest, "escalate_24h")

    assert escalate.baseline.suppressed
    assert escalate.this_week.shown
    assert escalate.change is None


def test_comparison_cohort_rate_for_the_same_week(digest: Digest) -> None:
    assert figures_of(digest, "decision_huddle").comparison == Estimate(8, 0.5, *wilson(4, 8))


def test_comparison_rate_from_four_people_is_suppressed(digest: Digest) -> None:
    comparison = figures_of(digest, "escalate_24h").comparison

    assert comparison is not None and comparison.suppressed


def test_behavior_without_answers_this_week_is_empty(digest: Digest) -> None:
    feedback = figures_of(digest, "specific_feedback")

    assert feedback.this_week == Estimate(n=0)
    assert feedback.change is None


def test_stricter_minimum_group_size_is_respected(program: Program) -> None:
    digest = make(program.model_copy(update={"min_group_size": 11}))

    huddle = figures_of(digest, "decision_huddle")
    assert not huddle.this_week.shown  # 10 people < 11
    assert huddle.baseline.shown  # 12 people
    assert digest.rehearsals is None  # 6 people < 11
    assert digest.participation is not None  # 18 checklists


# --- the three suppression cases of the acceptance criteria --------------------------------


def test_a_cohort_of_four_shows_no_rates(program: Program) -> None:
    four = GroupAggregates(
        members=4,
        this_week={k: yes_no(3, 4) for k in program.cohort("pilot-a").checklist},
        baseline={k: yes_no(2, 4) for k in program.cohort("pilot-a").checklist},
        series={W02: yes_no(2, 4), THIS_WEEK: yes_no(3, 4)},
        exposed=4,
        primary=yes_no(3, 4),
        participation={THIS_WEEK: Participation(4, 4)},
        activity=Activity(3, 3, 1, 1),
    )

    digest = make(program, group=four, comparison=GroupAggregates())

    assert all(not b.this_week.shown and not b.baseline.shown for b in digest.behaviors)
    assert digest.participation is None
    assert (digest.members, digest.exposed, digest.rehearsals, digest.awaiting_review) == (None, None, None, None)
    assert all(not p.cohort.shown for p in digest.series)
    assert digest.primary is not None and digest.primary.status == "suppressed"
    text = render_text(digest)
    assert "%" not in text
    assert "4 of 4" not in text and "n=4" not in text


def test_a_comparison_cohort_of_three_suppresses_the_comparison(program: Program) -> None:
    three = GroupAggregates(
        members=3, this_week={"decision_huddle": yes_no(2, 3)}, series={THIS_WEEK: yes_no(2, 3)}, exposed=3, primary=yes_no(2, 3)
    )

    digest = make(program, comparison=three)

    assert figures_of(digest, "decision_huddle").comparison == Estimate(n=3)
    assert digest.comparison_members is None and digest.comparison_exposed is None
    assert all(p.comparison is not None and not p.comparison.shown for p in digest.series)
    assert digest.primary is not None
    assert digest.primary.status == "suppressed"
    assert not digest.primary.difference.shown
    assert "Wave B" in digest.primary.note
    text = render_text(digest)
    assert "Wave B this week: fewer than 5 responses" in text
    assert "(Wave B: fewer than 5 members)" in text
    assert "n=3)" not in text  # the wave's 2 of 3 never appears


def test_a_behavior_answered_by_four_of_thirty_is_suppressed(program: Program) -> None:
    thirty = pilot(
        members=30,
        this_week={"decision_huddle": yes_no(3, 4), "escalate_24h": yes_no(20, 28), "specific_feedback": yes_no(14, 28)},
        participation={THIS_WEEK: Participation(30, 28)},
    )

    digest = make(program, group=thirty)

    assert figures_of(digest, "decision_huddle").this_week.suppressed
    assert figures_of(digest, "escalate_24h").this_week.shown
    assert digest.participation == Participation(30, 28)
    lines = render_text(digest).splitlines()
    huddle = lines.index(program.behavior("decision_huddle").question)
    assert lines[huddle + 1] == "  this week: fewer than 5 responses"


# --- participation and activity -----------------------------------------------------------


def test_participation_trend_covers_the_last_weeks_since_the_cohort_started(digest: Digest) -> None:
    weeks = [w for w, _p in digest.trend]

    assert weeks == [THIS_WEEK + -i for i in reversed(range(8))]
    assert dict(digest.trend)[W09] == Participation(18, 12)
    assert dict(digest.trend)[IsoWeek(2026, 4)] == Participation(0, 0)  # no checklists that week: said as it is


def test_participation_trend_starts_at_the_cohorts_first_week(program: Program) -> None:
    digest = make(program, week=W03)

    assert [w for w, _p in digest.trend] == [W02, W03]


def test_participation_from_fewer_than_five_checklists_is_hidden(program: Program) -> None:
    digest = make(program, group=pilot(participation={THIS_WEEK: Participation(4, 3)}))

    assert digest.participation is None
    assert "Participation: fewer than 5 managers had a checklist this week" in render_text(digest)


def test_activity_counts_need_five_people_behind_them(digest: Digest) -> None:
    assert digest.rehearsals == 7  # by 6 people
    assert digest.awaiting_review is None  # 2 items from 2 people
    assert "Rehearsals this week: 7. AI feedback awaiting coach review: not shown (fewer than 5 people)." in render_text(digest)


# --- the primary comparison ---------------------------------------------------------------


def test_primary_comparison_uses_exposed_members_and_newcombes_interval(digest: Digest) -> None:
    primary = digest.primary

    assert primary is not None and primary.status == "shown"
    assert primary.group == Estimate(70, 0.8, *wilson(56, 70))  # the exposed tally, not this_week's
    assert primary.reference == Estimate(80, 0.6, *wilson(48, 80))
    assert primary.difference.value == pytest.approx(0.2)
    assert (primary.difference.low, primary.difference.high) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert "at least 6 weeks" in primary.note


def test_primary_comparison_is_not_due_before_the_first_analysis_date(program: Program) -> None:
    digest = make(program, week=W09)

    assert digest.primary is not None and digest.primary.status == "not_due"
    assert not digest.primary.difference.shown
    text = render_text(digest)
    assert "not yet due: the first analysis is pre-registered for 2026-03-02" in text
    assert "difference" not in text


def test_primary_comparison_with_four_exposed_in_the_comparison_is_suppressed(program: Program) -> None:
    digest = make(program, comparison=wave(primary=yes_no(3, 4)))

    assert digest.primary is not None and digest.primary.status == "suppressed"
    assert digest.primary.note == "fewer than 5 responses from members with at least 6 weeks answered in Wave B"


def test_baseline_method_compares_exposed_members_with_their_own_first_weeks(program: Program) -> None:
    baseline_plan = variant(program, plan={"method": "baseline"})

    digest = make(baseline_plan, group=pilot(paired=(yes_no(9, 12), yes_no(4, 12))))

    primary = digest.primary
    assert primary is not None and primary.status == "shown"
    assert primary.reference_label == "the same members' first 2 weeks"
    assert primary.difference.value == pytest.approx(5 / 12)
    assert primary.difference.low is not None and primary.difference.low > 0


def test_stepped_wedge_compares_with_the_wave_while_it_has_not_started(program: Program) -> None:
    wedge = variant(program, plan={"method": "stepped_wedge"}, wave={"starts": "2026-03-09"})

    before = make(wedge)
    after = make(wedge, week=IsoWeek(2026, 11))

    assert before.primary is not None and before.primary.status == "shown"
    assert after.primary is not None and after.primary.status == "unavailable"
    assert after.primary.note == "Wave B started on 2026-03-09, so it is no longer a not-yet-started wave to compare with"


def test_scale_primary_behavior_uses_welchs_difference_of_means(program: Program) -> None:
    scale = variant(
        program, plan={"primary_behavior": "delegation_confidence"}, checklist=["delegation_confidence", "one_on_ones", "decision_huddle"]
    )
    mine, theirs = values(3, 4, 4, 5, 2, 3, 4), values(2, 3, 2, 3, 3, 1, 2, 2)

    primary = make(scale, group=pilot(primary=mine), comparison=wave(primary=theirs)).primary

    assert primary is not None and primary.status == "shown"
    assert (primary.difference.value, primary.difference.low, primary.difference.high) == pytest.approx(mean_difference(mine, theirs))


def test_a_cohort_without_a_plan_has_no_primary_comparison_or_chart_series(program: Program) -> None:
    data = program.model_dump(mode="json")
    data["cohorts"][0]["plan"] = None
    no_plan = Program.model_validate(data)

    digest = make(no_plan)

    assert digest.primary is None and digest.series == () and digest.exposed is None
    assert "No analysis plan is registered for this cohort" in render_text(digest)


def test_series_runs_from_the_first_week_with_both_cohorts(digest: Digest) -> None:
    assert [p.week_number for p in digest.series] == list(range(1, 10))
    first = digest.series[0]
    assert first.cohort.value == pytest.approx(0.3)
    assert first.comparison is not None and first.comparison.value == pytest.approx(0.75)
    assert digest.series[1].cohort.suppressed  # 4 people in week 2
    assert digest.series[2].cohort == Estimate(0)


# --- text ---------------------------------------------------------------------------------


def block_of(text: str, question: str) -> list[str]:
    """The indented lines under one question in the rendered digest."""
    lines = text.splitlines()
    start = lines.index(question) + 1
    end = start
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    return lines[start:end]


def test_render_text_heads_with_cohort_plan_and_participation(digest: Digest) -> None:
    lines = render_text(digest).splitlines()

    assert lines[0] == "Product leadership pilot — Pilot A, week 9 of 12 (2026-W10)"
    assert lines[1] == "Analysis plan v1, frozen 2026-01-16"
    assert lines[2].startswith("Participation: 15 of 18 managers answered (83%); last 8 weeks: ")
    assert lines[2].endswith("67%, 83%")


def test_render_text_shows_the_primary_comparison(digest: Digest, program: Program) -> None:
    text = render_text(digest)

    lines = block_of(text, f"Primary comparison (pre-registered, comparison cohort): {program.behavior('decision_huddle').question}")
    assert lines[0] == "  exposure: 14 of 18 members have answered at least 6 weeks (Wave B: 12 of 16)"
    assert lines[1].startswith("  Pilot A: 80% (95% CI ")
    assert lines[2].startswith("  Wave B: 60% (95% CI ")
    assert lines[3] == "  difference: +20 points (95% CI +5 to +33); Newcombe hybrid score"
    assert lines[4] == "  only members with at least 6 weeks answered count in this comparison"


def test_render_text_shows_rates_intervals_change_and_comparison(digest: Digest, program: Program) -> None:
    lines = block_of(render_text(digest), program.behavior("decision_huddle").question)
    low, high = wilson(7, 10)

    assert lines[0] == f"  this week: 70% (95% CI {low:.0%}–{high:.0%}, n=10)"
    assert lines[1].startswith("  first 2 weeks: 42% (95% CI ")
    assert lines[2] == "  change since the first weeks: +28 points"
    assert lines[3].startswith("  Wave B this week: 50% (95% CI ")


def test_render_text_never_shows_a_number_for_a_suppressed_figure(digest: Digest, program: Program) -> None:
    lines = block_of(render_text(digest), program.behavior("escalate_24h").question)

    assert lines[1:] == ["  first 2 weeks: fewer than 5 responses", "  Wave B this week: fewer than 5 responses"]
    assert not numbers_in(" ".join(line.split(": ", 1)[1] for line in lines[1:]))


def test_render_text_says_no_responses_for_an_empty_figure(digest: Digest, program: Program) -> None:
    lines = block_of(render_text(digest), program.behavior("specific_feedback").question)

    assert lines[0] == "  this week: no responses"
    assert lines[-1] == "  Wave B this week: no responses"


def test_render_text_ends_with_the_privacy_promise(digest: Digest) -> None:
    assert render_text(digest).splitlines()[-1] == (
        "Figures from fewer than 5 people are not shown. Notes and individual answers never appear here."
    )


def test_render_text_for_a_scale_behavior_uses_one_decimal(program: Program) -> None:
    scale = variant(program, checklist=["delegation_confidence", "one_on_ones", "decision_huddle"])
    group = pilot(
        this_week={"delegation_confidence": values(1, 2, 3, 4, 5)},
        baseline={"delegation_confidence": values(2, 2, 3, 3, 2.5)},
    )

    lines = block_of(render_text(make(scale, group=group)), program.behavior("delegation_confidence").question)

    assert lines[0] == "  this week: 3.0 (95% CI 1.0–5.0, n=5)"
    assert lines[1].startswith("  first 2 weeks: 2.5 ")
    assert lines[2] == "  change since the first weeks: +0.5"


# --- figures that would expose a few people by subtraction ---------------------------------


def test_this_weeks_rate_is_withheld_when_it_differs_from_the_exposed_subgroup_by_fewer_than_five(program: Program) -> None:
    # 12 answered this week, 10 of them exposed: the two rates would give away the other 2.
    group = pilot(this_week={"decision_huddle": yes_no(8, 12)}, primary=yes_no(7, 10))

    digest = make(program, group=group)

    huddle = figures_of(digest, "decision_huddle")
    assert huddle.this_week == Estimate(12, withheld=True)
    assert huddle.change is None
    assert digest.series[-1].cohort == Estimate(12, withheld=True)
    assert digest.primary is not None and digest.primary.group.value == pytest.approx(0.7)
    lines = block_of(render_text(digest), program.behavior("decision_huddle").question)
    assert lines[0] == "  this week: not shown apart from the primary comparison (it would single out fewer than 5 people)"
    assert "67% (" not in render_text(digest)  # 8 of 12


@pytest.mark.parametrize("answered", [10, 15])
def test_this_weeks_rate_is_shown_when_the_subgroup_is_everyone_or_differs_by_five_or_more(program: Program, answered: int) -> None:
    group = pilot(this_week={"decision_huddle": yes_no(7, answered)}, primary=yes_no(7, 10))

    assert figures_of(make(program, group=group), "decision_huddle").this_week.shown


def test_comparison_rate_is_withheld_when_it_differs_from_its_exposed_subgroup_by_fewer_than_five(program: Program) -> None:
    comparison = wave(this_week={"decision_huddle": yes_no(7, 14)}, primary=yes_no(6, 12))

    digest = make(program, comparison=comparison)

    assert figures_of(digest, "decision_huddle").comparison == Estimate(14, withheld=True)
    assert digest.series[-1].comparison == Estimate(14, withheld=True)
    assert digest.series[-1].cohort.shown


def test_nothing_is_withheld_while_the_primary_comparison_is_not_shown(program: Program) -> None:
    group = pilot(this_week={"decision_huddle": yes_no(8, 12)}, primary=yes_no(7, 10))

    assert figures_of(make(program, week=W09, group=group), "decision_huddle").this_week.shown


def test_baseline_method_withholds_a_baseline_that_differs_from_the_paired_members_by_fewer_than_five(program: Program) -> None:
    baseline_plan = variant(program, plan={"method": "baseline"})
    group = pilot(
        this_week={"decision_huddle": yes_no(9, 12)}, baseline={"decision_huddle": yes_no(5, 14)}, paired=(yes_no(9, 12), yes_no(4, 12))
    )

    huddle = figures_of(make(baseline_plan, group=group), "decision_huddle")

    assert huddle.this_week.shown  # the same 12 people: nothing to subtract
    assert huddle.baseline == Estimate(14, withheld=True)


def test_a_week_without_checklists_says_so(program: Program) -> None:
    digest = make(program, group=pilot(participation={}))

    assert digest.participation == Participation(0, 0)
    assert "Participation: no checklists were delivered this week" in render_text(digest)
