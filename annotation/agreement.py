"""Inter-reviewer agreement per score config, for items with more than one review.

- percent agreement: share of multiply-reviewed items where every reviewer gave the
  same value (strict; easy to explain, inflated by chance on skewed data);
- Cohen's kappa (scikit-learn) when exactly two reviewers rated the items — chance-
  corrected, unweighted (categories are either equal or not);
- Krippendorff's alpha (`krippendorff` package) for any number of reviewers and
  missing ratings — ordinal for Likert scales (3 vs 4 is a smaller disagreement than 1
  vs 5), interval for open numeric ranges, nominal for booleans and categories.

A statistic that is undefined for the data (one reviewer, every rating identical) is
None with the reason, never a misleading 0 or NaN.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score

from scores.models import DataType, ScoreConfig


@dataclass(frozen=True)
class Agreement:
    config: str
    level: str  # level of measurement used for alpha
    items: int  # items with two or more ratings
    raters: int
    percent: float | None
    kappa: float | None
    alpha: float | None
    note: str = ""


def level_of_measurement(config: ScoreConfig) -> str:
    if config.data_type == DataType.NUMERIC:
        return "ordinal" if config.is_likert else "interval"
    return "nominal"


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def agreement_for(config: ScoreConfig, ratings: Mapping[Any, Mapping[str, Any]]) -> Agreement:
    """`ratings`: item -> rater -> value, for one config."""
    level = level_of_measurement(config)
    multi = {item: by_rater for item, by_rater in ratings.items() if len(by_rater) >= 2}
    raters = sorted({rater for by_rater in multi.values() for rater in by_rater})
    if not multi:
        return Agreement(config.name, level, 0, len(raters), None, None, None, "no item has two reviews yet")

    agreeing = sum(1 for by_rater in multi.values() if len(set(by_rater.values())) == 1)
    percent = agreeing / len(multi)

    kappa = None
    note = ""
    if len(raters) == 2:
        a, b = raters
        pairs = [(r[a], r[b]) for r in multi.values() if a in r and b in r]
        labels_a = [str(x) for x, _ in pairs]
        labels_b = [str(y) for _, y in pairs]
        if len(set(labels_a) | set(labels_b)) >= 2:
            with warnings.catch_warnings():
                # Chance agreement of 1 on a subset still makes sklearn warn and return NaN.
                warnings.simplefilter("ignore")
                kappa = _finite(cohen_kappa_score(labels_a, labels_b))
        if kappa is None:
            note = "kappa undefined: every rating is the same value"

    # Reliability matrix: one row per rater, one column per item, NaN where missing.
    # Categories are coded as their index in the config so nominal alpha sees them as
    # distinct values; numbers are used as they are.
    items = list(multi)
    codes = {c: i for i, c in enumerate(config.categories)} if config.data_type == DataType.CATEGORICAL else None

    def code(value: Any) -> float:
        if codes is not None:
            return float(codes.setdefault(value, len(codes)))
        return float(value)

    matrix = np.array(
        [[code(multi[item][rater]) if rater in multi[item] else np.nan for item in items] for rater in raters],
        dtype=float,
    )
    alpha = None
    distinct = set(matrix[~np.isnan(matrix)].tolist())
    if len(distinct) >= 2:
        alpha = _finite(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level))
    else:
        note = note or "alpha undefined: every rating is the same value"
    return Agreement(config.name, level, len(multi), len(raters), percent, kappa, alpha, note)


def queue_agreement(
    configs: list[ScoreConfig], ratings: Mapping[str, Mapping[Any, Mapping[str, Any]]]
) -> list[Agreement]:
    """Agreement for each of a queue's configs (see annotation.selectors.queue_ratings)."""
    return [agreement_for(config, ratings.get(config.name, {})) for config in configs]
