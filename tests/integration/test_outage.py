"""Outages: the database or the broker goes away under a running gunicorn.

The database test uses its own temporary embedded Postgres (the test database must
not be stopped under other tests); the broker test points gunicorn at a closed port.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pytest
from google.rpc import status_pb2

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
