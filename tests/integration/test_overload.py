"""Overload: a real gunicorn (threads, as `make run` serves) sheds ingest beyond its
in-flight limit with 503 + Retry-After, never a 500, and stores every batch it accepted.

bench/overload.py runs the same for minutes and measures memory; this is the short proof.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
from google.rpc import status_pb2

from tests.integration.payloads import llm_batch_request, new_trace_id
from tests.integration.support import http, post_otlp, start_gunicorn, wait_for_http
from tracing.models import Span

pytestmark = pytest.mark.integration

GRPC_UNAVAILABLE = 14


@pytest.mark.django_db(transaction=True)
def test_ingest_beyond_the_in_flight_limit_is_shed_with_503(integration_env, integration_logs, ingest_key):
    env = {**integration_env, "SPYGLASS_MAX_INGEST_INFLIGHT": "1"}
    web, url = start_gunicorn(env=env, log_path=integration_logs / "gunicorn-overload.log", workers=1,
                              extra_args=["--threads", "4"])
    try:
        wait_for_http(url + "/healthz", proc=web)
        # 300-span batches take long enough that 12 sent at once overlap in the 4 threads.
        batches = [[new_trace_id() for _ in range(300)] for _ in range(12)]

        def send(trace_ids):
            return post_otlp(url, llm_batch_request(trace_ids=trace_ids), key=ingest_key.secret_key, timeout=90)

        with ThreadPoolExecutor(max_workers=12) as pool:
            responses = list(pool.map(send, batches))
            # People are not shed: a page during the flood is answered (it may queue).
            health = http("GET", url + "/healthz", timeout=90)

        statuses = sorted(r.status for r in responses)
        assert set(statuses) <= {200, 503}, statuses
        assert 503 in statuses, f"nothing was shed: {statuses}"
        assert 200 in statuses, f"nothing was accepted: {statuses}"
        for response in responses:
            if response.status == 503:
                assert int(response.header("retry-after")) > 0
                assert response.header("x-content-type-options") == "nosniff"  # security headers too
                status = status_pb2.Status.FromString(response.body)
                assert status.code == GRPC_UNAVAILABLE and "overloaded" in status.message, status
        assert health.status == 200, health.body

        # Accepted means stored, refused means nothing was read.
        for trace_ids, response in zip(batches, responses, strict=True):
            stored = Span.objects.filter(project=ingest_key.project, trace_id__in=trace_ids).count()
            assert stored == (300 if response.status == 200 else 0), (response.status, stored)

        # The JSON encoding gets its answer in JSON; and once the flood is over, one batch alone passes.
        with ThreadPoolExecutor(max_workers=6) as pool:
            json_answers = list(pool.map(
                lambda _: post_otlp(url, orjson.dumps({"resourceSpans": []}), key=ingest_key.secret_key,
                                    json=True, timeout=90), range(6)))
        for response in json_answers:
            assert response.status in (200, 503), response.status
            if response.status == 503:
                assert orjson.loads(response.body)["code"] == GRPC_UNAVAILABLE
        assert send([new_trace_id()]).status == 200
    finally:
        web.stop()
    assert " 500 " not in web.log_text() and "Traceback" not in web.log_text(), web.log_tail()
