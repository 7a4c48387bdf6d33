"""Outages: the database or the broker goes away under a running gunicorn.

The database test uses its own temporary embedded Postgres (the test database must
not be stopped under other tests); the broker test points gunicorn at a closed port.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from tests.integration.payloads import llm_span_request, new_trace_id
from tests.integration.support import (
    ManagedProcess,
    TempPostgres,
    closed_port,
    http,
    manage,
    post_otlp,
    start_gunicorn,
    wait_for_http,
    wait_until,
)
from tracing.models import Span

pytestmark = pytest.mark.integration

GRPC_UNAVAILABLE = 14


@dataclass
class OutageStack:
    postgres: TempPostgres
    web: ManagedProcess
    url: str
    key: str


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory, integration_env, integration_logs) -> Iterator[OutageStack]:
    postgres = TempPostgres()
    web = None
    try:
        env = {**integration_env, "DATABASE_URL": postgres.url}
        manage("migrate", "--noinput", env=env)
        manage("createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.com",
               env={**env, "DJANGO_SUPERUSER_PASSWORD": "ops-password"})
        created = json.loads(manage("create_project", "Outage drill", "--owner", "ops", "--json", env=env).stdout)
        web, url = start_gunicorn(env=env, log_path=integration_logs / "gunicorn-outage.log", workers=2)
        wait_for_http(url + "/healthz", proc=web)
        yield OutageStack(postgres, web, url, created["secret_key"])
    finally:
        if web is not None:
            web.stop()
        postgres.destroy()


def _span_count(postgres: TempPostgres, trace_id: str) -> int:
    return int(postgres.scalar(f"SELECT count(*) FROM tracing_span WHERE trace_id = '{trace_id}'"))


def test_database_outage_answers_503_and_recovers(outage_stack):
    stack = outage_stack
    before = new_trace_id()
    response = post_otlp(stack.url, llm_span_request(trace_id=before), key=stack.key)
    assert response.status == 200, response.body
    assert _span_count(stack.postgres, before) == 1

    stack.postgres.stop()
    try:
        lost = new_trace_id()
        response = post_otlp(stack.url, llm_span_request(trace_id=lost), key=stack.key, timeout=90)
        assert response.status == 503, (response.status, response.body)
        assert response.header("retry-after") and int(response.header("retry-after")) > 0
        assert response.header("content-type") == "application/x-protobuf"
        status = status_pb2.Status.FromString(response.body)
        assert status.code == GRPC_UNAVAILABLE
        assert "retry" in status.message.lower() and "database" in status.message.lower()

        # The same in OTLP/JSON: the answer follows the request's encoding.
        response = post_otlp(stack.url, b'{"resourceSpans": []}', key=stack.key, json=True, timeout=90)
        assert response.status == 503
        assert response.header("retry-after")
        assert orjson.loads(response.body)["code"] == GRPC_UNAVAILABLE

        health = http("GET", stack.url + "/healthz", timeout=90)
        assert health.status == 503
        body = orjson.loads(health.body)
        assert body["failing"] == ["database"]
        assert body["database"].startswith("error")
        assert body["broker"] == "ok"
    finally:
        stack.postgres.start()

    # Back without restarting gunicorn: stale connections are replaced, nothing was kept.
    wait_until(lambda: http("GET", stack.url + "/healthz", timeout=30).status == 200, timeout=120,
               what="healthz to recover", proc=stack.web)
    after = new_trace_id()
    for _ in range(4):  # reach both gunicorn workers, each with its own stale connection
        response = post_otlp(stack.url, llm_span_request(trace_id=new_trace_id()), key=stack.key)
        assert response.status == 200, response.body
    assert post_otlp(stack.url, llm_span_request(trace_id=after), key=stack.key).status == 200
    assert _span_count(stack.postgres, after) == 1
    assert _span_count(stack.postgres, lost) == 0


@pytest.mark.django_db(transaction=True)
def test_broker_outage_fails_health_but_ingest_still_stores(integration_env, integration_logs, ingest_key):
    env = {**integration_env, "REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"}
    web, url = start_gunicorn(env=env, log_path=integration_logs / "gunicorn-no-broker.log", workers=1)
    try:
        wait_for_http(url + "/healthz", proc=web, statuses=(200, 503))
        health = http("GET", url + "/healthz", timeout=90)
        assert health.status == 503
        body = orjson.loads(health.body)
        assert body["failing"] == ["broker"]
        assert body["database"] == "ok"
        assert body["broker"].startswith("error")

        # Spans are the record; scoring is caught up later. A broker outage must not
        # turn a committed batch into an error, nor hold the client for long.
        trace_id = new_trace_id()
        started = time.monotonic()
        response = post_otlp(url, llm_span_request(trace_id=trace_id), key=ingest_key.secret_key, timeout=90)
        elapsed = time.monotonic() - started
        assert response.status == 200, response.body
        assert Span.objects.filter(project=ingest_key.project, trace_id=trace_id).count() == 1
        assert elapsed < 30, f"ingest took {elapsed:.1f}s with the broker down"
        wait_until(lambda: "could not announce" in web.log_text(), timeout=30,
                   what="the enqueue failure to be logged", proc=web)
    finally:
        web.stop()


class _RecordingExporter(OTLPSpanExporter):
    """The real exporter; it also notes which span ids it reported as exported."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.exported: list[str] = []
        self.failed: list[str] = []
        self._ids_lock = threading.Lock()

    def export(self, spans):
        result = super().export(spans)
        ids = [format(span.context.span_id, "016x") for span in spans]
        with self._ids_lock:
            (self.exported if result is SpanExportResult.SUCCESS else self.failed).extend(ids)
        return result


class _RetryLog(logging.Handler):
    """The exporter's own 'Transient error Service Unavailable …, retrying in 5.00s' warnings."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_database_stopped_under_exporter_load_stores_every_acknowledged_span_once(outage_stack):
    """The real OTLP/HTTP exporter streams spans through a BatchSpanProcessor while the
    database is stopped for ~8 s and started again. The receiver answers 503 +
    Retry-After, the exporter waits and resends; afterwards every span it reported as
    exported is stored, each exactly once, and nothing it gave up on is missing silently."""
    stack = outage_stack
    exporter = _RecordingExporter(endpoint=stack.url + "/v1/traces",
                                  headers={"Authorization": f"Bearer {stack.key}"}, timeout=60)
    processor = BatchSpanProcessor(exporter, max_queue_size=20_000, max_export_batch_size=100,
                                   schedule_delay_millis=100)
    provider = TracerProvider(resource=Resource.create({"service.name": "outage-drill"}))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("outage-drill")
    retry_log = _RetryLog()
    exporter_logger = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    exporter_logger.addHandler(retry_log)

    created: list[str] = []
    trace_ids: set[str] = set()
    stop_streaming = threading.Event()

    def stream() -> None:
        n = 0
        while not stop_streaming.is_set():
            with tracer.start_as_current_span("agent-turn") as root:
                root.set_attribute("openinference.span.kind", "CHAIN")
                root.set_attribute("input.value", f"question {n}")
                with tracer.start_as_current_span("llm") as llm:
                    llm.set_attribute("openinference.span.kind", "LLM")
                    llm.set_attribute("llm.token_count.prompt", 12)
                    created.append(format(llm.get_span_context().span_id, "016x"))
                created.append(format(root.get_span_context().span_id, "016x"))
                trace_ids.add(format(root.get_span_context().trace_id, "032x"))
            n += 1
            time.sleep(0.005)

    streamer = threading.Thread(target=stream, daemon=True)
    streamer.start()
    try:
        time.sleep(3)  # stored normally first
        stack.postgres.stop()
        try:
            time.sleep(8)  # the exporter meets 503s; spans keep coming and queue up
        finally:
            stack.postgres.start()
        time.sleep(3)
    finally:
        stop_streaming.set()
        streamer.join(10)
        assert processor.force_flush(90_000), "the exporter did not flush within 90 s"
        provider.shutdown()
        exporter_logger.removeHandler(retry_log)

    ids = ",".join(f"'{t}'" for t in trace_ids)
    rows = stack.postgres.psql(
        f"SELECT span_id, count(*) FROM tracing_span WHERE trace_id IN ({ids}) GROUP BY span_id")
    counts = {}
    for line in rows.splitlines()[2:]:
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    assert len(created) > 1000, f"only {len(created)} spans streamed"
    assert set(counts) == set(exporter.exported), (
        f"{len(set(exporter.exported) - set(counts))} acknowledged spans missing, "
        f"{len(set(counts) - set(exporter.exported))} stored but not acknowledged")
    duplicated = {span_id: n for span_id, n in counts.items() if n != 1}
    assert duplicated == {}
    # Checked last: the promise above first, then that the drill really was one.
    assert any("Service Unavailable" in m and "retrying" in m for m in retry_log.messages), (
        f"the exporter never met a 503 (the outage did not reach it): {retry_log.messages[:5]}")
    assert exporter.failed == [], f"{len(exporter.failed)} spans were given up by the exporter"
    assert sorted(exporter.exported) == sorted(created)  # every created span was exported once


def _log_since(web: ManagedProcess, offset: int) -> str:
    return web.log_text()[offset:]


def test_read_only_database_answers_503_naming_it(outage_stack):
    """A database that refuses writes (a hot standby after a failover; here the same
    SQLSTATE 25006 from `default_transaction_read_only`, reloaded into the open
    sessions): OTLP and the REST API answer 503 + Retry-After, the log names it in one
    line, and the moment it is writable again ingest stores."""
    stack = outage_stack
    offset = len(stack.web.log_text())
    stack.postgres.psql("ALTER SYSTEM SET default_transaction_read_only = on")
    stack.postgres.psql("SELECT pg_reload_conf()")
    try:
        trace_id = new_trace_id()
        wait_until(lambda: stack.postgres.scalar("SHOW default_transaction_read_only") == "on", timeout=30,
                   what="the reload")
        for _ in range(4):  # both gunicorn workers, each with its open connection
            response = post_otlp(stack.url, llm_span_request(trace_id=trace_id), key=stack.key)
            assert response.status == 503, (response.status, response.body)
            assert int(response.header("retry-after")) > 0
            message = status_pb2.Status.FromString(response.body).message
            assert "read-only" in message and "retry" in message, message

        # The REST API (here creating a dataset) says the same in its own error shape.
        response = http("POST", stack.url + "/api/v1/datasets", orjson.dumps({"name": "read-only-drill"}),
                        headers={"Authorization": f"Bearer {stack.key}", "Content-Type": "application/json"})
        assert response.status == 503, (response.status, response.body)
        assert int(response.header("retry-after")) > 0
        error = orjson.loads(response.body)["error"]
        assert error["code"] == "unavailable" and "database is read-only" in error["message"]
    finally:
        stack.postgres.psql("ALTER SYSTEM RESET default_transaction_read_only")
        stack.postgres.psql("SELECT pg_reload_conf()")

    log = _log_since(stack.web, offset)
    named = [line for line in log.splitlines() if "database is read-only" in line]
    assert len(named) >= 5, log[-3000:]  # one per refused request
    # The statement that meets it depends on the key's last-use window: an UPDATE of the
    # key, or the ingest's first locking SELECT / INSERT.
    assert ("OTLP batch not stored: database is read-only (cannot execute " in log
            or "OTLP request refused before reading it: database is read-only (cannot execute " in log), log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert _span_count(stack.postgres, trace_id) == 0

    wait_until(lambda: stack.postgres.scalar("SHOW default_transaction_read_only") == "off", timeout=30,
               what="the reload")
    response = post_otlp(stack.url, llm_span_request(trace_id=trace_id), key=stack.key)
    assert response.status == 200, response.body
    assert _span_count(stack.postgres, trace_id) == 1


def test_disk_full_answers_503_naming_it(outage_stack):
    """PostgreSQL out of disk fails the INSERT with SQLSTATE 53100 ("could not extend
    file …: No space left on device"). Filling a real disk would need a filesystem of
    our own (a mount); a trigger raises the same SQLSTATE and text from inside the real
    INSERT, so everything from the driver up is what a full disk produces."""
    stack = outage_stack
    offset = len(stack.web.log_text())
    stack.postgres.psql(
        "CREATE FUNCTION drill_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'could not extend file \"base/5/16384\": No space left on device' "
        "USING ERRCODE = 'disk_full', HINT = 'Check free disk space.'; END $$")
    stack.postgres.psql("CREATE TRIGGER drill_disk_full BEFORE INSERT ON tracing_span "
                        "FOR EACH STATEMENT EXECUTE FUNCTION drill_disk_full()")
    try:
        trace_id = new_trace_id()
        for _ in range(2):
            response = post_otlp(stack.url, llm_span_request(trace_id=trace_id), key=stack.key)
            assert response.status == 503, (response.status, response.body)
            assert int(response.header("retry-after")) > 0
            message = status_pb2.Status.FromString(response.body).message
            assert message.startswith("Disk full;") and "retry" in message, message
    finally:
        stack.postgres.psql("DROP TRIGGER drill_disk_full ON tracing_span; DROP FUNCTION drill_disk_full()")

    log = _log_since(stack.web, offset)
    assert "OTLP batch not stored: disk full (could not extend file" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert _span_count(stack.postgres, trace_id) == 0
    assert post_otlp(stack.url, llm_span_request(trace_id=trace_id), key=stack.key).status == 200
    assert _span_count(stack.postgres, trace_id) == 1
