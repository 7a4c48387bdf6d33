"""Statistics for judging prompt versions: estimates with 95% intervals, and A/B tests.

No database access here: selectors aggregate in SQL and hand over counts, means and
samples, so these functions can be checked against numbers worked out by hand.

Choices, and why:
- Rates use the Wilson score interval: unlike the textbook Wald interval it stays inside
  [0, 1] and keeps its coverage for small n and rates near 0 or 1 (thumbs-up is often
  90%+, errors often <1%).
- A difference of two rates is tested with the two-proportion z-test (pooled) and its
  interval is Newcombe's hybrid score interval (built from the two Wilson intervals), for
  the same small-n reasons.
- Means (tokens, ratings, evaluator scores) use Student-t intervals and Welch's t-test,
  which does not assume the two versions have equal variance.
- Latency and cost are skewed with long tails, so the test is Mann-Whitney U (rank
  based, no normality assumption) and the interval of the difference is a percentile
  bootstrap, seeded so a page shows the same numbers on every reload.
- Below MIN_PER_ARM observations in either arm no verdict is given at all: a 3-vs-4
  sample produces confident-looking nonsense.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportion_effectsize,
    proportions_ztest,
)

ALPHA = 0.05
MIN_PER_ARM = 30
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20250115
POWER = 0.8


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% interval; value None means no data."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0

    @property
    def has_data(self) -> bool:
        return self.value is not None


NO_DATA = Estimate(None)


def rate_estimate(successes: int, n: int) -> Estimate:
    """Proportion with its Wilson 95% interval."""
    if n <= 0:
        return NO_DATA
    low, high = proportion_confint(successes, n, alpha=ALPHA, method="wilson")
    return Estimate(successes / n, float(low), float(high), n)


def mean_estimate(mean: float | None, sd: float | None, n: int) -> Estimate:
    """Mean with its Student-t 95% interval (no interval for n < 2)."""
    if n <= 0 or mean is None:
        return NO_DATA
    if n < 2 or sd is None:
        return Estimate(float(mean), None, None, n)
    half = scipy_stats.t.ppf(1 - ALPHA / 2, n - 1) * sd / math.sqrt(n)
    return Estimate(float(mean), float(mean - half), float(mean + half), n)


@dataclass(frozen=True)
class Comparison:
    """B minus A for one metric, with the verdict in words."""

    label: str
    unit: str
    a: Estimate
    b: Estimate
    enough_data: bool
    diff: float | None = None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    test: str = ""
    significant: bool = False
    verdict: str = ""


def _fmt(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def _not_enough(label: str, unit_noun: str, a: Estimate, b: Estimate) -> str:
    short = [(arm, MIN_PER_ARM - est.n) for arm, est in (("A", a), ("B", b)) if est.n < MIN_PER_ARM]
    more = " and ".join(f"{need} more for {arm}" for arm, need in short)
    return (
        f"Not enough data for {label.lower()}: A has {a.n} and B has {b.n} {unit_noun}; "
        f"at least {MIN_PER_ARM} per version are needed ({more})."
    )


def _verdict(
    *, label: str, diff: float, low: float, high: float, p: float, unit: str, digits: int, test: str
) -> str:
    if diff == 0:
        head = f"B's {label.lower()} equals A's"
    else:
        direction = "higher" if diff > 0 else "lower"
        head = f"B's {label.lower()} is {_fmt(abs(diff), digits)} {unit} {direction} than A's".replace("  ", " ")
    significant = p < ALPHA
    tail = (
        f"significant ({test}, p = {p:.3g})"
        if significant
        else f"not significant ({test}, p = {p:.3g}); the data cannot tell A and B apart"
    )
    return f"{head}, 95% CI [{_fmt(low, digits)}, {_fmt(high, digits)}], {tail}."


def compare_rates(
    label: str, *, a_successes: int, a_n: int, b_successes: int, b_n: int, unit_noun: str
) -> Comparison:
    """Two proportions: z-test, Newcombe interval; diff and interval in percentage points."""
    a, b = rate_estimate(a_successes, a_n), rate_estimate(b_successes, b_n)
    if a_n < MIN_PER_ARM or b_n < MIN_PER_ARM:
        return Comparison(label, "points", a, b, False, verdict=_not_enough(label, unit_noun, a, b))
    diff = b_successes / b_n - a_successes / a_n
    if a_successes + b_successes in (0, a_n + b_n):
        # Both arms all-0 or all-1: the pooled variance is 0 and z is undefined; there
        # is nothing to tell apart.
        p_value = 1.0
    else:
        _, p_value = proportions_ztest([b_successes, a_successes], [b_n, a_n])
    low, high = confint_proportions_2indep(
        b_successes, b_n, a_successes, a_n, method="newcomb", compare="diff", alpha=ALPHA
    )
    points = (100 * diff, 100 * float(low), 100 * float(high))
    verdict = _verdict(
        label=label,
        diff=points[0],
        low=points[1],
        high=points[2],
        p=float(p_value),
        unit="points",
        digits=1,
        test="two-proportion z-test",
    )
    if p_value >= ALPHA and diff != 0:
        needed = sample_size_for_rates(a_successes / a_n, b_successes / b_n)
        if needed is not None:
            verdict += f" About {needed:,} {unit_noun} per version would be needed to detect a difference this size."
    return Comparison(
        label, "points", a, b, True, points[0], points[1], points[2], float(p_value),
        "two-proportion z-test", bool(p_value < ALPHA), verdict,
    )


def no_signal(label: str, what: str) -> Comparison:
    """Neither version has a single row of this signal: the job may not run for this
    project, so "0% vs 0%" would be a claim the data cannot make."""
    return Comparison(
        label, "points", NO_DATA, NO_DATA, False, verdict=f"No data: no {what} recorded for either version."
    )


def sample_size_for_rates(p_a: float, p_b: float) -> int | None:
    """Observations per arm to detect p_a vs p_b with 80% power at alpha 0.05."""
    effect = abs(proportion_effectsize(p_b, p_a))
    if effect == 0 or not math.isfinite(effect):
        return None
    n = NormalIndPower().solve_power(effect_size=effect, alpha=ALPHA, power=POWER, ratio=1.0)
    return math.ceil(n)


@dataclass(frozen=True)
class Summary:
    mean: float | None
    sd: float | None
    n: int


def compare_means(label: str, a: Summary, b: Summary, *, unit: str, digits: int, unit_noun: str) -> Comparison:
    """Difference of means: Welch's t-test and the Welch-Satterthwaite interval."""
    ea, eb = mean_estimate(a.mean, a.sd, a.n), mean_estimate(b.mean, b.sd, b.n)
    if a.n < MIN_PER_ARM or b.n < MIN_PER_ARM:
        return Comparison(label, unit, ea, eb, False, verdict=_not_enough(label, unit_noun, ea, eb))
    diff = b.mean - a.mean
    var_a, var_b = (a.sd or 0.0) ** 2 / a.n, (b.sd or 0.0) ** 2 / b.n
    se = math.sqrt(var_a + var_b)
    if se == 0:
        p_value, low, high = (1.0 if diff == 0 else 0.0), diff, diff
    else:
        df = (var_a + var_b) ** 2 / (var_a**2 / (a.n - 1) + var_b**2 / (b.n - 1))
        _, p_value = scipy_stats.ttest_ind_from_stats(
            b.mean, b.sd, b.n, a.mean, a.sd, a.n, equal_var=False
        )
        half = scipy_stats.t.ppf(1 - ALPHA / 2, df) * se
        low, high = diff - half, diff + half
    verdict = _verdict(
        label=label, diff=diff, low=low, high=high, p=float(p_value), unit=unit, digits=digits,
        test="Welch's t-test",
    )
    return Comparison(
        label, unit, ea, eb, True, diff, float(low), float(high), float(p_value), "Welch's t-test",
        bool(p_value < ALPHA), verdict,
    )


def compare_samples(
    label: str,
    a_values: Sequence[float],
    b_values: Sequence[float],
    *,
    statistic: str,
    unit: str,
    digits: int,
    unit_noun: str,
) -> Comparison:
    """Skewed measurements: Mann-Whitney U test, bootstrap interval of the difference of
    `statistic` ("median" or "mean")."""
    xa, xb = np.asarray(a_values, dtype=float), np.asarray(b_values, dtype=float)
    reduce = np.median if statistic == "median" else np.mean

    def estimate(x: np.ndarray) -> Estimate:
        return Estimate(float(reduce(x)), None, None, len(x)) if len(x) else NO_DATA

    ea, eb = estimate(xa), estimate(xb)
    if len(xa) < MIN_PER_ARM or len(xb) < MIN_PER_ARM:
        return Comparison(label, unit, ea, eb, False, verdict=_not_enough(label, unit_noun, ea, eb))
    diff = float(reduce(xb) - reduce(xa))
    if np.all(xa == xa[0]) and np.all(xb == xa[0]):
        p_value = 1.0  # identical constant samples: U is undefined, nothing differs
    else:
        p_value = float(scipy_stats.mannwhitneyu(xb, xa, alternative="two-sided").pvalue)
    low, high = bootstrap_diff_interval(xa, xb, statistic=statistic)
    verdict = _verdict(
        label=label, diff=diff, low=low, high=high, p=p_value, unit=unit, digits=digits,
        test="Mann-Whitney U",
    )
    return Comparison(
        label, unit, ea, eb, True, diff, low, high, p_value, "Mann-Whitney U", p_value < ALPHA, verdict
    )


def bootstrap_diff_interval(
    a_values: np.ndarray, b_values: np.ndarray, *, statistic: str, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of statistic(B) - statistic(A), resampling each
    arm independently. Vectorized in chunks: a full resamples x n index matrix for 10k
    traces would be 160 MB; chunks of 100 resamples keep it near 8 MB."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    reduce = np.median if statistic == "median" else np.mean
    diffs = []
    for start in range(0, resamples, 100):
        size = min(100, resamples - start)
        a_idx = rng.integers(0, len(a_values), size=(size, len(a_values)))
        b_idx = rng.integers(0, len(b_values), size=(size, len(b_values)))
        diffs.append(reduce(b_values[b_idx], axis=1) - reduce(a_values[a_idx], axis=1))
    low, high = np.quantile(np.concatenate(diffs), [ALPHA / 2, 1 - ALPHA / 2])
    return float(low), float(high)
