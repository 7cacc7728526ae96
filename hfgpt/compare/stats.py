"""Statistics over seeds: means with t-distribution confidence intervals, and the paired t-test.

Student's t distribution through the regularized incomplete beta function, `P(|T| > t) = I_x(df/2, 1/2)` with
`x = df / (df + t^2)`, evaluated by its continued fraction (modified Lentz), accurate to about 1e-12 for the
small degrees of freedom a comparison over seeds has. Pure Python: scipy is not a dependency of hfgpt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

_EPS = 1e-15
_TINY = 1e-300


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (converges fast for x < (a + 1) / (a + b + 2))."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    result = d
    for m in range(1, 1000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),  # even step
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),  # odd step
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            result *= c * d
        if abs(c * d - 1.0) < _EPS:
            break
    return result


def regularized_beta(a: float, b: float, x: float, complement: float | None = None) -> float:
    """`I_x(a, b)`, the regularized incomplete beta function, for `a, b > 0` and `0 <= x <= 1`; `complement`,
    when given, is `1 - x` computed without cancellation (for `x` near 1)."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1], got {x}")
    y = 1.0 - x if complement is None else complement
    if x == 0.0 or y == 0.0:
        return 0.0 if x == 0.0 else 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, y) / b


def t_two_sided_p(t: float, df: float) -> float:
    """`P(|T| >= |t|)` for Student's t with `df` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return regularized_beta(df / 2.0, 0.5, df / (df + t * t), complement=t * t / (df + t * t))


def t_quantile(probability: float, df: float) -> float:
    """The `probability` quantile of Student's t with `df` degrees of freedom (0.975: the 95% interval's)."""
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {probability}")
    if probability == 0.5:
        return 0.0
    tail = 2.0 * min(probability, 1.0 - probability)  # two-sided tail of |T| beyond the quantile
    low, high = 0.0, 1.0
    while t_two_sided_p(high, df) > tail:
        low, high = high, 2.0 * high
    for _ in range(200):  # bisection: the tail falls monotonically in t
        middle = (low + high) / 2.0
        if t_two_sided_p(middle, df) > tail:
            low = middle
        else:
            high = middle
        if high - low < 1e-13 * max(1.0, high):
            break
    value = (low + high) / 2.0
    return value if probability > 0.5 else -value


@dataclass(frozen=True)
class Summary:
    """The mean of per-seed values and its confidence interval.

    Args:
        mean (`float`): the mean over seeds.
        half_width (`float`, *optional*): half the width of the interval, `t_{(1+level)/2, n-1} * sd / sqrt(n)`;
            None for a single seed.
        n (`int`): seeds.
    """

    mean: float
    half_width: float | None
    n: int

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width


def summarize(values: Sequence[float], level: float = 0.95) -> Summary:
    """Mean and `level` confidence interval of `values` (one per seed), from Student's t with n - 1 degrees of
    freedom."""
    n = len(values)
    if n == 0:
        raise ValueError("summarize needs at least one value")
    mean = math.fsum(values) / n
    if n == 1:
        return Summary(mean, None, 1)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return Summary(mean, t_quantile((1.0 + level) / 2.0, n - 1) * sd / math.sqrt(n), n)


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test of `a - b` over seeds.

    Args:
        difference (`float`): the mean of the per-seed differences `a - b`.
        t (`float`): the statistic `mean / (sd / sqrt(n))` (infinite when every difference is the same, non-zero).
        p (`float`): the two-sided p-value, from Student's t with n - 1 degrees of freedom.
        n (`int`): pairs (seeds).
    """

    difference: float
    t: float
    p: float
    n: int


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """The paired t-test of `a` against `b` (the same seeds, in the same order)."""
    if len(a) != len(b):
        raise ValueError(f"paired values must come in pairs: got {len(a)} and {len(b)}")
    if len(a) < 2:
        raise ValueError("a paired t-test needs at least two pairs (seeds)")
    differences = [x - y for x, y in zip(a, b)]
    n = len(differences)
    mean = math.fsum(differences) / n
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in differences) / (n - 1))
    if sd == 0.0:
        return PairedTest(
            mean, 0.0 if mean == 0.0 else math.copysign(math.inf, mean), 1.0 if mean == 0 else 0.0, n
        )
    t = mean / (sd / math.sqrt(n))
    return PairedTest(mean, t, t_two_sided_p(t, n - 1), n)


__all__ = [
    "PairedTest",
    "Summary",
    "paired_t_test",
    "regularized_beta",
    "summarize",
    "t_quantile",
    "t_two_sided_p",
]
