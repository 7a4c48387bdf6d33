"""The demo's alert rules (demo/seed.py): valid, made once, evaluated like any rule."""

from __future__ import annotations

from alerts.evaluation import rule_evaluate
from alerts.models import AlertRule, AlertState
from demo.seed import register_alert_rules
from tests.alerts.conftest import NOW, trace


def test_demo_rules_are_made_once_and_evaluate(world):
    register_alert_rules(world.project)
    register_alert_rules(world.project)
    rules = {r.name: r for r in AlertRule.objects.filter(project=world.project).select_related("project")}
    assert set(rules) == {"Cost per user, rolling 24 h", "Error rate, last hour"}

    trace(world.project, -30, cost="0.06", user="heavy")
    trace(world.project, -30, cost="0.001", user="light")
    rule_evaluate(rules["Cost per user, rolling 24 h"], now=NOW)
    assert {s.group["user_id"]: s.state for s in AlertState.objects.filter(rule=rules["Cost per user, rolling 24 h"])} \
        == {"heavy": "alert", "light": "ok"}
