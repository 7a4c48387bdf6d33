"""Agreement statistics (feedback/agreement.py) against values computed by hand."""

from __future__ import annotations

import pytest

from annotation.agreement import agreement_for, level_of_measurement
from scores.models import DataType, ScoreConfig

LIKERT = ScoreConfig(name="helpfulness", data_type=DataType.NUMERIC, min_value=1, max_value=5)
SAFETY = ScoreConfig(name="safety", data_type=DataType.BOOLEAN)
PREFERRED = ScoreConfig(name="preferred", data_type=DataType.CATEGORICAL, categories=["A", "B", "tie"])


def two_raters(a: list, b: list) -> dict:
    return {i: {"ann": x, "bob": y} for i, (x, y) in enumerate(zip(a, b, strict=True))}


def test_levels_of_measurement():
    assert level_of_measurement(LIKERT) == "ordinal"
    assert (
        level_of_measurement(ScoreConfig(name="x", data_type=DataType.NUMERIC, min_value=0, max_value=1000))
        == "interval"
    )
    assert level_of_measurement(SAFETY) == "nominal"
    assert level_of_measurement(PREFERRED) == "nominal"


def test_two_raters_binary():
    # 10 items. Agree on 1-5 (yes) and 8-9 (no); disagree on 6, 7, 10.
    # p_o = 7/10; p_e = 0.7*0.6 + 0.3*0.4 = 0.54; kappa = 0.16 / 0.46.
    # Coincidences: o_11 = 10, o_00 = 4, o_10 = o_01 = 3; n_1 = 13, n_0 = 7, n = 20;
    # alpha = 1 - (n-1) * (o_10 + o_01) / (2 n_1 n_0) = 1 - 19*6/182.
    a = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    b = [1, 1, 1, 1, 1, 0, 0, 0, 0, 1]

    result = agreement_for(SAFETY, two_raters(a, b))

    assert result.items == 10 and result.raters == 2
    assert result.percent == pytest.approx(0.7)
    assert result.kappa == pytest.approx(0.16 / 0.46)
    assert result.alpha == pytest.approx(1 - 19 * 6 / 182)


def test_two_raters_ordinal_likert():
    # Items (1,1), (2,3), (3,3). n_1 = 2, n_2 = 1, n_3 = 3, n = 6.
    # Ordinal distances: d(1,2) = (3 - 1.5)^2 = 2.25, d(1,3) = (6 - 2.5)^2 = 12.25, d(2,3) = (4 - 2)^2 = 4.
    # D_o = (o_23 + o_32) * 4 / 6 = 8/6; D_e = 2 * (2*1*2.25 + 2*3*12.25 + 1*3*4) / 30 = 6.
    # alpha = 1 - (8/6)/6 = 7/9.  Kappa (unweighted): p_o = 2/3, p_e = 1/9 + 2/9 = 1/3 -> 0.5.
    result = agreement_for(LIKERT, two_raters([1, 2, 3], [1, 3, 3]))

    assert result.level == "ordinal"
    assert result.percent == pytest.approx(2 / 3)
    assert result.kappa == pytest.approx(0.5)
    assert result.alpha == pytest.approx(7 / 9)


def test_three_raters_nominal_uses_alpha_only():
    # Units (A,A,A), (A,A,B), (B,B,B): o_AA = 3 + 1, o_BB = 3, o_AB = o_BA = 1 (pairs weigh 1/(m-1) = 1/2).
    # n_A = 5, n_B = 4, n = 9: alpha = 1 - 8 * 2 / (2 * 5 * 4) = 0.6.
    ratings = {1: {"a": "A", "b": "A", "c": "A"}, 2: {"a": "A", "b": "A", "c": "B"}, 3: {"a": "B", "b": "B", "c": "B"}}

    result = agreement_for(PREFERRED, ratings)

    assert result.raters == 3
    assert result.kappa is None
    assert result.percent == pytest.approx(2 / 3)
    assert result.alpha == pytest.approx(0.6)


def test_missing_ratings_are_allowed_for_alpha():
    # Rater c only saw item 1; items with a single rating are left out entirely.
    ratings = {1: {"a": 5, "b": 5, "c": 5}, 2: {"a": 1, "b": 1}, 3: {"a": 3}}

    result = agreement_for(LIKERT, ratings)

    assert result.items == 2
    assert result.alpha == pytest.approx(1.0)
    assert result.percent == 1.0


def test_items_with_one_review_give_no_statistics():
    result = agreement_for(LIKERT, {1: {"a": 3}, 2: {"b": 4}})

    assert (result.items, result.percent, result.kappa, result.alpha) == (0, None, None, None)
    assert "two reviews" in result.note


def test_identical_ratings_everywhere_report_undefined_not_nan():
    result = agreement_for(SAFETY, two_raters([1, 1, 1], [1, 1, 1]))

    assert result.percent == 1.0
    assert result.kappa is None and result.alpha is None
    assert "undefined" in result.note
