"""Statistics of the bias-slices page: intervals, tests, multiple-testing control, flags.

Pure functions, no database: slices/selectors.py aggregates in SQL and hands over counts,
sums and bounded samples, so every number here can be checked by hand.

Choices, and why:
- Rates get the Wilson score interval (statsmodels): it stays in [0, 1] and keeps its
  coverage for small n and rates near 0 or 1, where the textbook Wald interval fails.
- A slice is compared with the REST of the traffic (not with the whole, which contains
  it): two-proportion z-test, or Fisher's exact test when an expected cell count is
  below 5 (the z-test's normal approximation is poor there: rare toxicity, small slices).
- Means (rating, cost) get a Student-t interval and Welch's t-test (no equal-variance
  assumption). Latency is skewed with a long tail: its test is Mann-Whitney U on bounded
  per-slice samples, its percentile intervals distribution-free order-statistic
  intervals on the same samples (no resampling: the same numbers on every reload).
- A page tests many cells (slices × metrics); at 5% each, some would light up by chance
  alone. Benjamini-Hochberg across every tested cell of the page keeps the expected share
  of false flags at 5% (and, when nothing differs, the chance of any flag at all).
- Significance is not enough: with 250,000 traces a 0.3-point gap is "significant". A
  cell is flagged only when the gap is also practically large: the four-fifths rule on
  the ratio to the best slice (inverse for "bad" rates, where lower is better) AND a
  minimum absolute gap to the rest (MIN_RATE_GAP for rates, MIN_RELATIVE_GAP of the rest
  for means), so 0.2% vs 0.1% toxicity is never a headline.
- Below MIN_N observations (in the slice or in the rest) nothing is flagged: a 3-of-7
  slice produces confident-looking nonsense.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

ALPHA = 0.05
MIN_N = 30
FOUR_FIFTHS = 0.8
MIN_RATE_GAP = 0.02  # 2 percentage points
MIN_RELATIVE_GAP = 0.10  # means: 10% of the rest's value
# Fisher's exact test below this expected count in any cell of the 2×2 table.
MIN_EXPECTED = 5

RATE, MEAN, QUANTILE = "rate", "mean", "quantile"


@dataclass(frozen=True)
class Cell:
    """One slice × metric. higher_is_better None = descriptive only (never tested)."""

    metric: str
    kind: str  # RATE | MEAN | QUANTILE
    higher_is_better: bool | None
    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0
    rest: float | None = None
    rest_n: int = 0
    p_value: float | None = None
    test: str = ""
    p_adjusted: float | None = None
    ratio_to_best: float | None = None
    flagged: bool = False

    @property
    def tested(self) -> bool:
        return self.p_value is not None


# ------------------------------------------------------------------ intervals


def wilson(successes: int, n: int, *, alpha: float = ALPHA) -> tuple[float, float] | tuple[None, None]:
    """Wilson score interval of successes / n; (None, None) without data."""
    if n <= 0:
        return None, None
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return float(low), float(high)


def t_interval(mean: float, sd: float, n: int, *, alpha: float = ALPHA) -> tuple[float, float] | tuple[None, None]:
    """Student-t interval of a mean; none for n < 2."""
    if n < 2 or not math.isfinite(sd):
        return None, None
    half = float(scipy_stats.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def mean_sd(total: float, squares: float, n: int) -> tuple[float | None, float]:
    """Mean and sample SD from a count, a sum and a sum of squares (what SQL returns)."""
    if n <= 0:
        return None, math.nan
    mean = total / n
    if n < 2:
        return mean, math.nan
    # Clamped: float cancellation can make a zero variance slightly negative.
    var = max(0.0, (squares - n * mean * mean) / (n - 1))
    return mean, math.sqrt(var)


def quantile_interval(sample: Sequence[float], q: float, *,
                      alpha: float = ALPHA) -> tuple[float, float] | tuple[None, None]:
    """Distribution-free interval of the q-quantile from a sample: the order statistics
    whose ranks bound the Binomial(n, q) count of values below the quantile. Exact
    coverage with no assumption about the shape (latency has a long tail), no
    resampling (a bootstrap per cell cost most of a 50-slice page), and the same on
    every reload. Computed on the bounded sample, so it is conservative (wider than
    necessary) for slices larger than the sample."""
    data = np.sort(np.asarray(sample, dtype=float))
    n = data.size
    if n < 2:
        return None, None
    low_rank, high_rank = _quantile_ranks(n, q, alpha)
    return float(data[max(0, low_rank - 1)]), float(data[min(n - 1, high_rank)])


@functools.lru_cache(maxsize=256)
def _quantile_ranks(n: int, q: float, alpha: float) -> tuple[int, int]:
    """The Binomial(n, q) ranks bounding the q-quantile. Cached: nearly every slice's
    sample has the same size (LATENCY_SAMPLE), and scipy's ppf costs ~0.1 ms a call."""
    return int(scipy_stats.binom.ppf(alpha / 2, n, q)), int(scipy_stats.binom.ppf(1 - alpha / 2, n, q))


# ------------------------------------------------------------------ tests


def two_proportion_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float | None, str]:
    """(two-sided p, test name) for x1/n1 against x2/n2: the pooled z-test, or Fisher's
    exact test when any expected count of the 2×2 table is below MIN_EXPECTED."""
    if n1 <= 0 or n2 <= 0:
        return None, ""
    total, successes = n1 + n2, x1 + x2
    if successes in (0, total):
        return 1.0, "two-proportion z-test"  # all 0 or all 1: nothing to tell apart
    expected = (n1 * successes / total, n1 * (total - successes) / total,
                n2 * successes / total, n2 * (total - successes) / total)
    if min(expected) < MIN_EXPECTED:
        return fisher_exact_p(x1, n1, x2, n2), "Fisher exact"
    _, p = proportions_ztest([x1, x2], [n1, n2])
    return float(p), "two-proportion z-test"


def fisher_exact_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided Fisher exact p-value (the sum of the hypergeometric probabilities of
    every table no more likely than the observed one: scipy's definition), from one
    vectorised scipy hypergeom.pmf over the support. scipy.stats.fisher_exact searches
    the tail iteratively, which grows with the counts: a rare event (toxicity) in a
    250,000-trace page cost ~5 ms a cell. The support here is small whenever Fisher is
    used at all (some expected count is below 5, so a margin is small)."""
    total, successes = n1 + n2, x1 + x2
    support = np.arange(max(0, successes - n2), min(n1, successes) + 1)
    pmf = scipy_stats.hypergeom.pmf(support, total, successes, n1)
    observed = pmf[x1 - support[0]]
    # The same relative tolerance as scipy, so tables as likely as the observed one count.
    return float(min(1.0, pmf[pmf <= observed * (1 + 1e-7)].sum()))


def welch_test(mean1: float, sd1: float, n1: int, mean2: float, sd2: float, n2: int) -> float | None:
    if n1 < 2 or n2 < 2 or not (math.isfinite(sd1) and math.isfinite(sd2)):
        return None
    if sd1 == 0 and sd2 == 0:
        return 1.0 if mean1 == mean2 else 0.0
    _, p = scipy_stats.ttest_ind_from_stats(mean1, sd1, n1, mean2, sd2, n2, equal_var=False)
    return float(p)


def mann_whitney(sample: Sequence[float], rest: Sequence[float]) -> float | None:
    if len(sample) < 2 or len(rest) < 2:
        return None
    _, p = scipy_stats.mannwhitneyu(sample, rest, alternative="two-sided")
    return float(p)


def benjamini_hochberg(p_values: Sequence[float | None], *, alpha: float = ALPHA) -> list[float | None]:
    """BH-adjusted p-values (statsmodels fdr_bh); None stays None (untested cells)."""
    tested = [(i, p) for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if not tested:
        return out
    _, adjusted, _, _ = multipletests([p for _, p in tested], alpha=alpha, method="fdr_bh")
    for (i, _), value in zip(tested, adjusted, strict=True):
        out[i] = float(value)
    return out


# ------------------------------------------------------------------ cells


def rate_cell(metric: str, *, successes: int, n: int, rest_successes: int, rest_n: int,
              higher_is_better: bool | None) -> Cell:
    """A rate with its Wilson interval, tested against the rest unless descriptive."""
    return rate_cells(metric, successes=[successes], n=[n], rest_successes=[rest_successes], rest_n=[rest_n],
                      higher_is_better=higher_is_better)[0]


def rate_cells(metric: str, *, successes: Sequence[int], n: Sequence[int], rest_successes: Sequence[int],
               rest_n: Sequence[int], higher_is_better: bool | None) -> list[Cell]:
    """rate_cell for every slice of a page at once: the Wilson intervals in one
    statsmodels call and the pooled z-tests as array arithmetic (the same formula as
    statsmodels' proportions_ztest, checked in the tests). Calling the libraries once per
    cell cost ~1 ms each, most of a 50-slice page. Cells that need Fisher's exact test
    (or have nothing to test) go through two_proportion_test one by one."""
    x, m = np.asarray(successes, dtype=float), np.asarray(n, dtype=float)
    rx, rm = np.asarray(rest_successes, dtype=float), np.asarray(rest_n, dtype=float)
    size = len(x)
    low, high = np.full(size, np.nan), np.full(size, np.nan)
    has = m > 0
    if has.any():
        low[has], high[has] = proportion_confint(x[has], m[has], alpha=ALPHA, method="wilson")
    p_values = np.full(size, np.nan)
    tests = [""] * size
    if higher_is_better is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            total, hits = m + rm, x + rx
            pooled = hits / total
            expected = np.minimum.reduce([m * pooled, m * (1 - pooled), rm * pooled, rm * (1 - pooled)])
            plain = has & (rm > 0) & (hits > 0) & (hits < total) & (expected >= MIN_EXPECTED)
            se = np.sqrt(pooled * (1 - pooled) * (1 / m + 1 / rm))
            z = (x / m - rx / rm) / se
            p_values[plain] = 2 * scipy_stats.norm.sf(np.abs(z[plain]))
        for i in range(size):
            if plain[i]:
                tests[i] = "two-proportion z-test"
            elif has[i]:
                p, tests[i] = two_proportion_test(int(x[i]), int(m[i]), int(rx[i]), int(rm[i]))
                p_values[i] = np.nan if p is None else p
    out = []
    for i in range(size):
        rest = _share(int(rx[i]), int(rm[i]))
        if not has[i]:
            out.append(Cell(metric, RATE, higher_is_better, None, n=0, rest=rest, rest_n=int(rm[i])))
            continue
        p = None if np.isnan(p_values[i]) else float(p_values[i])
        out.append(Cell(metric, RATE, higher_is_better, x[i] / m[i], float(low[i]), float(high[i]), int(m[i]), rest,
                        int(rm[i]), p, tests[i] if p is not None else ""))
    return out


def mean_cell(metric: str, *, total: float, squares: float, n: int, rest_total: float, rest_squares: float,
              rest_n: int, higher_is_better: bool | None) -> Cell:
    mean, sd = mean_sd(total, squares, n)
    rest_mean, rest_sd = mean_sd(rest_total, rest_squares, rest_n)
    if mean is None:
        return Cell(metric, MEAN, higher_is_better, None, rest=rest_mean, rest_n=rest_n)
    low, high = t_interval(mean, sd, n)
    p = None
    if higher_is_better is not None and rest_mean is not None:
        p = welch_test(mean, sd, n, rest_mean, rest_sd, rest_n)
    return Cell(metric, MEAN, higher_is_better, mean, low, high, n, rest_mean, rest_n, p,
                "Welch t-test" if p is not None else "")


def quantile_cell(metric: str, *, q: float, value: float | None, n: int, sample: Sequence[float],
                  rest_sample: Sequence[float], rest_n: int, higher_is_better: bool | None,
                  test: bool) -> Cell:
    """A percentile: the exact value from SQL, the interval from the sample's order statistics;
    `test` runs Mann-Whitney on the samples (one latency test per slice, not one per
    percentile, so the same comparison is not counted twice in the correction)."""
    rest = float(np.quantile(rest_sample, q)) if len(rest_sample) else None
    if value is None or n <= 0:
        return Cell(metric, QUANTILE, higher_is_better, None, rest=rest, rest_n=rest_n)
    low, high = quantile_interval(sample, q)
    p = mann_whitney(sample, rest_sample) if test and higher_is_better is not None else None
    return Cell(metric, QUANTILE, higher_is_better, float(value), low, high, n, rest, rest_n, p,
                "Mann-Whitney U" if p is not None else "")


def _share(successes: int, n: int) -> float | None:
    return successes / n if n > 0 else None


# ------------------------------------------------------------------ the page


def ratio_to_best(value: float | None, best: float | None, higher_is_better: bool | None) -> float | None:
    """value / best for "good" metrics, best / value for "bad" ones (lower is better), so
    1.0 is the best slice and below 0.8 fails the four-fifths rule either way."""
    if value is None or best is None or higher_is_better is None:
        return None
    if higher_is_better:
        return value / best if best > 0 else (1.0 if value == 0 else None)
    if value == 0:
        return 1.0
    return best / value


def practically_large(cell: Cell) -> bool:
    """Worse than the rest, by a gap that matters: four-fifths rule on the ratio to the
    best slice, and a minimum absolute gap to the rest."""
    if cell.value is None or cell.rest is None or cell.higher_is_better is None or cell.ratio_to_best is None:
        return False
    gap = cell.rest - cell.value if cell.higher_is_better else cell.value - cell.rest
    if gap <= 0:
        return False
    minimum = MIN_RATE_GAP if cell.kind == RATE else MIN_RELATIVE_GAP * abs(cell.rest)
    return gap >= minimum and cell.ratio_to_best < FOUR_FIFTHS


def page_evaluate(rows: Sequence[Sequence[Cell]], *, alpha: float = ALPHA, min_n: int = MIN_N) -> list[list[Cell]]:
    """Fill p_adjusted (BH over every tested cell of the page), ratio_to_best (per metric,
    against the best slice with at least min_n) and flagged, for rows of cells (one row
    per slice)."""
    flat = [cell for row in rows for cell in row]
    adjusted = benjamini_hochberg([cell.p_value for cell in flat], alpha=alpha)
    best: dict[str, float] = {}
    for cell in flat:
        if cell.value is None or cell.higher_is_better is None or cell.n < min_n:
            continue
        current = best.get(cell.metric)
        better = current is None or (cell.value > current if cell.higher_is_better else cell.value < current)
        if better:
            best[cell.metric] = cell.value
    out: list[list[Cell]] = []
    i = 0
    for row in rows:
        new_row = []
        for cell in row:
            cell = replace(cell, p_adjusted=adjusted[i],
                           ratio_to_best=ratio_to_best(cell.value, best.get(cell.metric), cell.higher_is_better))
            i += 1
            flagged = (cell.p_adjusted is not None and cell.p_adjusted < alpha and cell.n >= min_n
                       and cell.rest_n >= min_n and practically_large(cell))
            new_row.append(replace(cell, flagged=flagged))
        out.append(new_row)
    return out


# ------------------------------------------------------------------ post-stratification


@dataclass(frozen=True)
class Weighted:
    value: float | None
    low: float | None
    high: float | None
    n: int  # votes behind it
    covered: float  # share of the traffic in slices that have any votes


def post_stratified_rate(strata: Sequence[tuple[int, int, int]], *, alpha: float = ALPHA) -> Weighted:
    """Traffic-weighted rate from (successes, votes, traces) per slice.

    Raw satisfaction weights each slice by its share of VOTES: if one locale votes five
    times as often, it dominates. Post-stratification weights each slice's rate by its
    share of TRAFFIC instead: sum_s w_s p_s with w_s = traces_s / traces (over the slices
    that have votes; `covered` says how much traffic that is). Its variance is
    sum_s w_s^2 p_s (1 - p_s) / n_s, giving a normal interval clipped to [0, 1]."""
    voted = [(x, n, t) for x, n, t in strata if n > 0]
    traffic = sum(t for _, _, t in voted)
    everything = sum(t for _, _, t in strata)
    if traffic <= 0:
        return Weighted(None, None, None, 0, 0.0)
    value = variance = 0.0
    for x, n, t in voted:
        w, p = t / traffic, x / n
        value += w * p
        variance += w * w * p * (1 - p) / n
    half = float(scipy_stats.norm.ppf(1 - alpha / 2)) * math.sqrt(variance)
    return Weighted(value, max(0.0, value - half), min(1.0, value + half), sum(n for _, n, _ in voted),
                    traffic / everything if everything else 0.0)
