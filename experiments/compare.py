"""Side-by-side comparison of two runs (A = baseline, B = candidate) over the same items.

Per metric, on the items both runs scored (paired): the mean difference B - A with a
paired bootstrap 95% interval (items resampled together, so per-item difficulty cancels),
McNemar's exact test for pass/fail metrics (only the discordant items carry information)
and the Wilcoxon signed-rank test for numeric ones. p-values are adjusted across the
run's metrics with Benjamini-Hochberg before any metric is called better or worse, so
adding evaluators does not manufacture verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import wilcoxon
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from experiments import evaluators

BOOTSTRAP_RESAMPLES = 2000
ALPHA = 0.05
# A numeric score that moves by less than this on one item is not called a regression.
NUMERIC_REGRESSION_DELTA = 0.1


def bootstrap_interval(diffs: np.ndarray, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean paired difference (deterministic for a seed)."""
    if len(diffs) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(diffs), size=(resamples, len(diffs)))
    means = diffs[picks].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """(A pass & B fail, A fail & B pass, exact two-sided p) for paired 0/1 outcomes."""
    worse = int(np.sum((a == 1) & (b == 0)))
    better = int(np.sum((a == 0) & (b == 1)))
    if worse + better == 0:
        return worse, better, 1.0
    both = int(np.sum((a == 1) & (b == 1)))
    neither = int(np.sum((a == 0) & (b == 0)))
    return worse, better, float(mcnemar([[both, worse], [better, neither]], exact=True).pvalue)


def wilcoxon_p(diffs: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences; 1.0 when all are zero."""
    nonzero = diffs[diffs != 0]
    if len(nonzero) == 0:
        return 1.0
    return float(wilcoxon(nonzero).pvalue)


@dataclass
class MetricComparison:
    name: str
    kind: str  # pass_fail | numeric
    n: int  # paired items
    mean_a: float | None
    mean_b: float | None
    diff: float | None  # mean of B - A
    low: float | None
    high: float | None
    p: float | None
    p_adjusted: float | None = None
    test: str = ""
    higher_is_better: bool = True
    worse_items: int = 0  # pass/fail: A pass, B fail
    better_items: int = 0
    verdict: str = "no difference"  # better | worse | no difference | not enough data


@dataclass
class ItemPair:
    item_id: int
    input: Any
    expected: str | None
    output_a: str | None
    output_b: str | None
    error_a: str
    error_b: str
    trace_a: str
    trace_b: str
    scores_a: dict[str, float]
    scores_b: dict[str, float]
    worse: list[str] = field(default_factory=list)  # metrics (or "error") on which B regressed


@dataclass
class Comparison:
    metrics: list[MetricComparison]
    pairs: list[ItemPair]
    regressions: list[ItemPair]
    verdict: str


def _worse(name: str, a: float, b: float, pass_fail: bool) -> bool:
    sign = 1 if evaluators.higher_is_better(name) else -1
    delta = (b - a) * sign
    return delta < 0 if pass_fail else delta <= -NUMERIC_REGRESSION_DELTA


def compare(pairs: list[ItemPair], metric_names: list[str], *, seed: int = 0) -> Comparison:
    metrics: list[MetricComparison] = []
    for name in metric_names:
        both = [(p.scores_a[name], p.scores_b[name]) for p in pairs if name in p.scores_a and name in p.scores_b]
        kind = "pass_fail" if evaluators.is_pass_fail(name, [v for pair in both for v in pair]) else "numeric"
        m = MetricComparison(name, kind, len(both), None, None, None, None, None, None,
                             higher_is_better=evaluators.higher_is_better(name))
        if both:
            a = np.array([x for x, _ in both], dtype=float)
            b = np.array([y for _, y in both], dtype=float)
            diffs = b - a
            m.mean_a, m.mean_b, m.diff = float(a.mean()), float(b.mean()), float(diffs.mean())
            m.low, m.high = bootstrap_interval(diffs, seed=seed)
            if kind == "pass_fail":
                m.worse_items, m.better_items, m.p = mcnemar_exact(a, b)
                m.test = "McNemar exact"
            else:
                m.p = wilcoxon_p(diffs)
                m.test = "Wilcoxon signed-rank"
        metrics.append(m)
    tested = [m for m in metrics if m.p is not None]
    if tested:
        adjusted = multipletests([m.p for m in tested], method="fdr_bh")[1]
        for m, p in zip(tested, adjusted, strict=True):
            m.p_adjusted = float(p)
            if m.n < 2:
                m.verdict = "not enough data"
            elif p < ALPHA and m.diff:
                m.verdict = "better" if (m.diff > 0) == m.higher_is_better else "worse"
    for m in metrics:
        if m.p is None:
            m.verdict = "not enough data"
    kinds = {m.name: m.kind == "pass_fail" for m in metrics}
    for p in pairs:
        if p.error_b and not p.error_a:
            p.worse.append("error")
        for name in metric_names:
            if name in p.scores_a and name in p.scores_b and _worse(name, p.scores_a[name], p.scores_b[name],
                                                                    kinds[name]):
                p.worse.append(name)
    regressions = [p for p in pairs if p.worse]
    return Comparison(metrics, pairs, regressions, verdict_sentence(metrics, len(pairs), len(regressions)))


def _fmt(m: MetricComparison) -> str:
    scale, unit = (100, " pp") if m.kind == "pass_fail" else (1, "")
    return f"{m.name} ({m.diff * scale:+.{1 if scale == 100 else 3}f}{unit}, adjusted p={m.p_adjusted:.3g})"


def verdict_sentence(metrics: list[MetricComparison], items: int, regressions: int) -> str:
    better = [m for m in metrics if m.verdict == "better"]
    worse = [m for m in metrics if m.verdict == "worse"]
    tail = f" over {items} paired items; {regressions} item{'s' if regressions != 1 else ''} got worse."
    if not metrics:
        return f"No evaluators to compare{tail}"
    if better and not worse:
        return "B is better than A on " + ", ".join(_fmt(m) for m in better) + " and worse on none" + tail
    if worse and not better:
        return "B is worse than A on " + ", ".join(_fmt(m) for m in worse) + " and better on none" + tail
    if better and worse:
        return ("Mixed: B is better on " + ", ".join(_fmt(m) for m in better) + " but worse on "
                + ", ".join(_fmt(m) for m in worse) + tail)
    return "No significant difference between A and B on any metric (Benjamini-Hochberg, 5%)" + tail


def word_diff(a: str | None, b: str | None) -> list[tuple[str, str]]:
    """[(op, text)] with op "=", "-" (only in A) or "+" (only in B), word by word."""
    import difflib
    import re

    left, right = re.findall(r"\S+|\s+", a or ""), re.findall(r"\S+|\s+", b or "")
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=left, b=right, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("=", "".join(left[i1:i2])))
            continue
        if i2 > i1:
            out.append(("-", "".join(left[i1:i2])))
        if j2 > j1:
            out.append(("+", "".join(right[j1:j2])))
    return out
