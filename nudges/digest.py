"""Cohort digest figures from aggregates: rates with intervals, baseline, comparison, exposure, privacy.

Input is already aggregated by the database (counts and sums per behavior and week, per
cohort); nothing here sees an individual answer. Every figure drawn from fewer than the
program's minimum group size is suppressed here, once, so no rendering (text, JSON, chart,
chat message) can show it by accident.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Literal

from nudges.intervals import Tally, mean_difference, mean_interval, newcombe, wilson
from nudges.plan import PlanVersion
from nudges.program import Cohort, Program
from nudges.weeks import IsoWeek

BASELINE_WEEKS = 2
TREND_WEEKS = 8


@dataclass(frozen=True)
class Estimate:
    """A rate or mean with its 95% interval; ``value`` is None when suppressed or empty.

    ``withheld`` marks a figure from enough people that is hidden all the same, because
    a figure on a subgroup of the same people is shown and the two would differ by fewer
    than the minimum group size (subtracting one from the other would expose those few).
    """

    n: int
    value: float | None = None
    low: float | None = None
    high: float | None = None
    withheld: bool = False

    @property
    def shown(self) -> bool:
        return self.value is not None

    @property
    def suppressed(self) -> bool:
        """True when there were responses but too few people to show them."""
        return self.n > 0 and self.value is None


@dataclass(frozen=True)
class Participation:
    """Checklists delivered in a week and members who answered at least one question."""

    delivered: int
    answered: int

    @property
    def rate(self) -> float | None:
        return self.answered / self.delivered if self.delivered else None


@dataclass(frozen=True)
class Activity:
    """Rehearsal counts for a cohort, with the number of distinct people behind each."""

    rehearsals: int = 0
    rehearsal_people: int = 0
    awaiting_review: int = 0
    awaiting_people: int = 0


@dataclass(frozen=True)
class GroupAggregates:
    """What the database computed for one cohort: counts and sums, nothing individual.

    ``this_week`` and ``baseline`` tallies have one response per person (the baseline is
    each person's mean over the baseline weeks), so their ``n`` counts distinct people.
    """

    members: int = 0
    this_week: Mapping[str, Tally] = field(default_factory=dict)
    baseline: Mapping[str, Tally] = field(default_factory=dict)
    series: Mapping[IsoWeek, Tally] = field(default_factory=dict)  # primary behavior by week
    exposed: int = 0
    primary: Tally = Tally()  # the exposed members' primary answers this week
    paired: tuple[Tally, Tally] | None = None  # exposed members with both: (this week, baseline)
    participation: Mapping[IsoWeek, Participation] = field(default_factory=dict)
    activity: Activity = Activity()


@dataclass(frozen=True)
class BehaviorFigures:
    key: str
    question: str
    kind: str
    this_week: Estimate
    baseline: Estimate
    comparison: Estimate | None

    @property
    def change(self) -> float | None:
        if self.this_week.shown and self.baseline.shown:
            return self.this_week.value - self.baseline.value  # type: ignore[operator]
        return None


PrimaryStatus = Literal["shown", "not_due", "suppressed", "unavailable"]


@dataclass(frozen=True)
class Primary:
    """The pre-registered comparison of the primary behavior, among exposed members only."""

    behavior: str
    question: str
    kind: str
    method: str
    first_analysis: date
    min_exposure_weeks: int
    status: PrimaryStatus
    note: str
    reference_label: str
    group: Estimate = Estimate(0)
    reference: Estimate = Estimate(0)
    difference: Estimate = Estimate(0)


@dataclass(frozen=True)
class SeriesPoint:
    week: IsoWeek
    week_number: int
    cohort: Estimate
    comparison: Estimate | None


@dataclass(frozen=True)
class Digest:
    program: str
    cohort_key: str
    cohort_name: str
    week: IsoWeek
    week_number: int
    weeks: int
    min_group_size: int
    participation: Participation | None  # None: fewer than min_group_size had a checklist
    trend: tuple[tuple[IsoWeek, Participation | None], ...]
    behaviors: tuple[BehaviorFigures, ...]
    comparison_key: str | None
    comparison_name: str | None
    members: int | None  # None when suppressed
    exposed: int | None
    comparison_members: int | None
    comparison_exposed: int | None
    primary: Primary | None  # None when the cohort has no analysis plan
    plan: PlanVersion | None
    rehearsals: int | None
    awaiting_review: int | None
    series: tuple[SeriesPoint, ...]

    @property
    def primary_behavior(self) -> BehaviorFigures | None:
        return next((b for b in self.behaviors if self.primary and b.key == self.primary.behavior), None)


def estimate(tally: Tally, kind: str, min_group_size: int) -> Estimate:
    """The rate (yes/partly/no, "partly" = 0.5) or mean (scale, count) of a tally of one
    response per person, with its interval; suppressed below the minimum group size."""
    if tally.n == 0 or tally.n < min_group_size:
        return Estimate(n=tally.n)
    if kind == "yes_partly_no":
        low, high = wilson(tally.total, tally.n)
        return Estimate(tally.n, tally.mean, low, high)
    mean, low, high = mean_interval(tally)
    return Estimate(tally.n, mean, low, high)


def difference(a: Tally, b: Tally, kind: str) -> Estimate:
    """a - b with its 95% interval: Newcombe's hybrid score for rates, Welch for means."""
    d, low, high = newcombe(a.total, a.n, b.total, b.n) if kind == "yes_partly_no" else mean_difference(a, b)
    return Estimate(min(a.n, b.n), d, low, high)


def _count(value: int, people: int, min_group_size: int) -> int | None:
    return value if people >= min_group_size else None


def build_digest(
    program: Program,
    cohort: Cohort,
    week: IsoWeek,
    group: GroupAggregates,
    comparison: GroupAggregates | None = None,
    plan: PlanVersion | None = None,
) -> Digest:
    """Figures for ``cohort`` in ``week``; ``comparison`` is its comparison cohort's aggregates."""
    k = program.min_group_size
    compared = program.cohort(cohort.comparison) if cohort.comparison and comparison is not None else None
    behaviors: list[BehaviorFigures] = []
    for key in cohort.checklist:
        behavior = program.behavior(key)
        behaviors.append(
            BehaviorFigures(
                key=key,
                question=behavior.question,
                kind=behavior.answer,
                this_week=estimate(group.this_week.get(key, Tally()), behavior.answer, k),
                baseline=estimate(group.baseline.get(key, Tally()), behavior.answer, k),
                comparison=estimate(comparison.this_week.get(key, Tally()), behavior.answer, k) if compared and comparison else None,
            )
        )
    primary = _primary(program, cohort, week, group, comparison) if cohort.plan else None
    series = _series(program, cohort, week, group, comparison if compared else None)
    if primary is not None and primary.status == "shown":
        behaviors, series = _withhold_nested(primary, behaviors, series, k)
    first = IsoWeek.of(cohort.starts)
    trend_weeks = [w for w in (week + -i for i in reversed(range(TREND_WEEKS))) if w >= first]
    trend = tuple((w, _participation(group.participation.get(w), k)) for w in trend_weeks)
    return Digest(
        program=program.program,
        cohort_key=cohort.key,
        cohort_name=cohort.name,
        week=week,
        week_number=cohort.week_number(week),
        weeks=cohort.weeks,
        min_group_size=k,
        participation=_participation(group.participation.get(week), k),
        trend=trend,
        behaviors=tuple(behaviors),
        comparison_key=compared.key if compared else None,
        comparison_name=compared.name if compared else None,
        members=_count(group.members, group.members, k),
        exposed=_count(group.exposed, group.members, k) if cohort.plan else None,
        comparison_members=_count(comparison.members, comparison.members, k) if compared and comparison else None,
        comparison_exposed=_count(comparison.exposed, comparison.members, k) if cohort.plan and compared and comparison else None,
        primary=primary,
        plan=plan,
        rehearsals=_count(group.activity.rehearsals, group.activity.rehearsal_people, k),
        awaiting_review=_count(group.activity.awaiting_review, group.activity.awaiting_people, k),
        series=series,
    )


def _withhold_nested(
    primary: Primary, behaviors: list[BehaviorFigures], series: tuple[SeriesPoint, ...], k: int
) -> tuple[list[BehaviorFigures], tuple[SeriesPoint, ...]]:
    """Hide the all-respondents figures that the primary comparison's exposed subgroups nest
    in, wherever the two differ by 1 to k-1 people: the primary comparison is the
    pre-registered figure, so it is the one kept."""

    def nested(outer: Estimate | None, inner: Estimate) -> Estimate | None:
        if outer is not None and outer.shown and 0 < outer.n - inner.n < k:
            return Estimate(outer.n, withheld=True)
        return outer

    figures = next(b for b in behaviors if b.key == primary.behavior)
    this_week = nested(figures.this_week, primary.group)
    if primary.method == "baseline":
        kept = replace(figures, this_week=this_week, baseline=nested(figures.baseline, primary.reference))
    else:
        kept = replace(figures, this_week=this_week, comparison=nested(figures.comparison, primary.reference))
    behaviors = [kept if b.key == primary.behavior else b for b in behaviors]
    if series:
        # The chart's point for this week is the same figure as the behavior's "this week".
        last = series[-1]
        if kept.this_week.withheld:
            last = replace(last, cohort=kept.this_week)
        if kept.comparison is not None and kept.comparison.withheld:
            last = replace(last, comparison=kept.comparison)
        series = (*series[:-1], last)
    return behaviors, series


def _participation(p: Participation | None, min_group_size: int) -> Participation | None:
    # "3 of 4 answered" in a tiny cohort says who did not: show nothing countable.
    # No checklist at all is not a figure about anyone, so it is said as it is.
    p = p or Participation(0, 0)
    return p if p.delivered >= min_group_size or p.delivered == 0 else None


def _series(
    program: Program, cohort: Cohort, week: IsoWeek, group: GroupAggregates, comparison: GroupAggregates | None
) -> tuple[SeriesPoint, ...]:
    if cohort.plan is None:
        return ()
    kind = program.behavior(cohort.plan.primary_behavior).answer
    first = IsoWeek.of(cohort.starts)
    points = []
    for i in range(max(0, week - first + 1)):
        w = first + i
        points.append(
            SeriesPoint(
                week=w,
                week_number=i + 1,
                cohort=estimate(group.series.get(w, Tally()), kind, program.min_group_size),
                comparison=estimate(comparison.series.get(w, Tally()), kind, program.min_group_size) if comparison else None,
            )
        )
    return tuple(points)


def _primary(program: Program, cohort: Cohort, week: IsoWeek, group: GroupAggregates, comparison: GroupAggregates | None) -> Primary:
    plan = cohort.plan
    assert plan is not None
    behavior = program.behavior(plan.primary_behavior)
    k = program.min_group_size
    exposed = f"members with at least {plan.min_exposure_weeks} weeks answered"
    if plan.method == "baseline":
        label = f"the same members' first {BASELINE_WEEKS} weeks"
    else:
        label = program.cohort(cohort.comparison or "").name
    base = Primary(
        behavior=behavior.key,
        question=behavior.question,
        kind=behavior.answer,
        method=plan.method,
        first_analysis=plan.first_analysis,
        min_exposure_weeks=plan.min_exposure_weeks,
        status="not_due",
        note="",
        reference_label=label,
    )
    if week < IsoWeek.of(plan.first_analysis):
        return _with(base, "not_due", f"not yet due: the first analysis is pre-registered for {plan.first_analysis.isoformat()}")
    if plan.method == "baseline":
        if group.paired is None:
            return _with(base, "unavailable", "no baseline weeks have been recorded for this cohort")
        mine, reference = group.paired
    else:
        wave = program.cohort(cohort.comparison or "")
        if comparison is None:
            return _with(base, "unavailable", f"{wave.name} has no data yet")
        if plan.method == "stepped_wedge" and week >= IsoWeek.of(wave.starts):
            return _with(
                base,
                "unavailable",
                f"{wave.name} started on {wave.starts.isoformat()}, so it is no longer a not-yet-started wave to compare with",
            )
        mine, reference = group.primary, comparison.primary
    if mine.n < k or reference.n < k:
        who = cohort.name if mine.n < k else label
        return _with(base, "suppressed", f"fewer than {k} responses from {exposed} in {who}")
    return replace(
        base,
        status="shown",
        note=f"only {exposed} count in this comparison",
        group=estimate(mine, behavior.answer, k),
        reference=estimate(reference, behavior.answer, k),
        difference=difference(mine, reference, behavior.answer),
    )


def _with(base: Primary, status: PrimaryStatus, note: str) -> Primary:
    return replace(base, status=status, note=note)


def render_text(digest: Digest) -> str:
    """The digest as plain text for a terminal or a fallback notification."""
    # The renderers live in nudges.digest_formats, which imports this module's types;
    # importing it here, when called, keeps ``nudges.digest.render_text`` for its callers.
    from nudges.digest_formats import digest_text

    return digest_text(digest)
