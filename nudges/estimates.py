"""What a digest is computed from, and how one tally becomes a figure: a rate or mean with its
interval, or nothing when too few people are behind it.

The database hands over tallies (count, sum, sum of squares) per cohort; nudges.digest
turns them into a digest with the functions here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from nudges.intervals import Tally, mean_difference, mean_interval, newcombe, wilson
from nudges.weeks import IsoWeek


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
    primary: Tally = field(default_factory=Tally)  # the exposed members' primary answers this week
    paired: tuple[Tally, Tally] | None = None  # exposed members with both: (this week, baseline)
    participation: Mapping[IsoWeek, Participation] = field(default_factory=dict)
    activity: Activity = Activity()


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
