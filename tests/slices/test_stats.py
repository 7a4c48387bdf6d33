"""slices/stats.py against numbers worked out by hand, and the page's flagging rules:
a planted gap is flagged, an equal slice is not, small slices never are, and with no
true difference the share of pages with any flag stays at or below 5%."""

from __future__ import annotations

import math

import numpy as np
import pytest

from slices import stats

Z = 1.959963984540054  # the 97.5% normal quantile


def test_wilson_matches_the_formula_worked_by_hand():
    # 7 of 20: p = .35, z^2/n = .19207; centre = (.35 + .096036) / 1.19207 = .374173;
    # half = z * sqrt(.35*.65/20 + z^2/1600) / 1.19207 = .181251.
    low, high = stats.wilson(7, 20)
    assert low == pytest.approx(0.18119, abs=1e-4)
    assert high == pytest.approx(0.56714, abs=1e-4)
    n, p = 20, 0.35
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    assert (low, high) == pytest.approx((centre - half, centre + half))


def test_wilson_stays_inside_0_1_and_has_no_interval_without_data():
    assert stats.wilson(0, 10)[0] == pytest.approx(0.0)
    assert stats.wilson(10, 10)[1] == pytest.approx(1.0)
    assert stats.wilson(0, 0) == (None, None)


def test_benjamini_hochberg_by_hand():
    # Sorted .005 .01 .03 .04 (m = 4): m p / rank = .02 .02 .04 .04, already monotone.
    assert stats.benjamini_hochberg([0.01, 0.04, None, 0.03, 0.005]) == pytest.approx(
        [0.02, 0.04, None, 0.04, 0.02])


def test_benjamini_hochberg_takes_the_running_minimum_from_the_top():
    # .01*3/1 = .03, .02*3/2 = .03, .9*3/3 = .9 -> .03 .03 .9; and .04*2/1=.08 > .045*2/2=.045 -> .045 .045
    assert stats.benjamini_hochberg([0.9, 0.02, 0.01]) == pytest.approx([0.9, 0.03, 0.03])
    assert stats.benjamini_hochberg([0.04, 0.045]) == pytest.approx([0.045, 0.045])


def test_post_stratified_rate_by_hand():
    # A: 8/10 up, 100 traces; B: 10/40 up, 300 traces. Raw = 18/50 = .36 (B's votes dominate);
    # weighted = .25*.8 + .75*.25 = .3875; var = .0625*.16/10 + .5625*.1875/40 = .00363672.
    result = stats.post_stratified_rate([(8, 10, 100), (10, 40, 300), (0, 0, 100)])
    half = Z * math.sqrt(0.0625 * 0.16 / 10 + 0.5625 * 0.1875 / 40)
    assert result.value == pytest.approx(0.3875)
    assert (result.low, result.high) == pytest.approx((0.3875 - half, 0.3875 + half))
    assert result.n == 50 and result.covered == pytest.approx(0.8)


def test_fisher_exact_is_used_for_small_counts_and_matches_the_hypergeometric_sum():
    # 1/10 vs 10/20: expected successes in the first row 10*11/30 = 3.7 < 5 -> Fisher.
    p, test = stats.two_proportion_test(1, 10, 10, 20)
    assert test == "Fisher exact"
    total, first, ups = 30, 10, 11

    def prob(k):
        return math.comb(ups, k) * math.comb(total - ups, first - k) / math.comb(total, first)

    observed = prob(1)
    by_hand = sum(prob(k) for k in range(0, 11) if prob(k) <= observed * (1 + 1e-7))
    assert p == pytest.approx(by_hand)
    assert p == pytest.approx(0.04851, abs=1e-5)


@pytest.mark.parametrize("table", [(1, 10, 10, 20), (0, 40, 9, 60), (3, 5, 2, 300), (2, 90000, 30, 160000),
                                   (7, 8, 1, 9)])
def test_fisher_exact_matches_scipy(table):
    from scipy.stats import fisher_exact

    x1, n1, x2, n2 = table
    expected = fisher_exact([[x1, n1 - x1], [x2, n2 - x2]], alternative="two-sided")[1]
    assert stats.fisher_exact_p(*table) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_large_counts_use_the_pooled_z_test():
    # 30/100 vs 20/100: pooled .25, se = sqrt(.25*.75*(2/100)) = .061237, z = 1.63299.
    p, test = stats.two_proportion_test(30, 100, 20, 100)
    assert test == "two-proportion z-test"
    assert p == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(1.632993 / math.sqrt(2)))), abs=1e-5)


def test_mean_sd_and_t_interval_from_sums():
    values = [1, 2, 3, 4, 5]
    mean, sd = stats.mean_sd(sum(values), sum(v * v for v in values), len(values))
    assert mean == 3 and sd == pytest.approx(math.sqrt(2.5))
    low, high = stats.t_interval(mean, sd, 5)
    assert (low, high) == pytest.approx((3 - 2.776445 * math.sqrt(2.5) / math.sqrt(5),
                                         3 + 2.776445 * math.sqrt(2.5) / math.sqrt(5)))


def test_ratio_to_best_is_inverted_for_bad_rates():
    assert stats.ratio_to_best(0.51, 0.82, True) == pytest.approx(0.51 / 0.82)
    assert stats.ratio_to_best(0.142, 0.06, False) == pytest.approx(0.06 / 0.142)  # 0.42
    assert stats.ratio_to_best(0.0, 0.0, False) == 1.0
    assert stats.ratio_to_best(0.3, 0.5, None) is None


def _rate_row(metric, successes, n, rest_successes, rest_n, higher_is_better=False):
    return stats.rate_cell(metric, successes=successes, n=n, rest_successes=rest_successes, rest_n=rest_n,
                           higher_is_better=higher_is_better)


def _page(slices, metric="hallucination_rate", higher_is_better=False):
    """slices: [(successes, n)]; each is compared with the sum of the others."""
    total_x, total_n = sum(x for x, _ in slices), sum(n for _, n in slices)
    rows = [[_rate_row(metric, x, n, total_x - x, total_n - n, higher_is_better)] for x, n in slices]
    return [row[0] for row in stats.page_evaluate(rows)]


def test_planted_disparity_is_flagged_and_the_equal_slice_is_not():
    # de-DE: 57/400 = 14.2% hallucinations; en-US 60/1000 and fr-FR 36/600 = 6%.
    de, en, fr = _page([(57, 400), (60, 1000), (36, 600)])
    assert de.flagged and de.p_adjusted < 0.05
    assert de.ratio_to_best == pytest.approx(0.06 / 0.1425)
    assert not en.flagged and not fr.flagged
    assert en.ratio_to_best == pytest.approx(1.0)


def test_a_significant_but_tiny_gap_is_not_flagged():
    # 2.6% vs 2.0% on 40,000 traces each: p < .001 but the gap is 0.6 points.
    a, b = _page([(1040, 40000), (800, 40000)])
    assert a.p_adjusted < 0.001
    assert not a.flagged and not b.flagged


def test_small_slices_are_never_flagged():
    # 20 of 25 hallucinated (80% against 5%): overwhelming, but n = 25 < 30.
    small, big = _page([(20, 25), (50, 1000)])
    assert not big.flagged  # its rest is the small slice: also below 30
    assert small.p_adjusted < 1e-6
    assert not small.flagged
    assert stats.MIN_N == 30


def test_better_slices_are_not_flagged_for_being_better():
    good, bad = _page([(95, 100), (60, 100)], metric="thumbs_up_rate", higher_is_better=True)
    assert bad.flagged and not good.flagged


def test_descriptive_cells_are_never_tested():
    cell = _rate_row("feedback_exposure", 3, 100, 50, 100, higher_is_better=None)
    assert cell.p_value is None
    assert stats.page_evaluate([[cell]])[0][0].flagged is False


def test_quantile_interval_is_the_textbook_order_statistic_interval():
    # n = 100, median: Binomial(100, .5) puts 95% between 40 and 60 values below it, so the
    # interval is [x(40), x(61)] (1-based order statistics): for 1..100 that is [40, 61].
    assert stats.quantile_interval(list(range(100, 0, -1)), 0.5) == (40.0, 61.0)
    assert stats.quantile_interval([5.0], 0.5) == (None, None)


def test_latency_cell_uses_mann_whitney_and_an_interval_around_the_value():
    rng = np.random.default_rng(1)
    slow = rng.lognormal(7.0, 0.4, 300)
    rest = rng.lognormal(6.5, 0.4, 300)
    cell = stats.quantile_cell("latency_p50", q=0.5, value=float(np.median(slow)), n=300, sample=slow,
                               rest_sample=rest, rest_n=3000, higher_is_better=False, test=True)
    assert cell.test == "Mann-Whitney U" and cell.p_value < 1e-10
    assert cell.low < cell.value < cell.high
    assert cell.rest == pytest.approx(float(np.quantile(rest, 0.5)))
    p95 = stats.quantile_cell("latency_p95", q=0.95, value=float(np.quantile(slow, 0.95)), n=300, sample=slow,
                              rest_sample=rest, rest_n=3000, higher_is_better=False, test=False)
    assert p95.p_value is None and p95.low < p95.value < p95.high


def test_no_true_difference_keeps_pages_with_any_flag_at_or_below_nominal():
    """400 synthetic pages: 8 slices × 6 rate metrics, every slice with the same true
    rates (between 5% and 80%). The share of pages with any flag must stay <= 5% (plus
    Monte-Carlo slack of 2 standard errors)."""
    rng = np.random.default_rng(2026)
    rates = [0.05, 0.1, 0.2, 0.4, 0.6, 0.8]
    pages = 400
    with_flag = 0
    for _ in range(pages):
        sizes = rng.integers(30, 800, size=8)
        successes = [rng.binomial(sizes, r) for r in rates]
        totals_x = [int(s.sum()) for s in successes]
        total_n = int(sizes.sum())
        rows = []
        for i, n in enumerate(sizes):
            rows.append([_rate_row(f"m{j}", int(successes[j][i]), int(n), totals_x[j] - int(successes[j][i]),
                                   total_n - int(n), higher_is_better=j % 2 == 0) for j in range(len(rates))])
        if any(cell.flagged for row in stats.page_evaluate(rows) for cell in row):
            with_flag += 1
    share = with_flag / pages
    assert share <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / pages), share


def test_batched_z_tests_match_statsmodels_proportions_ztest():
    from statsmodels.stats.proportion import proportions_ztest

    cases = [(30, 100, 20, 100), (57, 400, 96, 1600), (400, 1000, 380, 1000), (15, 120, 40, 900)]
    cells = stats.rate_cells("m", successes=[c[0] for c in cases], n=[c[1] for c in cases],
                             rest_successes=[c[2] for c in cases], rest_n=[c[3] for c in cases],
                             higher_is_better=False)
    for (x1, n1, x2, n2), cell in zip(cases, cells, strict=True):
        assert cell.test == "two-proportion z-test"
        assert cell.p_value == pytest.approx(proportions_ztest([x1, x2], [n1, n2])[1], rel=1e-9)
        assert (cell.low, cell.high) == pytest.approx(stats.wilson(x1, n1))
    small = stats.rate_cells("m", successes=[1, 0], n=[10, 0], rest_successes=[10, 5], rest_n=[20, 50],
                             higher_is_better=False)
    assert small[0].test == "Fisher exact" and small[0].p_value == pytest.approx(0.04851, abs=1e-5)
    assert small[1].value is None and small[1].p_value is None
