"""GET /metrics: operators only, and the figures come from the real tables and broker."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from evaluation.fair_queue import traces_enqueue
from tests.helpers import ingest_trace

pytestmark = pytest.mark.django_db


def samples(body: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def test_metrics_need_the_token_or_a_superuser(world, settings):
    settings.SPYGLASS_METRICS_TOKEN = "scrape-me"
    denied = Client().get("/metrics")
    assert denied.status_code == 403 and "SPYGLASS_METRICS_TOKEN" in denied.content.decode()
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    member = Client()
    member.force_login(world.owner)  # a project admin is not an operator
    assert member.get("/metrics").status_code == 403
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200
    world.outsider.is_superuser = True
    world.outsider.save()
    operator = Client()
    operator.force_login(world.outsider)
    assert operator.get("/metrics").status_code == 200


def test_metrics_report_backlog_recent_traces_and_queues(world, settings):
    settings.SPYGLASS_METRICS_TOKEN = "scrape-me"
    for _ in range(3):
        ingest_trace(world.project)
    traces_enqueue(project_id=world.project.pk, trace_pks=[11, 12])
    body = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").content.decode()
    values = samples(body)
    project = (("project", world.project.slug),)
    assert values[("spyglass_scoring_backlog_traces", project)] == 2
    assert values[("spyglass_scoring_backlog_oldest_seconds", project)] >= 0
    assert values[("spyglass_traces_changed_recent", project)] == 3
    assert ("spyglass_traces_changed_recent", (("project", world.other_project.slug),)) not in values
    queues = {labels[0][1] for name, labels in values if name == "spyglass_broker_queue_messages"}
    assert queues == set(settings.CELERY_WORKER_QUEUES)  # the test broker answers for every queue


def test_metrics_report_ingest_counters_and_the_backlog_policy(world, settings, django_capture_on_commit_callbacks):
    from evaluation import backlog
    from evaluation.fair_queue import turn_take
    from evaluation.models import BacklogPolicy

    settings.SPYGLASS_METRICS_TOKEN = "scrape-me"
    with django_capture_on_commit_callbacks(execute=True):
        traces = [ingest_trace(world.project, spans=3) for _ in range(4)]
        ingest_trace(world.other_project)
    # Running ingest's on-commit callbacks inside the test's transaction also marked its
    # temp table as created on this connection; the test's rollback drops the table.
    connection._span_stage_for = None
    BacklogPolicy.objects.create(project=world.project, mode="sample", threshold=2, sample_rate=0.0)
    traces_enqueue(project_id=world.project.pk, trace_pks=[t.pk for t in traces])
    backlog.turn_run(turn_take(batch=1))  # 4 waiting > 2: the one trace of this turn is skipped
    values = samples(Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").content.decode())
    project, other = (("project", world.project.slug),), (("project", world.other_project.slug),)
    assert values[("spyglass_ingest_spans_total", project)] == 12
    assert values[("spyglass_ingest_trace_updates_total", project)] == 4
    assert values[("spyglass_ingest_spans_total", other)] == 1
    assert values[("spyglass_scoring_skipped_traces_total", project)] == 1
    assert ("spyglass_scoring_skipped_traces_total", other) not in values
    assert values[("spyglass_scoring_backlog_traces", project)] == 3
    assert values[("spyglass_scoring_backlog_policy_acting", (("mode", "sample"), *project))] == 1
