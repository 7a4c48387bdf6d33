"""retention/services.py: traces that started before a project's window go, with every
row that hangs off them; nothing inside the window, and nothing of another project."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection

from annotation.models import AnnotationQueue, QueueItem
from dashboards.models import ScoreRollup, TraceRollup
from dashboards.rollups import rollups_refresh
from retention.models import RetentionMode, RetentionRun
from retention.services import retention_apply, retention_apply_project, retention_policy_save
from tests.retention.conftest import FULL, GONE, NOW, census, trace_at

DAYS = 30
CUTOFF = NOW - timedelta(days=DAYS)


@pytest.fixture
def traces(world):
    """Old, at the edge, and new traces in the project (30 days), and an old one in
    another project (kept forever)."""
    retention_policy_save(project=world.project, mode=RetentionMode.DAYS, days=DAYS)
    made = {
        "old": trace_at(world.project, CUTOFF - timedelta(days=3), reviewer=world.reviewer),
        "just_old": trace_at(world.project, CUTOFF - timedelta(microseconds=1), reviewer=world.reviewer),
        "at_cutoff": trace_at(world.project, CUTOFF, reviewer=world.reviewer),
        "new": trace_at(world.project, NOW - timedelta(days=1), reviewer=world.reviewer),
        "other_old": trace_at(world.other_project, CUTOFF - timedelta(days=3), reviewer=world.outsider),
    }
    return made


def _census(t):
    return census(t.project, t.trace_id, t.pk)


def test_everything_outside_the_window_goes_and_nothing_inside(world, traces):
    assert all(_census(t) == FULL for t in traces.values())
    results = retention_apply(now=NOW)
    assert _census(traces["old"]) == GONE
    assert _census(traces["just_old"]) == GONE
    # Exactly `days` old is still inside the window; so is everything newer.
    assert _census(traces["at_cutoff"]) == FULL
    assert _census(traces["new"]) == FULL
    # Another project (no retention: the instance default is forever) is untouched.
    assert _census(traces["other_old"]) == FULL
    assert [r.slug for r in results] == [world.project.slug]
    run = RetentionRun.objects.get(project=world.project)
    assert (run.traces, run.days, run.cutoff, run.complete) == (2, DAYS, CUTOFF, True)
    assert run.rows["tracing_span"] == 6 and run.rows["scores_score"] == 4 and run.rows["tracing_trace"] == 2


def test_a_pairwise_item_goes_when_its_partner_trace_goes(world, traces):
    queue = AnnotationQueue.objects.create(project=world.project, name="pairs", mode="pairwise")
    QueueItem.objects.create(queue=queue, project=world.project, trace_id=traces["new"].trace_id,
                             pair_trace_id=traces["old"].trace_id, position=1)
    retention_apply(now=NOW)
    assert not QueueItem.objects.filter(queue=queue).exists()
    assert _census(traces["new"]) == FULL


def test_a_second_run_deletes_nothing_more(world, traces):
    retention_apply(now=NOW)
    before = {k: _census(t) for k, t in traces.items()}
    again = retention_apply(now=NOW)
    assert (again[0].traces, again[0].rows) == (0, {})
    assert {k: _census(t) for k, t in traces.items()} == before
    assert RetentionRun.objects.get(project=world.project).traces == 0


def test_the_instance_default_applies_unless_a_project_keeps_forever(world, traces, settings):
    settings.SPYGLASS_RETENTION_DAYS = DAYS
    retention_policy_save(project=world.project, mode=RetentionMode.FOREVER, days=None)
    retention_apply(now=NOW)
    assert _census(traces["old"]) == FULL  # kept forever, whatever the default
    assert _census(traces["other_old"]) == GONE  # no choice of its own: the default
    assert _census(traces["new"]) == FULL


def test_no_default_and_no_choice_keeps_everything(world, traces):
    assert django_settings.SPYGLASS_RETENTION_DAYS is None
    retention_policy_save(project=world.project, mode=RetentionMode.DEFAULT, days=None)
    assert retention_apply(now=NOW) == []
    assert all(_census(t) == FULL for t in traces.values())


def test_dry_run_counts_and_deletes_nothing(world, traces):
    result = retention_apply_project(project=world.project, days=DAYS, now=NOW, dry_run=True)
    assert (result.traces, result.rows["tracing_span"], result.rows["evaluation_judgecall"]) == (2, 6, 2)
    assert all(_census(t) == FULL for t in traces.values())
    assert not RetentionRun.objects.exists()


def test_a_run_out_of_time_stops_between_batches_and_the_next_carries_on(world, traces):
    first = retention_apply_project(project=world.project, days=DAYS, now=NOW, batch=1, deadline=0)
    assert (first.traces, first.complete) == (0, False)
    assert RetentionRun.objects.get(project=world.project).complete is False
    second = retention_apply_project(project=world.project, days=DAYS, now=NOW, batch=1)
    # One trace per batch, then the two judge calls and the two session states one by one.
    assert (second.traces, second.batches, second.complete) == (2, 6, True)


def test_rollups_of_deleted_hours_are_rebuilt_from_what_remains(world, traces):
    rollups_refresh()
    old_hour = CUTOFF.replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    new_hour = (NOW - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    assert TraceRollup.objects.filter(project=world.project, hour=old_hour, level="full", meta_key="").exists()
    assert ScoreRollup.objects.filter(project=world.project, hour=old_hour).exists()
    retention_apply(now=NOW)
    rollups_refresh()
    assert not TraceRollup.objects.filter(project=world.project, hour=old_hour).exists()
    assert not ScoreRollup.objects.filter(project=world.project, hour=old_hour).exists()
    kept = TraceRollup.objects.get(project=world.project, hour=new_hour, level="full", meta_key="")
    assert kept.traces == 1
    assert TraceRollup.objects.filter(project=world.other_project, hour=old_hour).exists()


def test_the_beat_schedule_runs_the_task():
    from config.celery import app

    app.loader.import_default_modules()
    name = "retention.tasks.retention_apply"
    entries = [e for e in django_settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == name]
    assert len(entries) == 1 and 0 < entries[0]["schedule"] <= 3600
    assert name in app.tasks


def test_the_task_applies_retention(world, traces, settings):
    from django.utils import timezone

    from retention.tasks import retention_apply as task

    # The task uses the real clock: a window that "old" is outside of and "new" inside.
    days = (timezone.now() - traces["old"].start_time).days - 1
    retention_policy_save(project=world.project, mode=RetentionMode.DAYS, days=days)
    assert task.apply().get() >= 1
    assert _census(traces["old"]) == GONE
    assert _census(traces["new"]) == FULL


def test_a_second_run_while_one_holds_the_lock_is_skipped(world, traces):
    import psycopg

    from retention.services import LOCK_KEY

    # The advisory lock is per session: take it from another connection.
    params = connection.get_connection_params()
    other = psycopg.connect(**{k: v for k, v in params.items() if k in {"dbname", "user", "password", "host", "port"}})
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        assert retention_apply(now=NOW) is None
        assert _census(traces["old"]) == FULL
    finally:
        other.close()
