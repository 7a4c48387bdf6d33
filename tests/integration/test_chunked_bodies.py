"""Chunked request bodies (no Content-Length) over a real socket to gunicorn.

This is how the Node OTLP exporters send (tests/integration/test_node_exporters.py runs
them); here Python's http.client frames the same bodies by hand so each case is exact:
protobuf, JSON, gzip, one over the size limit, and a REST API body.
"""

from __future__ import annotations

import gzip
import http.client
import urllib.parse
from collections.abc import Iterator

import orjson
import pytest
from google.rpc import status_pb2

from scores.models import Score
from tests import otlp_payloads as otlp
from tests.integration.support import child_env, start_gunicorn, wait_for_http
from tests.otlp_payloads import JSON, PROTOBUF
from tracing.models import Trace

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def post_chunked(base_url: str, path: str, body: bytes, *, headers: dict[str, str],
                 chunk: int = 1000) -> tuple[int, dict[str, str], bytes]:
    """POST `body` as HTTP/1.1 chunks of `chunk` bytes, with no Content-Length."""
    url = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        pieces: Iterator[bytes] = (body[i:i + chunk] for i in range(0, len(body), chunk))
        conn.request("POST", path, body=pieces, headers=headers, encode_chunked=True)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def llm_spans() -> tuple[str, list[dict]]:
    trace_id = otlp.new_trace_id()
    # Big enough to need many chunks.
    question = "Where is my parcel? " * 200
    spans = [otlp.span(trace_id=trace_id, name="chat gpt-4o-mini", attributes={
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 30,
        "gen_ai.usage.output_tokens": 9,
        "session.id": "s-chunked",
        "user.id": "u-chunked",
        "input.value": question,
        "output.value": "It ships tomorrow.",
    })]
    return trace_id, spans


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_chunked_otlp_export_is_stored(live_server_url, ingest_key, content_type, compressed):
    trace_id, spans = llm_spans()
    body = otlp.encode_traces(spans, content_type)
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {ingest_key.secret_key}"}
    if compressed:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"

    status, _, content = post_chunked(live_server_url, "/v1/traces", body, headers=headers)

    assert status == 200, content
    trace = Trace.objects.get(project=ingest_key.project, trace_id=trace_id)
    assert (trace.model, trace.input_tokens, trace.output_tokens) == ("gpt-4o-mini", 30, 9)
    assert (trace.session_id, trace.user_id) == ("s-chunked", "u-chunked")
    assert trace.input.startswith("Where is my parcel?") and trace.output == "It ships tomorrow."


@pytest.fixture(scope="module")
def small_limit_server(integration_env, integration_logs) -> Iterator[str]:
    env = child_env(**{**integration_env, "OTLP_MAX_BODY_BYTES": "20000"})
    proc, url = start_gunicorn(env=env, log_path=integration_logs / "gunicorn-small-limit.log", workers=1)
    try:
        wait_for_http(url + "/healthz", proc=proc)
        yield url
    finally:
        proc.stop()


def test_chunked_export_over_the_limit_is_413_and_nothing_is_stored(small_limit_server, ingest_key):
    trace_id, spans = llm_spans()
    spans[0]["attributes"]["input.value"] = "x" * 50_000
    body = otlp.traces_protobuf(spans)
    headers = {"Content-Type": PROTOBUF, "Authorization": f"Bearer {ingest_key.secret_key}"}

    status, response_headers, content = post_chunked(small_limit_server, "/v1/traces", body, headers=headers)

    assert status == 413
    assert response_headers["content-type"] == PROTOBUF
    assert "20000-byte limit" in status_pb2.Status.FromString(content).message
    assert not Trace.objects.filter(trace_id=trace_id).exists()


def test_chunked_score_post_is_stored(live_server_url, ingest_key):
    trace_id, spans = llm_spans()
    headers = {"Content-Type": PROTOBUF, "Authorization": f"Bearer {ingest_key.secret_key}"}
    assert post_chunked(live_server_url, "/v1/traces", otlp.traces_protobuf(spans), headers=headers)[0] == 200
    body = orjson.dumps({"trace_id": trace_id, "name": "chunked_check", "value": 0.5, "comment": "c" * 3000})

    status, _, content = post_chunked(
        live_server_url, "/api/v1/scores", body,
        headers={"Content-Type": JSON, "Authorization": f"Bearer {ingest_key.secret_key}"},
    )

    assert status == 201, content
    score = Score.objects.get(project=ingest_key.project, name="chunked_check")
    assert score.value == 0.5 and len(score.comment) == 3000
