"""The beat task (alerts.tasks.alerts_evaluate, scheduled as `alerts-evaluate`): every
enabled rule once per tick, a broken rule recorded without stopping the others, one
tick at a time, and the rules left by a tick's budget first in the next."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connections
from django.utils import timezone

from alerts import tasks
from alerts.evaluation import LOCK_KEY, alerts_evaluate
from alerts.models import AlertDelivery, AlertRule, AlertState
from tests.alerts.conftest import rule
from tests.factories import TraceFactory


def recent_traces(project, count: int) -> None:
    for _ in range(count):
        TraceFactory(project=project, start_time=timezone.now() - timedelta(minutes=1))


def test_beat_schedules_the_task_every_minute():
    entry = settings.CELERY_BEAT_SCHEDULE["alerts-evaluate"]
    assert entry == {"task": "alerts.tasks.alerts_evaluate", "schedule": 60.0}
    assert tasks.alerts_evaluate.name == entry["task"]


def test_the_beat_task_evaluates_every_enabled_rule(world, hook, django_capture_on_commit_callbacks):
    recent_traces(world.project, 3)
    recent_traces(world.other_project, 1)
    firing = rule(world.project, name="busy")
    hook(firing)
    quiet = rule(world.other_project, name="other project")
    off = rule(world.project, name="off", enabled=False)

    with django_capture_on_commit_callbacks() as callbacks:
        evaluated = tasks.alerts_evaluate.apply().get()

    assert evaluated == 2
    assert AlertState.objects.get(rule=firing).state == "alert"
    assert AlertState.objects.get(rule=quiet).state == "ok"
    assert not AlertState.objects.filter(rule=off).exists()
    assert AlertDelivery.objects.filter(channel__rule=firing).count() == 1
    assert len(callbacks) == 1  # the deliveries are queued after commit


def test_a_broken_rule_is_recorded_and_the_others_still_run(world):
    recent_traces(world.project, 3)
    broken = rule(world.project, name="broken")
    AlertRule.objects.filter(pk=broken.pk).update(agg="p95")  # no longer fits the measure
    fine = rule(world.project, name="fine")

    result = alerts_evaluate()

    assert (result.evaluated, result.failed) == (1, 1)
    broken.refresh_from_db()
    assert "p95 does not fit traces" in broken.last_error and broken.evaluated_at is not None
    assert AlertState.objects.get(rule=fine).state == "alert"


def test_a_tick_while_another_runs_does_nothing(world):
    rule(world.project)
    # Another connection (another worker's tick) holds the lock.
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        result = alerts_evaluate()
        assert result.skipped and result.evaluated == 0
    finally:
        other.close()


def test_rules_left_by_the_budget_go_first_next_tick(world):
    first, second = rule(world.project, name="a"), rule(world.project, name="b")

    result = alerts_evaluate(budget_seconds=0)  # the budget is spent after the first rule

    assert (result.evaluated, result.left) == (1, 1)
    again = alerts_evaluate(budget_seconds=0)
    assert again.evaluated == 1
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.evaluated_at is not None and second.evaluated_at is not None
