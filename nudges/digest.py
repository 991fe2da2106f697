"""Cohort digest statistics over aggregates: rates with intervals, baseline, privacy threshold.

Input is already aggregated per (behavior, week) by the database; nothing here sees an
individual answer, which is what keeps a digest from ever exposing one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nudges.program import Cohort, Program
from nudges.weeks import IsoWeek

Z95 = 1.959963984540054
BASELINE_WEEKS = 2


@dataclass(frozen=True)
class Tally:
    """Sum of signal values over ``n`` responses (one per person and week)."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)


@dataclass(frozen=True)
class Estimate:
    """A rate or mean with its 95% interval; ``value`` is None when suppressed or empty."""

    n: int
    value: float | None = None
    low: float | None = None
    high: float | None = None

    @property
    def shown(self) -> bool:
        return self.value is not None


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


@dataclass(frozen=True)
class Participation:
    delivered: int
    answered: int

    @property
    def rate(self) -> float | None:
        return self.answered / self.delivered if self.delivered else None


@dataclass(frozen=True)
class Digest:
    program: str
    cohort_key: str
    cohort_name: str
    week: IsoWeek
    week_number: int
    weeks: int
    min_group_size: int
    participation: Participation
    behaviors: tuple[BehaviorFigures, ...]
    comparison_name: str | None


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion; accepts fractional successes ("partly" = 0.5)."""
    if n <= 0:
        raise ValueError("an interval needs at least one response")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At p = 0 or 1 the bound is exactly 0 or 1; say so rather than 0.9999999999999999.
    low = 0.0 if p <= 0 else max(0.0, centre - half)
    high = 1.0 if p >= 1 else min(1.0, centre + half)
    return low, high


def estimate(tally: Tally, kind: str, min_group_size: int, people: int | None = None) -> Estimate:
    """The rate (yes/partly/no) or mean (scale, count) of a tally, suppressed below the threshold.

    ``people`` is the number of distinct people behind the tally when it differs from ``n``.
    """
    people = tally.n if people is None else people
    if tally.n == 0 or people < min_group_size:
        return Estimate(n=tally.n)
    mean = tally.total / tally.n
    if kind == "yes_partly_no":
        low, high = wilson(tally.total, tally.n)
    else:
        variance = max(0.0, (tally.total_sq - tally.n * mean * mean) / (tally.n - 1)) if tally.n > 1 else 0.0
        half = Z95 * math.sqrt(variance / tally.n)
        low, high = mean - half, mean + half
    return Estimate(n=tally.n, value=mean, low=low, high=high)


def build_digest(
    program: Program,
    cohort: Cohort,
    week: IsoWeek,
    tallies: Mapping[tuple[str, IsoWeek], Tally],
    participation: Participation,
    comparison_tallies: Mapping[tuple[str, IsoWeek], Tally] | None = None,
) -> Digest:
    """Figures for ``cohort`` in ``week`` from per-(behavior, week) tallies of its signals."""
    first = IsoWeek.of(cohort.starts)
    baseline_weeks = [first + i for i in range(BASELINE_WEEKS)]
    figures = []
    for key in cohort.checklist:
        behavior = program.behavior(key)
        baseline_parts = [tallies.get((key, w), Tally()) for w in baseline_weeks]
        baseline = sum(baseline_parts, Tally())
        # Distinct people in the baseline are at least the largest week's count; using that
        # lower bound can only suppress more, never expose a small group.
        baseline_people = max(t.n for t in baseline_parts)
        comparison = None
        if comparison_tallies is not None:
            comparison = estimate(comparison_tallies.get((key, week), Tally()), behavior.answer, program.min_group_size)
        figures.append(
            BehaviorFigures(
                key=key,
                question=behavior.question,
                kind=behavior.answer,
                this_week=estimate(tallies.get((key, week), Tally()), behavior.answer, program.min_group_size),
                baseline=estimate(baseline, behavior.answer, program.min_group_size, people=baseline_people),
                comparison=comparison,
            )
        )
    comparison_name = program.cohort(cohort.comparison).name if cohort.comparison and comparison_tallies is not None else None
    return Digest(
        program=program.program,
        cohort_key=cohort.key,
        cohort_name=cohort.name,
        week=week,
        week_number=cohort.week_number(week),
        weeks=cohort.weeks,
        min_group_size=program.min_group_size,
        participation=participation,
        behaviors=tuple(figures),
        comparison_name=comparison_name,
    )


def _figure(est: Estimate, kind: str, min_group_size: int) -> str:
    if not est.shown:
        return f"fewer than {min_group_size} responses" if est.n else "no responses"
    if kind == "yes_partly_no":
        return f"{est.value:.0%} (95% CI {est.low:.0%}–{est.high:.0%}, n={est.n})"
    return f"{est.value:.1f} (95% CI {est.low:.1f}–{est.high:.1f}, n={est.n})"


def render_text(digest: Digest) -> str:
    """The digest as plain text for a terminal or a fallback notification."""
    p = digest.participation
    if p.delivered < digest.min_group_size:
        # "3 of 4 answered" in a tiny cohort says who did not; show nothing countable.
        participation = f"fewer than {digest.min_group_size} managers had a checklist this week"
    else:
        participation = f"{p.answered} of {p.delivered} managers answered ({p.rate:.0%})"
    lines = [
        f"{digest.program} — {digest.cohort_name}, week {digest.week_number} of {digest.weeks} ({digest.week})",
        f"Participation: {participation}",
        "",
    ]
    for b in digest.behaviors:
        lines.append(b.question)
        lines.append(f"  this week: {_figure(b.this_week, b.kind, digest.min_group_size)}")
        lines.append(f"  first {BASELINE_WEEKS} weeks: {_figure(b.baseline, b.kind, digest.min_group_size)}")
        if b.change is not None:
            unit = f"{b.change * 100:+.0f} points" if b.kind == "yes_partly_no" else f"{b.change:+.1f}"
            lines.append(f"  change since the first weeks: {unit}")
        if b.comparison is not None and digest.comparison_name:
            lines.append(f"  {digest.comparison_name} this week: {_figure(b.comparison, b.kind, digest.min_group_size)}")
    lines.append("")
    lines.append(f"Figures from fewer than {digest.min_group_size} people are not shown. Notes and individual answers never appear here.")
    return "\n".join(lines)
