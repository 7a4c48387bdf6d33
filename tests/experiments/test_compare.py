"""Comparison statistics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from experiments import compare
from experiments.compare import ItemPair


def test_mcnemar_exact_uses_only_discordant_pairs():
    # 1 item A-pass/B-fail, 6 items A-fail/B-pass (+ 5 concordant): p = 2 * P(X <= 1 | n=7, 1/2)
    # = 2 * (1 + 7) / 128 = 0.125.
    a = np.array([1] + [0] * 6 + [1, 1, 1, 0, 0])
    b = np.array([0] + [1] * 6 + [1, 1, 1, 0, 0])
    worse, better, p = compare.mcnemar_exact(a, b)
    assert (worse, better) == (1, 6) and p == pytest.approx(0.125)
    assert compare.mcnemar_exact(a, a)[2] == 1.0


def test_wilcoxon_signed_rank_exact_p():
    # Five positive differences: W- = 0; of the 2^5 sign patterns only all-positive and
    # all-negative are as extreme, so p = 2/32 = 0.0625.
    assert compare.wilcoxon_p(np.array([0.1, 0.2, 0.3, 0.4, 0.5])) == pytest.approx(0.0625)
    # Ranks 1..4 with signs + - + +: W- = 2; patterns with W- <= 2 (or W+ <= 2): {}, {1}, {2},
    # and their mirrors, so p = 2 * 3/16 = 0.375.
    assert compare.wilcoxon_p(np.array([0.1, -0.2, 0.3, 0.4])) == pytest.approx(0.375)
    assert compare.wilcoxon_p(np.zeros(4)) == 1.0


def test_bootstrap_interval_of_paired_differences():
    low, high = compare.bootstrap_interval(np.array([0.5] * 10))
    assert (low, high) == (0.5, 0.5)  # every resample of a constant has the same mean
    diffs = np.array([0.0, 1.0] * 50)  # mean 0.5, sd of the mean = 0.5 / sqrt(100) = 0.05
    low, high = compare.bootstrap_interval(diffs)
    assert low == pytest.approx(0.5 - 1.96 * 0.05, abs=0.015) and high == pytest.approx(0.5 + 1.96 * 0.05, abs=0.015)


def _pair(i, a, b, **kw):
    base = dict(item_id=i, input=f"q{i}", expected=None, output_a="x", output_b="y", error_a="", error_b="",
                trace_a="a" * 32, trace_b="b" * 32, scores_a=a, scores_b=b)
    base.update(kw)
    return ItemPair(**base)


def test_compare_flags_regressions_and_says_which_run_is_better():
    pairs = [_pair(i, {"exact_match": 0.0}, {"exact_match": 1.0}) for i in range(10)]
    pairs.append(_pair(10, {"exact_match": 1.0}, {"exact_match": 0.0}))
    pairs.append(_pair(11, {"exact_match": 1.0}, {}, error_b="HTTP 500 from the model endpoint", output_b=None))
    result = compare.compare(pairs, ["exact_match"])
    metric = result.metrics[0]
    # 10 improved, 1 worse: p = 2 * (1 + 11) / 2048.
    assert (metric.n, metric.better_items, metric.worse_items) == (11, 10, 1)
    assert metric.p == pytest.approx(24 / 2048) and metric.verdict == "better"
    assert metric.diff == pytest.approx(9 / 11)
    assert [p.item_id for p in result.regressions] == [10, 11] and result.regressions[1].worse == ["error"]
    assert result.verdict.startswith("B is better than A on exact_match (+81.8 pp")
    assert result.verdict.endswith("2 items got worse.")


def test_lower_is_better_metrics_and_multiple_testing():
    pairs = [_pair(i, {"toxicity": 0.9, "embedding_similarity": 0.5}, {"toxicity": 0.1, "embedding_similarity": 0.5})
             for i in range(8)]
    result = compare.compare(pairs, ["toxicity", "embedding_similarity"])
    tox, sim = result.metrics
    assert tox.verdict == "better" and tox.diff == pytest.approx(-0.8)
    assert tox.p == pytest.approx(2 / 256) and tox.p_adjusted == pytest.approx(2 / 256 * 2 / 1)
    assert sim.verdict == "no difference" and sim.p == 1.0
    assert result.regressions == []
