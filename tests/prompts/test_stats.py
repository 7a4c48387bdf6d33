"""Statistics against numbers worked out by hand (formulas in the comments)."""

from __future__ import annotations

import pytest

from prompts import stats

Z = 1.959963984540054  # 97.5th percentile of the standard normal


def test_wilson_interval_for_45_of_60():
    # p = .75, z^2/n = .0640243; centre = (p + z^2/2n) / (1 + z^2/n) = .7349570
    # half = z * sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n) = .1072777
    e = stats.rate_estimate(45, 60)
    assert e.value == pytest.approx(0.75)
    assert (e.low, e.high) == (pytest.approx(0.6276793, abs=1e-6), pytest.approx(0.8422348, abs=1e-6))
    assert e.n == 60


def test_no_observations_is_no_data():
    assert not stats.rate_estimate(0, 0).has_data
    assert not stats.mean_estimate(None, None, 0).has_data


def test_t_interval_for_a_mean():
    # 4.2 +- t(.975, 35) * 0.9 / sqrt(36) = 4.2 +- 2.0301079 * 0.15 = 4.2 +- 0.3045162
    e = stats.mean_estimate(4.2, 0.9, 36)
    assert (e.low, e.high) == (pytest.approx(3.8954838, abs=1e-6), pytest.approx(4.5045162, abs=1e-6))


def test_two_proportion_z_test_and_newcombe_interval():
    # A 40/100, B 60/100. Pooled p = .5; se = sqrt(.5 * .5 * (1/100 + 1/100)) = .0707107;
    # z = .2 / .0707107 = 2.8284271; two-sided p = erfc(z / sqrt 2) = .0046777.
    # Newcombe: Wilson(60/100) = [.5020026, .6905987], Wilson(40/100) = [.3094013, .4979974];
    # low = .2 - sqrt((.6 - .5020026)^2 + (.4979974 - .4)^2) = .0614107
    # high = .2 + sqrt((.6905987 - .6)^2 + (.4 - .3094013)^2) = .3281259
    c = stats.compare_rates("Thumbs-up rate", a_successes=40, a_n=100, b_successes=60, b_n=100, unit_noun="votes")
    assert c.enough_data and c.significant
    assert c.diff == pytest.approx(20.0)
    assert c.p_value == pytest.approx(0.0046777, abs=1e-6)
    assert (c.low, c.high) == (pytest.approx(6.14107, abs=1e-4), pytest.approx(32.81259, abs=1e-4))
    assert c.verdict == (
        "B's thumbs-up rate is 20.0 points higher than A's, 95% CI [6.1, 32.8], "
        "significant (two-proportion z-test, p = 0.00468)."
    )


def test_small_samples_get_no_verdict_and_say_what_is_needed():
    c = stats.compare_rates("Thumbs-up rate", a_successes=10, a_n=12, b_successes=30, b_n=40, unit_noun="votes")
    assert not c.enough_data and c.p_value is None
    assert c.verdict == (
        "Not enough data for thumbs-up rate: A has 12 and B has 40 votes; "
        "at least 30 per version are needed (18 more for A)."
    )


def test_non_significant_rates_say_how_much_data_would_be_needed():
    # Cohen's h for .50 vs .55 = 2 asin(sqrt .55) - 2 asin(sqrt .5) = .1001674. Each arm's
    # arcsine-transformed rate has variance 1/n, their difference 2/n, so
    # n = 2 * ((1.959964 + 0.841621) / h)^2 = 2 * 782.27 = 1564.5 -> 1,565 per arm.
    c = stats.compare_rates("Thumbs-up rate", a_successes=50, a_n=100, b_successes=55, b_n=100, unit_noun="votes")
    assert not c.significant
    assert "not significant" in c.verdict
    assert "About 1,565 votes per version would be needed" in c.verdict


def test_welch_t_test_from_summaries():
    # A: mean 10, sd 2, n 50; B: mean 11, sd 3, n 50.
    # se = sqrt(4/50 + 9/50) = .5099020; t = 1 / se = 1.9611614
    # df = .26^2 / ((.08^2 + .18^2) / 49) = 85.3711; p = .0531198
    # CI = 1 +- t(.975, 85.37) * se = 1 +- 1.9881431 * .5099020 = 1 +- 1.0137581
    c = stats.compare_means(
        "User rating", stats.Summary(10, 2, 50), stats.Summary(11, 3, 50), unit="stars", digits=2, unit_noun="ratings"
    )
    assert c.p_value == pytest.approx(0.0531198, abs=1e-6)
    assert (c.low, c.high) == (pytest.approx(-0.0137581, abs=1e-6), pytest.approx(2.0137581, abs=1e-6))
    assert not c.significant


def test_mann_whitney_on_shifted_latencies():
    # A = 100..129 ms, B = 110..139 ms (n = 30 each; 20 tied pairs at 110..129).
    # U(B) = sum over b of #(a < b) + .5 #(a = b) = sum_{k<20} (10 + k + .5) + 10 * 30 = 700
    # mu = 450; sigma^2 = 900/12 * (61 - 20 * (2^3 - 2) / (60 * 59)) = 4572.458 -> 67.61995
    # z = (700 - 450 - .5) / 67.61995 = 3.6897395 (continuity corrected); p = .00022448
    a = list(range(100, 130))
    b = list(range(110, 140))
    c = stats.compare_samples("Median latency", a, b, statistic="median", unit="ms", digits=0, unit_noun="traces")
    assert c.p_value == pytest.approx(0.00022448, abs=1e-7)
    assert c.diff == pytest.approx(10.0)  # medians 124.5 - 114.5
    assert c.low < 10 < c.high and c.significant
    assert c.verdict.startswith("B's median latency is 10 ms higher than A's, 95% CI [")


def test_identical_samples_are_not_significant():
    c = stats.compare_samples("Cost", [1.0] * 40, [1.0] * 40, statistic="mean", unit="USD", digits=6, unit_noun="x")
    assert c.p_value == 1.0 and not c.significant and c.diff == 0
