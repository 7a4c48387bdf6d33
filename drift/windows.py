"""The two windows a drift report compares, from query parameters (API and page alike).

Defaults: the current window is the last 7 days, the baseline the 28 days before it,
so a weekly pattern falls the same way into both. Each parameter may be given alone;
the others are derived from it (e.g. only `from`: current = [from, now), baseline the
28 days before `from`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from config.datetimes import parse_user_datetime
from config.errors import ValidationFailed
from drift.selectors import Window

CURRENT_DEFAULT = timedelta(days=7)
BASELINE_DEFAULT = timedelta(days=28)
# Sampling bounds the cost of any window; this bound only keeps a typo (year 20205)
# from silently comparing centuries.
MAX_WINDOW = timedelta(days=366)
PARAMS = ("baseline_from", "baseline_to", "from", "to")
PASSTHROUGH = ("project",)


class DriftParamsError(ValidationFailed):
    """Bad drift parameters; `detail` maps each parameter to its problems (a 400)."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{key}: {' '.join(problems)}" for key, problems in errors.items()),
                         detail=errors)
        self.errors = errors


def _values(params: Mapping[str, Any]) -> dict[str, list[str]]:
    if hasattr(params, "getlist"):
        return {key: params.getlist(key) for key in params}
    return {key: value if isinstance(value, list) else [value] for key, value in params.items()}


def parse_windows(params: Mapping[str, Any], *, now: datetime) -> tuple[Window, Window]:
    """(baseline, current) from the query parameters, or DriftParamsError naming each bad one."""
    errors: dict[str, list[str]] = {}
    given: dict[str, datetime] = {}
    for key, values in _values(params).items():
        if key in PASSTHROUGH:
            continue
        if key not in PARAMS:
            errors.setdefault(key, []).append(f"unknown query parameter; expected {', '.join(PARAMS)}")
            continue
        if len(values) != 1:
            errors.setdefault(key, []).append("give it once")
            continue
        if not values[0].strip():
            continue  # an empty form field means "the default"
        try:
            given[key] = parse_user_datetime(values[0])
        except ValueError as exc:
            errors.setdefault(key, []).append(str(exc))
    if errors:
        raise DriftParamsError(errors)
    end = given.get("to", now)
    start = given.get("from", end - CURRENT_DEFAULT)
    baseline_end = given.get("baseline_to", start)
    baseline_start = given.get("baseline_from", baseline_end - BASELINE_DEFAULT)
    for key, (a, b), other in (("from", (start, end), "to"), ("baseline_from", (baseline_start, baseline_end),
                                                                "baseline_to")):
        if a >= b:
            errors.setdefault(key, []).append(f"must be before {other} ({a.isoformat()} >= {b.isoformat()})")
        elif b - a > MAX_WINDOW:
            errors.setdefault(key, []).append(f"a window spans at most {MAX_WINDOW.days} days")
    if not errors and baseline_end > start:
        errors["baseline_to"] = [f"must not be after from ({baseline_end.isoformat()} > {start.isoformat()}): "
                                 "the baseline comes before the current window"]
    if errors:
        raise DriftParamsError(errors)
    return Window(baseline_start, baseline_end), Window(start, end)
