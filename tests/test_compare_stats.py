"""`hfgpt.compare.stats` against closed forms of Student's t, printed table values and hand computations."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hfgpt.compare.stats import paired_t_test, regularized_beta, summarize, t_quantile, t_two_sided_p

# 0.975 quantiles of Student's t (two-sided 95%), as printed in statistics tables (e.g. NIST/SEMATECH
# e-Handbook, table 1.3.6.7.2)
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 10: 2.228, 30: 2.042, 100: 1.984}
finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False)


@pytest.mark.parametrize(("df", "expected"), sorted(T_975.items()))
def test_t_quantile_matches_printed_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-4)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=5e-4)


@given(st.floats(min_value=0.0, max_value=200.0))
def test_t_tail_matches_the_closed_forms_for_one_and_two_degrees_of_freedom(t):
    # df = 1 is the Cauchy distribution: P(|T| > t) = 1 - 2 atan(t) / pi; df = 2: 1 - t / sqrt(2 + t^2)
    assert t_two_sided_p(t, 1) == pytest.approx(1 - 2 * math.atan(t) / math.pi, abs=1e-12)
    assert t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-12)


@given(st.floats(min_value=0.001, max_value=0.999), st.floats(min_value=0.2, max_value=30.0))
def test_regularized_beta_closed_forms_and_symmetry(x, b):
    assert regularized_beta(1.0, b, x) == pytest.approx(1 - (1 - x) ** b, abs=1e-12)  # I_x(1, b)
    assert regularized_beta(b, 1.0, x) == pytest.approx(x**b, abs=1e-12)  # I_x(a, 1)
    assert regularized_beta(b, 2.5, x) == pytest.approx(1 - regularized_beta(2.5, b, 1 - x), abs=1e-12)


def test_summary_of_three_seeds_by_hand():
    # mean 2, sample sd 1, so the half-width is t_{0.975, 2} / sqrt(3) = 4.302653 / 1.732051
    summary = summarize([1.0, 3.0, 2.0])
    assert summary.mean == 2.0 and summary.n == 3
    assert summary.half_width == pytest.approx(4.302653 / math.sqrt(3), abs=1e-6)
    assert (summary.low, summary.high) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-6)
    one = summarize([5.0])
    assert (one.mean, one.half_width, one.low) == (5.0, None, None)


def test_paired_t_test_by_hand():
    # differences 1, 1, 1.5: mean 7/6, sd sqrt(1/12), t = (7/6) / (sqrt(1/12) / sqrt(3)) = 7
    test = paired_t_test([1.0, 2.0, 3.5], [0.0, 1.0, 2.0])
    assert test.difference == pytest.approx(7 / 6)
    assert test.t == pytest.approx(7.0)
    assert test.p == pytest.approx(1 - 7 / math.sqrt(2 + 49), abs=1e-12)  # the df = 2 closed form
    assert test.p < 0.05
    # differences that disagree in sign and size: not significant
    assert paired_t_test([1.0, 2.0, 3.0], [0.0, 2.5, 1.0]).p > 0.05


def test_paired_t_test_with_identical_differences():
    assert paired_t_test([2.0, 3.0], [1.0, 2.0]).p == 0.0  # every seed agrees exactly: no doubt left
    assert paired_t_test([2.0, 3.0], [2.0, 3.0]).p == 1.0
    with pytest.raises(ValueError, match="at least two"):
        paired_t_test([1.0], [2.0])


@given(st.lists(st.tuples(finite, finite), min_size=2, max_size=8))
def test_paired_t_test_is_antisymmetric_and_a_probability(pairs):
    a, b = [x for x, _ in pairs], [y for _, y in pairs]
    forward, backward = paired_t_test(a, b), paired_t_test(b, a)
    assert 0.0 <= forward.p <= 1.0
    assert forward.p == pytest.approx(backward.p, abs=1e-12)
    assert forward.difference == pytest.approx(-backward.difference, abs=1e-9)


def test_agrees_with_scipy_when_installed():
    stats = pytest.importorskip("scipy.stats")
    a, b = [3.1, 2.7, 3.9, 3.3, 2.8], [2.9, 2.8, 3.1, 2.6, 2.7]
    assert paired_t_test(a, b).p == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
    for df in (1, 2, 7, 40):
        assert t_quantile(0.975, df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-10)
