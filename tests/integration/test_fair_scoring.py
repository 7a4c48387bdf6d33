"""Fair scoring on a real worker: a small project's new traces are scored while a big
project's backlog is still waiting, not after it."""

from __future__ import annotations

import time

import pytest

from evaluation.fair_queue import backlog
from evaluation.models import TraceScoring
from tests.integration.support import post_otlp, wait_until
from tests.otlp_payloads import new_trace_id, span, traces_protobuf

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FLOOD = 600
TRICKLE = 30


def _batch(trace_ids: list[str], who: str) -> bytes:
    now = time.time_ns()
    return traces_protobuf([
        span("answer", trace_id=trace_id, start=now - 10**9, end=now, attributes={
            "input.value": f"{who} question {n}: how long do refunds take for order {n}?",
            "output.value": f"Refunds for order {n} take five to seven business days.",
        })
        for n, trace_id in enumerate(trace_ids)
    ])


def _second_project(owner_of):
    from projects.services import project_create

    return project_create(name="Trickle", owner=owner_of)


def test_a_small_project_is_scored_during_a_big_ones_backlog(live_server_url, celery_worker, ingest_key):
    from django.contrib.auth import get_user_model

    owner = get_user_model().objects.create_user(username="trickle-owner", password="pw")
    trickle, trickle_key = _second_project(owner)
    flood_ids = [new_trace_id() for _ in range(FLOOD)]
    for start in range(0, FLOOD, 100):
        response = post_otlp(live_server_url, _batch(flood_ids[start:start + 100], "flood"),
                             key=ingest_key.secret_key)
        assert response.status == 200, response.body
    trickle_ids = [new_trace_id() for _ in range(TRICKLE)]
    sent_at = time.monotonic()
    assert post_otlp(live_server_url, _batch(trickle_ids, "trickle"), key=trickle_key.secret_key).status == 200

    def trickle_scored() -> bool:
        return TraceScoring.objects.filter(project=trickle, trace_id__in=trickle_ids,
                                           status="scored").count() == TRICKLE

    wait_until(trickle_scored, timeout=120, what="the small project's traces to be scored",
               proc=celery_worker.process)
    waited = time.monotonic() - sent_at
    flood_scored = TraceScoring.objects.filter(project=ingest_key.project, status="scored").count()
    waiting = {b.project_id: b.waiting for b in backlog()}
    # The flood was still being worked through: the small project did not wait for it.
    assert flood_scored < FLOOD and waiting.get(ingest_key.project.pk, 0) > 0, (flood_scored, waiting)
    assert waited < 60, f"the small project's {TRICKLE} traces took {waited:.0f} s"
