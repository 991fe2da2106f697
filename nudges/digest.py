"""Cohort digest figures from aggregates: rates with intervals, baseline, comparison, exposure, privacy.

Input is already aggregated by the database (counts and sums per behavior and week, per
cohort); nothing here sees an individual answer. Every figure drawn from fewer than the
program's minimum group size is suppressed here, once, so no rendering (text, JSON, chart,
chat message) can show it by accident. Behavior figures are only ever built for a closed
week (from its stored figures); a week still open gets counts only (``open_digest``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Literal

from nudges.estimates import Activity, Estimate, GroupAggregates, Participation, difference, estimate
from nudges.intervals import Tally
from nudges.plan import PlanVersion
from nudges.program import Cohort, Program
from nudges.weeks import IsoWeek

__all__ = [
    "BASELINE_WEEKS",
    "TREND_WEEKS",
    "Activity",
    "BehaviorFigures",
    "Digest",
    "Estimate",
    "GroupAggregates",
    "OpenWeek",
    "Participation",
    "Primary",
    "SeriesPoint",
    "build_digest",
    "difference",
    "estimate",
    "open_digest",
    "open_week",
    "render_text",
]

BASELINE_WEEKS = 2
TREND_WEEKS = 8


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
    group: Estimate = field(default_factory=lambda: Estimate(0))
    reference: Estimate = field(default_factory=lambda: Estimate(0))
    difference: Estimate = field(default_factory=lambda: Estimate(0))


@dataclass(frozen=True)
class SeriesPoint:
    week: IsoWeek
    week_number: int
    cohort: Estimate
    comparison: Estimate | None


@dataclass(frozen=True)
class OpenWeek:
    """A week still taking answers: its participation so far (counts only) and when it closes."""

    week: IsoWeek
    week_number: int
    closes_at: datetime
    participation: Participation | None  # None: fewer than min_group_size had a checklist


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
    # False for a week still open: then there are no behavior figures (behaviors, primary and
    # series are empty), only counts; its figures are computed once, at ``closes_at``.
    closed: bool
    closes_at: datetime
    open_weeks: tuple[OpenWeek, ...] = ()  # weeks after ``week`` still open, counts only

    @property
    def primary_behavior(self) -> BehaviorFigures | None:
        return next((b for b in self.behaviors if self.primary and b.key == self.primary.behavior), None)


def _count(value: int, people: int, min_group_size: int) -> int | None:
    return value if people >= min_group_size else None


def build_digest(
    program: Program,
    cohort: Cohort,
    week: IsoWeek,
    group: GroupAggregates,
    comparison: GroupAggregates | None = None,
    plan: PlanVersion | None = None,
    open_weeks: Sequence[OpenWeek] = (),
) -> Digest:
    """Figures for ``cohort`` in the closed ``week``, from its stored aggregates; ``comparison``
    is its comparison cohort's, ``open_weeks`` the counts of later weeks still open."""
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
    return Digest(
        program=program.program,
        cohort_key=cohort.key,
        cohort_name=cohort.name,
        week=week,
        week_number=cohort.week_number(week),
        weeks=cohort.weeks,
        min_group_size=k,
        participation=_participation(group.participation.get(week), k),
        trend=_trend(cohort, week, group, k),
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
        closed=True,
        closes_at=cohort.closes_at(week),
        open_weeks=tuple(open_weeks),
    )


def open_week(program: Program, cohort: Cohort, week: IsoWeek, participation: Participation | None) -> OpenWeek:
    """A week still open, as a digest shows it: its participation so far, suppressed like any count."""
    return OpenWeek(week, cohort.week_number(week), cohort.closes_at(week), _participation(participation, program.min_group_size))


def open_digest(program: Program, cohort: Cohort, week: IsoWeek, group: GroupAggregates, plan: PlanVersion | None = None) -> Digest:
    """Counts only, for a week still taking answers: participation so far, members, activity.

    Its behavior figures are computed once, when the week closes: a figure shown now and
    another after one more answer would differ by exactly that answer.
    """
    k = program.min_group_size
    return Digest(
        program=program.program,
        cohort_key=cohort.key,
        cohort_name=cohort.name,
        week=week,
        week_number=cohort.week_number(week),
        weeks=cohort.weeks,
        min_group_size=k,
        participation=_participation(group.participation.get(week), k),
        trend=_trend(cohort, week, group, k),
        behaviors=(),
        comparison_key=None,
        comparison_name=None,
        members=_count(group.members, group.members, k),
        exposed=None,
        comparison_members=None,
        comparison_exposed=None,
        primary=None,
        plan=plan,
        rehearsals=_count(group.activity.rehearsals, group.activity.rehearsal_people, k),
        awaiting_review=_count(group.activity.awaiting_review, group.activity.awaiting_people, k),
        series=(),
        closed=False,
        closes_at=cohort.closes_at(week),
    )


def _trend(cohort: Cohort, week: IsoWeek, group: GroupAggregates, k: int) -> tuple[tuple[IsoWeek, Participation | None], ...]:
    first = IsoWeek.of(cohort.starts)
    weeks = [w for w in (week + -i for i in reversed(range(TREND_WEEKS))) if w >= first]
    return tuple((w, _participation(group.participation.get(w), k)) for w in weeks)


def _withhold_nested(
    primary: Primary, behaviors: list[BehaviorFigures], series: tuple[SeriesPoint, ...], k: int
) -> tuple[list[BehaviorFigures], tuple[SeriesPoint, ...]]:
    """Hide the all-respondents figures that the primary comparison's exposed subgroups nest
    in, wherever the two differ by 1 to k-1 people: the primary comparison is the
    pre-registered figure, so it is the one kept."""

    def nested(outer: Estimate, inner: Estimate) -> Estimate:
        if outer.shown and 0 < outer.n - inner.n < k:
            return Estimate(outer.n, withheld=True)
        return outer

    figures = next(b for b in behaviors if b.key == primary.behavior)
    this_week = nested(figures.this_week, primary.group)
    if primary.method == "baseline":
        kept = replace(figures, this_week=this_week, baseline=nested(figures.baseline, primary.reference))
    else:
        compared = None if figures.comparison is None else nested(figures.comparison, primary.reference)
        kept = replace(figures, this_week=this_week, comparison=compared)
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
    label = f"the same members' first {BASELINE_WEEKS} weeks" if plan.method == "baseline" else program.cohort(cohort.comparison or "").name
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
