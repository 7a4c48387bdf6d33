"""drift/stats.py against values worked out by hand, and the embedding statistics on
synthetic vectors: a planted topic is found, an unchanged window is not flagged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drift import stats

# --- PSI ----------------------------------------------------------------------------------------


def test_numeric_psi_uses_baseline_quantile_bins():
    # Baseline 1..10 in two bins cut at its median 5.5: shares 0.5 / 0.5.
    # Current: 3 values <= 5.5 and 7 above: shares 0.3 / 0.7.
    # PSI = (0.3-0.5) ln(0.3/0.5) + (0.7-0.5) ln(0.7/0.5) = 0.102165 + 0.067294
    baseline = list(range(1, 11))
    current = [1, 2, 3, 6, 7, 8, 9, 10, 11, 12]
    assert stats.baseline_bin_edges(baseline, bins=2).tolist() == [5.5]
    assert stats.psi_numeric(baseline, current, bins=2) == pytest.approx(0.1694596, abs=1e-6)


def test_numeric_psi_of_identical_samples_is_zero_and_of_a_disjoint_shift_is_large():
    baseline = np.arange(1000.0)
    assert stats.psi_numeric(baseline, baseline) == pytest.approx(0.0)
    # Everything beyond the baseline's top decile: one bin holds all current values,
    # nine are empty and get EPSILON. PSI = (1-0.1) ln(1/0.1) + 9 (1e-4-0.1) ln(1e-4/0.1)
    expected = 0.9 * math.log(10) + 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert stats.psi_numeric(baseline, baseline + 5000) == pytest.approx(expected, rel=1e-3)


def test_values_equal_to_an_edge_fall_in_the_bin_the_edge_closes():
    # Edges of [1, 1, 1, 2] in two bins: median 1. All the 1s are in the first bin
    # (3/4), the 2 in the second (1/4); a current [1, 2] gives 1/2 and 1/2.
    assert stats.baseline_bin_edges([1, 1, 1, 2], bins=2).tolist() == [1.0]
    expected = (0.5 - 0.75) * math.log(0.5 / 0.75) + (0.5 - 0.25) * math.log(0.5 / 0.25)
    assert stats.psi_numeric([1, 1, 1, 2], [1, 2], bins=2) == pytest.approx(expected)


def test_categorical_psi_gives_an_unseen_category_epsilon():
    # Shares b: a .5, b .5, c 0 -> 1e-4; current a .8, b .1, c .1.
    # (.3) ln 1.6 + (-.4) ln .2 + (.1 - 1e-4) ln(.1 / 1e-4) = .141001 + .643775 + .690085
    psi = stats.psi_categorical({"a": 50, "b": 50}, {"a": 80, "b": 10, "c": 10})
    assert psi == pytest.approx(1.4748611, abs=1e-6)


def test_psi_status_thresholds():
    assert stats.psi_status(None) == "insufficient"
    assert stats.psi_status(0.0) == "ok"
    assert stats.psi_status(0.0999) == "ok"
    assert stats.psi_status(0.1) == "warn"
    assert stats.psi_status(0.2499) == "warn"
    assert stats.psi_status(0.25) == "alert"


# --- tests --------------------------------------------------------------------------------------


def test_ks_statistic_and_exact_p_value():
    # ECDFs of [1,2,3,4] and [3,4,5,6] differ by at most 1/2 (at 2 and at 3).
    # Exact p for n = m = 4: of the C(8,4) = 70 merge orders, 2^4 = 16 keep the ECDFs
    # within 1/4 of each other, so P(D >= 1/2) = 54/70.
    result = stats.ks([1, 2, 3, 4], [3, 4, 5, 6])
    assert result.test == "ks"
    assert result.statistic == pytest.approx(0.5)
    assert result.p_value == pytest.approx(54 / 70)


def test_chi_square_of_a_two_by_two_table_without_continuity_correction():
    # [[10, 20], [20, 10]]: every expected count is 15, chi2 = 4 * 5^2 / 15 = 6.667;
    # 1 degree of freedom, p = erfc(sqrt(6.667 / 2)) = 0.009823.
    result = stats.chi_square({"a": 10, "b": 20}, {"a": 20, "b": 10})
    assert result.statistic == pytest.approx(20 / 3)
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(10 / 3)))
    assert result.p_value == pytest.approx(0.009823, abs=1e-6)


def test_chi_square_needs_two_categories():
    assert stats.chi_square({"a": 10}, {"a": 3}) is None
    assert stats.chi_square({"a": 10, "b": 0}, {"a": 3}) is None


# --- embeddings ---------------------------------------------------------------------------------


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def topic_vectors(rng, centre: np.ndarray, n: int, spread: float = 0.35) -> np.ndarray:
    return unit(centre + spread * rng.standard_normal((n, len(centre))) / math.sqrt(len(centre)))


@pytest.fixture
def centres():
    rng = np.random.default_rng(1)
    return unit(rng.standard_normal((6, 384)))


def mixture(rng, centres, n: int, topics) -> np.ndarray:
    picks = rng.choice(topics, size=n)
    return np.vstack([topic_vectors(rng, centres[k], 1) for k in picks])


def test_unchanged_window_has_auc_near_half_and_no_new_topic(centres):
    rng = np.random.default_rng(2)
    baseline = mixture(rng, centres, 400, [0, 1, 2, 3])
    current = mixture(rng, centres, 400, [0, 1, 2, 3])

    result = stats.embedding_drift(baseline, current)

    assert abs(result.auc - 0.5) < 0.05, result
    assert result.status == "ok" and not result.drifted
    assert result.centroid_distance < 0.01
    assert stats.far_clusters(current, stats.nearest_distances(current, baseline)) == []


def test_planted_topic_drives_auc_up_and_is_the_one_new_topic(centres):
    rng = np.random.default_rng(3)
    baseline = mixture(rng, centres, 400, [0, 1, 2, 3])
    current = np.vstack([mixture(rng, centres, 300, [0, 1, 2, 3]), topic_vectors(rng, centres[5], 100)])

    result = stats.embedding_drift(baseline, current)
    topics = stats.far_clusters(current, stats.nearest_distances(current, baseline))

    # A quarter of the current window is separable: AUC ~ 0.5 + 0.25 / 2.
    assert result.auc > 0.6 and result.drifted
    assert len(topics) == 1
    assert sorted(topics[0].members) == list(range(300, 400))
    assert topics[0].share == pytest.approx(0.25)
    assert topics[0].mean_distance > stats.FAR_DISTANCE


def test_too_few_embeddings_give_no_verdict():
    result = stats.embedding_drift(np.ones((5, 4)), np.ones((50, 4)))
    assert result.auc is None and result.status == "insufficient" and result.n_baseline == 5


def test_topics_smaller_than_the_minimum_are_dropped(centres):
    rng = np.random.default_rng(4)
    baseline = mixture(rng, centres, 200, [0, 1])
    current = np.vstack([mixture(rng, centres, 196, [0, 1]), topic_vectors(rng, centres[4], 4)])
    assert stats.far_clusters(current, stats.nearest_distances(current, baseline)) == []


def test_topic_terms_are_those_over_represented_against_the_baseline():
    baseline = ["How do I reset my password?", "When am I billed?", "How do I export my data?",
                "Can I get a refund for my plan?"] * 5
    gpu = ["Which GPU instances support CUDA 12?", "Is there a GPU quota for CUDA jobs?",
           "How do I attach a GPU to my instance?"]
    billing = ["Why was I billed twice for invoices?", "Where are my invoices?"]

    terms = stats.topic_terms([gpu, billing], baseline, top=2)

    assert terms[0] == ["gpu", "cuda"]
    assert terms[1][0] == "invoices"
    assert "billed" not in terms[1]  # common in the baseline too


def test_feature_status_is_ok_when_the_shift_is_not_significant():
    assert stats.feature_status(0.3, 0.01) == "alert"
    assert stats.feature_status(0.15, 0.049) == "warn"
    assert stats.feature_status(0.3, 0.05) == "ok"  # PSI of noise in small windows
    assert stats.feature_status(0.3, None) == "alert"  # one category only: no test, PSI decides
    assert stats.feature_status(None, None) == "insufficient"
