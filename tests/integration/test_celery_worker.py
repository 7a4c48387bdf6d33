"""Ingest announces new traces to a real Celery worker after commit (queue "pipeline"),
which fans out to scoring (queue "scoring")."""

from __future__ import annotations

import re

import pytest

from tests.integration.payloads import llm_batch_request, new_trace_id
from tests.integration.support import post_otlp, wait_until
from tracing.models import Trace

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TASK_TIMEOUT = 120


def _new_log(worker, offset: int) -> str:
    return worker.process.log_text()[offset:]


def _wait_for_line(worker, offset: int, pattern: str) -> re.Match:
    found: list[re.Match] = []

    def check() -> bool:
        match = re.search(pattern, _new_log(worker, offset))
        if match:
            found.append(match)
        return bool(match)

    wait_until(check, timeout=TASK_TIMEOUT, what=f"worker log line /{pattern}/", proc=worker.process)
    return found[0]


def _done(task: str, count: int) -> str:
    return re.escape(f"Task {task}[") + r"[0-9a-f-]+\] succeeded in [0-9.e-]+s: " + str(count) + r"\b"


def test_worker_runs_traces_score_for_new_traces(live_server_url, celery_worker, ingest_key):
    offset = len(celery_worker.process.log_text())
    trace_ids = [new_trace_id() for _ in range(7)]
    response = post_otlp(live_server_url, llm_batch_request(trace_ids=trace_ids), key=ingest_key.secret_key)
    assert response.status == 200, response.body
    assert Trace.objects.filter(project=ingest_key.project, trace_id__in=trace_ids).count() == 7

    # Each task finished (not just started) and returned the number of traces it got.
    _wait_for_line(celery_worker, offset, _done("tracing.tasks.traces_changed", 7))
    # The traces wait in the fair queue; a drain message takes them (one project: one turn).
    _wait_for_line(celery_worker, offset, _done("evaluation.tasks.scoring_drain", 7))


def test_resent_batch_enqueues_nothing(live_server_url, celery_worker, ingest_key):
    """A duplicate batch stores nothing new, so it must not ask for scoring again."""
    batch = llm_batch_request(trace_ids=[new_trace_id() for _ in range(5)])
    offset = len(celery_worker.process.log_text())
    assert post_otlp(live_server_url, batch, key=ingest_key.secret_key).status == 200
    _wait_for_line(celery_worker, offset, _done("tracing.tasks.traces_changed", 5))

    offset = len(celery_worker.process.log_text())
    assert post_otlp(live_server_url, batch, key=ingest_key.secret_key).status == 200
    # A marker batch after the duplicate: the solo worker consumes the queue in order, so
    # once the marker's task has run, a task from the duplicate would already be logged.
    assert post_otlp(live_server_url, llm_batch_request(trace_ids=[new_trace_id() for _ in range(3)]),
                     key=ingest_key.secret_key).status == 200
    _wait_for_line(celery_worker, offset, _done("tracing.tasks.traces_changed", 3))
    assert not re.search(_done("tracing.tasks.traces_changed", 5), _new_log(celery_worker, offset))
