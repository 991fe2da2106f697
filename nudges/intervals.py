"""95% intervals for the digest: Wilson for a rate, Newcombe for a difference of rates, t for means.

Chosen because they behave at the edges a small cohort lives at (0%, 100%, a dozen
people), where the textbook normal approximation gives intervals outside 0–1 or of zero width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054

# Two-sided 95% quantiles of Student's t for 1–30 degrees of freedom; beyond 30 the
# Cornish–Fisher expansion is accurate to 1e-5, so no statistics library is needed.
_T975 = (
    12.7062,
    4.3027,
    3.1824,
    2.7764,
    2.5706,
    2.4469,
    2.3646,
    2.3060,
    2.2622,
    2.2281,
    2.2010,
    2.1788,
    2.1604,
    2.1448,
    2.1314,
    2.1199,
    2.1098,
    2.1009,
    2.0930,
    2.0860,
    2.0796,
    2.0739,
    2.0687,
    2.0639,
    2.0595,
    2.0555,
    2.0518,
    2.0484,
    2.0452,
    2.0423,
)


@dataclass(frozen=True)
class Tally:
    """Sum of values over ``n`` responses, as the database aggregates them (count, sum, sum of squares)."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    @property
    def mean(self) -> float:
        return self.total / self.n

    @property
    def variance(self) -> float:
        """Sample variance (n - 1 in the denominator); 0 for a single response."""
        if self.n < 2:
            return 0.0
        return max(0.0, (self.total_sq - self.n * self.mean**2) / (self.n - 1))


def _cornish_fisher(df: float) -> float:
    z = Z95
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def t975(df: float) -> float:
    """The 97.5% quantile of Student's t, for the 95% interval of a mean (``df`` may be fractional, as Welch's is)."""
    if df < 1:
        raise ValueError("a t interval needs at least one degree of freedom")
    if df > len(_T975):
        return _cornish_fisher(df)
    whole = int(df)
    if whole == df:
        return _T975[whole - 1]
    # Between tabulated degrees of freedom the quantile is close to linear in 1/df.
    upper = _T975[whole] if whole < len(_T975) else _cornish_fisher(whole + 1)
    share = (1 / whole - 1 / df) / (1 / whole - 1 / (whole + 1))
    return _T975[whole - 1] + share * (upper - _T975[whole - 1])


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion; accepts fractional successes ("partly" = 0.5)."""
    if n <= 0:
        raise ValueError("an interval needs at least one response")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(0.0, p * (1 - p)) / n + z * z / (4 * n * n)) / denom
    # At p = 0 or 1 the bound is exactly 0 or 1; say so rather than 0.9999999999999999.
    low = 0.0 if p <= 0 else max(0.0, centre - half)
    high = 1.0 if p >= 1 else min(1.0, centre + half)
    return low, high


def newcombe(x1: float, n1: int, x2: float, n2: int) -> tuple[float, float, float]:
    """Difference p1 - p2 of two independent proportions and its 95% interval by Newcombe's
    hybrid score method (method 10 of Newcombe 1998), built from the two Wilson intervals."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1)
    l2, u2 = wilson(x2, n2)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, max(-1.0, low), min(1.0, high)


def mean_interval(tally: Tally) -> tuple[float, float, float]:
    """Mean of a scale or count answer with its 95% t interval (zero width for one response)."""
    mean = tally.mean
    if tally.n < 2:
        return mean, mean, mean
    half = t975(tally.n - 1) * math.sqrt(tally.variance / tally.n)
    return mean, mean - half, mean + half


def mean_difference(a: Tally, b: Tally) -> tuple[float, float, float]:
    """Difference of two independent means with Welch's 95% interval (unequal variances)."""
    d = a.mean - b.mean
    va, vb = a.variance / a.n, b.variance / b.n
    se2 = va + vb
    if se2 == 0 or a.n < 2 or b.n < 2:
        return d, d, d
    # Welch–Satterthwaite degrees of freedom.
    df = se2**2 / ((va**2 / (a.n - 1) if a.n > 1 else 0) + (vb**2 / (b.n - 1) if b.n > 1 else 0))
    half = t975(df) * math.sqrt(se2)
    return d, d - half, d + half
