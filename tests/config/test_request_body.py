"""Bodies without a Content-Length (HTTP/1.1 chunked), through Django's real WSGI handler.

The test client always sets CONTENT_LENGTH, which is exactly what hid issue 12, so
these tests build the WSGI environ a server hands over for a chunked request: no
CONTENT_LENGTH, a `Transfer-Encoding` header, and `wsgi.input` holding the de-chunked
body; gunicorn also sets `wsgi.input_terminated`. The same bodies over a real socket
to gunicorn are in tests/integration/test_chunked_bodies.py.
"""

from __future__ import annotations

import gzip
import io

import orjson
import pytest
from django.core.handlers.wsgi import WSGIHandler
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from scores.models import Score
from tests import otlp_payloads as otlp
from tests.otlp_payloads import JSON, PROTOBUF
from tracing.models import Span, Trace

pytestmark = pytest.mark.django_db(transaction=True)


class CountingStream:
    """A WSGI input that records how much the application read from it."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        block = self._data.read(size)
        self.consumed += len(block)
        return block

    def readline(self, size: int = -1) -> bytes:
        line = self._data.readline(size)
        self.consumed += len(line)
        return line


def call_wsgi(path: str, body: bytes, *, headers: dict[str, str], content_length: bool = False,
              terminated: bool = True, stream: CountingStream | None = None) -> tuple[int, dict[str, str], bytes]:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": stream or CountingStream(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if terminated:
        environ["wsgi.input_terminated"] = True
    if content_length:
        environ["CONTENT_LENGTH"] = str(len(body))
    else:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value
    started: dict = {}

    def start_response(status: str, response_headers: list, exc_info=None) -> None:
        started["status"] = int(status.split()[0])
        started["headers"] = {k.lower(): v for k, v in response_headers}

    chunks = WSGIHandler()(environ, start_response)
    try:
        content = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return started["status"], started["headers"], content


def one_span() -> tuple[str, list[dict]]:
    trace_id = otlp.new_trace_id()
    spans = [otlp.span(trace_id=trace_id, name="chat gpt-4o-mini", attributes={
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 5,
        "session.id": "s-chunked",
    })]
    return trace_id, spans


def otlp_headers(secret: str, content_type: str, **extra: str) -> dict[str, str]:
    return {"Content-Type": content_type, "Authorization": f"Bearer {secret}", **extra}


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_chunked_otlp_body_is_read_whole_and_stored(world, content_type, compressed):
    trace_id, spans = one_span()
    body = otlp.encode_traces(spans, content_type)
    extra = {}
    if compressed:
        body, extra = gzip.compress(body), {"Content-Encoding": "gzip"}

    headers = otlp_headers(world.key.secret_key, content_type, **extra)
    status, _, content = call_wsgi("/v1/traces", body, headers=headers)

    assert status == 200, content
    trace = Trace.objects.get(project=world.project, trace_id=trace_id)
    assert (trace.model, trace.input_tokens, trace.session_id) == ("gpt-4o-mini", 12, "s-chunked")
    if content_type == PROTOBUF:
        assert not ExportTraceServiceResponse.FromString(content).HasField("partial_success")


def test_chunked_body_without_a_terminating_server_is_refused_with_411(world):
    trace_id, spans = one_span()
    body = otlp.traces_protobuf(spans)

    status, headers, content = call_wsgi(
        "/v1/traces", body, headers=otlp_headers(world.key.secret_key, PROTOBUF), terminated=False
    )

    assert status == 411
    assert headers["content-type"] == PROTOBUF
    assert "chunked body" in status_pb2.Status.FromString(content).message
    assert not Trace.objects.filter(trace_id=trace_id).exists()


def test_chunked_body_over_the_limit_is_refused_before_it_is_read_whole(world, settings):
    settings.OTLP_MAX_BODY_BYTES = 300_000
    body = b"\x0a" * 5_000_000  # never decoded: the limit stops the read first
    stream = CountingStream(body)

    status, _, content = call_wsgi(
        "/v1/traces", body, headers=otlp_headers(world.key.secret_key, JSON), stream=stream
    )

    assert status == 413
    assert "300000-byte limit" in orjson.loads(content)["message"]
    # One block past the limit at most, not the 5 MB.
    assert stream.consumed < 300_000 + 300_000
    assert Span.objects.count() == 0


def test_limit_still_applies_after_decompressing_a_chunked_body(world, settings):
    settings.OTLP_MAX_BODY_BYTES = 100_000
    body = gzip.compress(b"{" + b" " * 1_000_000 + b"}")
    assert len(body) < 100_000

    status, _, content = call_wsgi(
        "/v1/traces", body, headers=otlp_headers(world.key.secret_key, JSON, **{"Content-Encoding": "gzip"})
    )

    assert status == 413, content


def test_chunked_score_post_reaches_the_rest_api(world):
    trace_id, spans = one_span()
    assert call_wsgi("/v1/traces", otlp.traces_protobuf(spans),
                     headers=otlp_headers(world.key.secret_key, PROTOBUF))[0] == 200
    body = orjson.dumps({"trace_id": trace_id, "name": "chunked_check", "value": 0.75})

    status, _, content = call_wsgi("/api/v1/scores", body, headers=otlp_headers(world.key.secret_key, JSON))

    assert status == 201, content
    assert Score.objects.get(project=world.project, name="chunked_check").value == 0.75


def test_chunked_api_body_over_the_general_limit_is_a_json_413(world, settings):
    settings.SPYGLASS_MAX_BODY_BYTES = 2048
    body = orjson.dumps({"trace_id": "ab" * 16, "name": "x", "comment": "y" * 5000})

    status, _, content = call_wsgi("/api/v1/scores", body, headers=otlp_headers(world.key.secret_key, JSON))

    assert status == 413
    assert orjson.loads(content)["error"]["code"] == "too_large"


def test_declared_length_over_the_general_limit_is_refused_unread(world, settings):
    settings.SPYGLASS_MAX_BODY_BYTES = 2048
    body = orjson.dumps({"trace_id": "ab" * 16, "name": "x", "comment": "y" * 5000})
    stream = CountingStream(body)

    status, _, content = call_wsgi("/api/v1/scores", body, headers=otlp_headers(world.key.secret_key, JSON),
                                   content_length=True, stream=stream)

    assert status == 413
    assert "2048-byte limit" in orjson.loads(content)["error"]["message"]
    assert stream.consumed == 0


def test_body_with_content_length_is_unchanged(world):
    trace_id, spans = one_span()
    body = otlp.traces_protobuf(spans)

    status, _, _ = call_wsgi("/v1/traces", body, headers=otlp_headers(world.key.secret_key, PROTOBUF),
                             content_length=True, terminated=False)

    assert status == 200
    assert Trace.objects.filter(project=world.project, trace_id=trace_id).exists()
