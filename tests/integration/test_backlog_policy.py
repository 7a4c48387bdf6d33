"""The backlog policy on a real worker: a flood project under policy `sample` still
scores its thumbs-down, error and annotation-queue traces, says why it skipped the rest,
and scores a skipped trace after a late thumbs-down."""

from __future__ import annotations

import json
import time

import pytest

from evaluation.models import BacklogPolicy, TraceScoring
from tests.integration.support import http, post_otlp, wait_until
from tests.otlp_payloads import new_trace_id, span, traces_protobuf

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FLOOD = 400
ERRORS = range(0, FLOOD, 40)  # 10 traces with an error
DISLIKED = range(7, FLOOD, 40)  # 10 with a thumbs-down sent before their spans
QUEUED = range(13, FLOOD, 40)  # 10 in an annotation queue made before their spans


def _batch(trace_ids: list[str], first: int) -> bytes:
    now = time.time_ns()
    return traces_protobuf([
        span("answer", trace_id=trace_id, start=now - 10**9, end=now, status=2 if first + n in ERRORS else 1,
             attributes={"input.value": f"question {first + n}: where is my parcel {first + n}?",
                         "output.value": f"Parcel {first + n} arrives on Tuesday."})
        for n, trace_id in enumerate(trace_ids)
    ])


def _thumbs_down(base_url: str, public_key: str, trace_id: str) -> None:
    body = json.dumps({"trace_id": trace_id, "name": "thumbs", "value": False}).encode()
    response = http("POST", base_url + "/api/v1/feedback", body,
                    headers={"Content-Type": "application/json", "Authorization": f"Bearer {public_key}"})
    assert response.status in (200, 201), response.body


def test_a_flood_under_sample_scores_what_must_be_scored_and_notes_the_rest(live_server_url, celery_worker,
                                                                              ingest_key):
    from annotation.services import queue_create
    from tests.helpers import config

    project = ingest_key.project
    BacklogPolicy.objects.create(project=project, mode="sample", threshold=20, sample_rate=0.05)
    ids = [new_trace_id() for _ in range(FLOOD)]
    for n in DISLIKED:
        _thumbs_down(live_server_url, ingest_key.public_key, ids[n])
    owner = project.memberships.get().user
    queue_create(project=project, name="Parcels", created_by=owner, items=[(ids[n], None) for n in QUEUED],
                 config_ids=[config(project, "helpfulness").pk])
    for start in range(0, FLOOD, 100):
        response = post_otlp(live_server_url, _batch(ids[start:start + 100], start), key=ingest_key.secret_key)
        assert response.status == 200, response.body

    def statuses() -> dict[str, TraceScoring]:
        return {row.trace_id: row for row in TraceScoring.objects.filter(project=project, trace_id__in=ids)}

    wait_until(lambda: len(statuses()) == FLOOD and all(r.status in ("scored", "skipped")
                                                        for r in statuses().values()),
               timeout=240, what="every flood trace to be scored or skipped", proc=celery_worker.process)
    rows = statuses()
    protected = {ids[n] for n in (*ERRORS, *DISLIKED, *QUEUED)}
    assert {t for t in protected if rows[t].status != "scored"} == set()
    skipped = [r for r in rows.values() if r.status == "skipped"]
    # The backlog reached the threshold at once: most unprotected traces were skipped.
    assert len(skipped) > (FLOOD - len(protected)) / 2, len(skipped)
    assert all(r.notes["backlog"].startswith("skipped: ") and "backlog policy 'sample' scores 5%" in r.notes["backlog"]
               for r in skipped)

    # A late thumbs-down on a skipped trace: the worker scores it after all.
    late = skipped[0].trace_id
    _thumbs_down(live_server_url, ingest_key.public_key, late)
    wait_until(lambda: TraceScoring.objects.get(project=project, trace_id=late).status == "scored",
               timeout=60, what="the late thumbs-down trace to be scored", proc=celery_worker.process)
    assert "backlog" not in TraceScoring.objects.get(project=project, trace_id=late).notes
