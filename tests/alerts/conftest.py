"""Alerts fixtures: a fixed clock, traces placed on it, rules made through the service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from alerts.services import RuleSpec, channel_add, rule_create
from tests.factories import TraceFactory

NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """NOW shifted by `minutes` (negative: before)."""
    return NOW + timedelta(minutes=minutes)


def trace(project, minutes: float, *, latency: float = 100, cost: str | None = "0.01", user: str | None = "u1",
          status: str = "ok", **extra):
    start = at(minutes)
    return TraceFactory(project=project, start_time=start, end_time=start + timedelta(milliseconds=latency),
                        latency_ms=latency, cost_usd=None if cost is None else Decimal(cost), user_id=user,
                        status=status, **extra)


def rule(project, **overrides):
    values = {"name": "rule", "measure": "traces", "agg": "count", "alert_threshold": 2.0, "window_seconds": 300,
              "min_observations": 0, "cooldown_seconds": 600}
    values.update(overrides)
    return rule_create(project=project, spec=RuleSpec(**values))


@pytest.fixture(autouse=True)
def _local_receivers_allowed(settings):
    """Test receivers listen on 127.0.0.1, which production refuses (SSRF guard); the
    guard's own tests (test_secrets_and_ssrf.py) turn this back off."""
    settings.SPYGLASS_ALERTS_ALLOW_PRIVATE_TARGETS = True


@pytest.fixture
def hook(world):
    """A rule's channel list starts empty; this adds one webhook channel (never called
    unless a test runs the deliveries)."""

    def add(r, url: str = "http://127.0.0.1:9/hook"):
        return channel_add(rule=r, kind="webhook", target=url)

    return add
