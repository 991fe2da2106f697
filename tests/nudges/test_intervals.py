"""Tests for nudges/intervals.py against published and reference values.

Newcombe's intervals are the worked examples (a)–(h) of Newcombe (1998), Statistics in
Medicine 17:873–890, Table II, method 10; statsmodels' confint_proportions_2indep(method=
"newcomb") gives the same figures. t quantiles and Welch intervals were checked against
scipy.stats; those libraries are not dependencies, so the values are written out here.
"""

from __future__ import annotations

import math

import pytest

from nudges.intervals import Tally, mean_difference, mean_interval, newcombe, t975, wilson


def values(*xs: float) -> Tally:
    return Tally(n=len(xs), total=float(sum(xs)), total_sq=float(sum(x * x for x in xs)))


# --- wilson -------------------------------------------------------------------------------


def test_wilson_for_none_of_ten_starts_at_exactly_zero() -> None:
    low, high = wilson(0, 10)

    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=1e-4)


def test_wilson_for_half_of_ten() -> None:
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)


def test_wilson_for_all_of_ten_ends_at_exactly_one() -> None:
    low, high = wilson(10, 10)

    assert low == pytest.approx(0.7225, abs=1e-4)
    assert high == 1.0


def test_wilson_for_one_of_twenty() -> None:
    assert wilson(1, 20) == pytest.approx((0.0089, 0.2361), abs=1e-4)


def test_wilson_for_a_single_response() -> None:
    assert wilson(1, 1) == pytest.approx((0.2065, 1.0), abs=1e-4)
    assert wilson(0, 1) == pytest.approx((0.0, 0.7935), abs=1e-4)


def test_wilson_accepts_fractional_successes_between_neighbours() -> None:
    low, high = wilson(5.5, 10)

    assert wilson(5, 10)[0] < low < wilson(6, 10)[0]
    assert wilson(5, 10)[1] < high < wilson(6, 10)[1]


def test_wilson_with_no_responses_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one response"):
        wilson(0, 0)


# --- newcombe -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "low", "high"),
    [
        (56, 70, 48, 80, 0.0524, 0.3339),  # (a)
        (9, 10, 3, 10, 0.1705, 0.8090),  # (b)
        (6, 7, 2, 7, 0.0582, 0.8062),  # (c)
        (5, 56, 0, 29, -0.0381, 0.1926),  # (d)
        (0, 10, 0, 20, -0.1611, 0.2775),  # (e)
        (0, 10, 0, 10, -0.2775, 0.2775),  # (f)
        (10, 10, 0, 20, 0.6791, 1.0000),  # (g)
        (10, 10, 0, 10, 0.6075, 1.0000),  # (h)
    ],
)
def test_newcombe_matches_the_worked_examples_of_newcombe_1998(x1: int, n1: int, x2: int, n2: int, low: float, high: float) -> None:
    d, lo, hi = newcombe(x1, n1, x2, n2)

    assert d == pytest.approx(x1 / n1 - x2 / n2)
    assert (lo, hi) == pytest.approx((low, high), abs=1e-4)


def test_newcombe_is_antisymmetric() -> None:
    d, low, high = newcombe(56, 70, 48, 80)

    assert newcombe(48, 80, 56, 70) == pytest.approx((-d, -high, -low))


def test_newcombe_with_fractional_successes_matches_statsmodels() -> None:
    # 5 yes and 1 partly of 10 against 3 of 10: statsmodels gives -0.16025 to 0.56422.
    assert newcombe(5.5, 10, 3, 10)[1:] == pytest.approx((-0.16025, 0.56422), abs=1e-5)


def test_newcombe_for_tiny_groups_is_wide_but_inside_minus_one_to_one() -> None:
    d, low, high = newcombe(5, 5, 0, 5)

    assert d == 1.0
    assert -1.0 <= low < 0.6 and high == 1.0


# --- t and means --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("df", "quantile"),
    [(1, 12.7062), (4, 2.7764), (10, 2.2281), (10.8213, 2.2054), (30, 2.0423), (31, 2.0395), (40, 2.0211), (100, 1.9840), (10_000, 1.9602)],
)
def test_t_quantile_matches_scipy(df: float, quantile: float) -> None:
    assert t975(df) == pytest.approx(quantile, abs=2e-4)


def test_t_quantile_needs_a_degree_of_freedom() -> None:
    with pytest.raises(ValueError):
        t975(0.5)


def test_mean_interval_uses_student_t() -> None:
    mean, low, high = mean_interval(values(1, 2, 3, 4, 5))

    half = 2.7764 * math.sqrt(2.5 / 5)  # sample variance of 1..5 is 2.5; t(4)
    assert (mean, low, high) == pytest.approx((3.0, 3.0 - half, 3.0 + half), abs=1e-4)
    assert (low, high) == pytest.approx((1.03676, 4.96324), abs=1e-4)  # scipy.stats.t.interval


def test_mean_interval_of_identical_answers_has_zero_width() -> None:
    assert mean_interval(values(2, 2, 2, 2, 2)) == pytest.approx((2.0, 2.0, 2.0))


def test_mean_interval_of_a_single_answer_is_that_answer() -> None:
    assert mean_interval(values(4)) == (4.0, 4.0, 4.0)


def test_mean_difference_is_welchs_interval() -> None:
    a, b = values(3, 4, 4, 5, 2, 3, 4), values(2, 3, 2, 3, 3, 1, 2, 2)

    d, low, high = mean_difference(a, b)

    # scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval(): 0.33870 to 2.30415
    assert d == pytest.approx(1.32143, abs=1e-5)
    assert (low, high) == pytest.approx((0.33870, 2.30415), abs=2e-4)


def test_mean_difference_against_a_constant_group_uses_the_other_groups_spread() -> None:
    d, low, high = mean_difference(values(1, 2, 3, 4, 5), values(2, 2, 2, 2, 2, 2))

    half = 2.7764 * math.sqrt(2.5 / 5)  # Welch df = 4 when one side has no spread
    assert (d, low, high) == pytest.approx((1.0, 1.0 - half, 1.0 + half), abs=1e-4)
