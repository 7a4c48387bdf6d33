"""Faults with real processes: a worker or the web process killed (SIGKILL), the same
batch three times at once, the broker stopped. Each test's docstring says what must hold.

Every test has its own redis-server (tests/integration/support.RedisServer) and its own
gunicorn / worker / beat on it, against the pytest test database: no other test's worker
can take these messages, and stopping this broker disturbs nobody. Written up in
docs/reliability.md, "Faults".
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
import uuid
from decimal import Decimal

import pytest
from django.conf import settings
from django.db.models import Count

from evaluation.models import ScoringQueueItem, TraceScoring
from scores.models import Score, Source
from tests.integration.support import (
    RedisServer,
    http,
    kill_group,
    post_otlp,
    start_celery_beat,
    start_celery_worker,
    start_gunicorn,
    wait_for_http,
    wait_until,
)
from tests.otlp_payloads import SPAN_KIND_CLIENT, new_span_id, new_trace_id, span, traces_protobuf
from tracing.models import Span, Trace

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DRAIN_RECEIVED = re.compile(r"Task evaluation\.tasks\.scoring_drain\[([0-9a-f-]+)\] received")
# The evaluator scores every one of these traces gets (toxicity, PII, injection: text in
# and out, no retrieved context, so no groundedness).
EVALUATOR_NAMES = {"toxicity_input", "toxicity_output", "pii_input", "pii_output", "prompt_injection"}
MS = 1_000_000


def _chat_trace(trace_id: str, *, question: str, answer: str, start: int, session: str | None = None,
                llm_calls: int = 1) -> list[dict]:
    """A chain root with `llm_calls` priced LLM children (100 tokens in, 50 out each)."""
    root_id = new_span_id()
    attributes = {"openinference.span.kind": "CHAIN", "input.value": question, "output.value": answer}
    if session:
        attributes["session.id"] = session
    spans = [span("answer", trace_id=trace_id, span_id=root_id, start=start, end=start + 900 * MS,
                  attributes=attributes)]
    for k in range(llm_calls):
        spans.append(span("chat gpt-4o-mini", trace_id=trace_id, parent=root_id, kind=SPAN_KIND_CLIENT,
                          start=start + (1 + 100 * k) * MS, end=start + (90 + 100 * k) * MS, attributes={
                              "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                              "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini",
                              "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 50}))
    return spans


def _batch(n: int, *, llm_calls: int = 1) -> tuple[list[str], bytes]:
    start = time.time_ns() - 60 * 10**9
    trace_ids = [new_trace_id() for _ in range(n)]
    spans = [s for i, trace_id in enumerate(trace_ids)
             for s in _chat_trace(trace_id, question=f"How do I export report number {i}? Mail me at a{i}@example.com",
                                  answer=f"Open report {i} and press Export.", start=start + i * MS,
                                  llm_calls=llm_calls)]
    return trace_ids, traces_protobuf(spans)


def _doubled_scores(project) -> list[dict]:
    """Any score key present more than once (there must be none)."""
    return list(Score.objects.filter(project=project).values("trace_id", "span_id", "name", "source")
                .annotate(n=Count("id")).filter(n__gt=1))


def _assert_aggregates(project, trace_ids: list[str], *, llm_calls: int) -> None:
    """Each trace holds its spans once, and its totals are those of its spans."""
    spans_per_trace = 1 + llm_calls
    assert Span.objects.filter(project=project, trace_id__in=trace_ids).count() == spans_per_trace * len(trace_ids)
    for trace in Trace.objects.filter(project=project, trace_id__in=trace_ids):
        spans = Span.objects.filter(project=project, trace_id=trace.trace_id)
        assert trace.span_count == spans.count() == spans_per_trace, trace.trace_id
        assert (trace.input_tokens, trace.output_tokens) == (100 * llm_calls, 50 * llm_calls), trace.trace_id
        costs = [s.cost_usd for s in spans if s.cost_usd is not None]
        assert len(costs) == llm_calls and trace.cost_usd == sum(costs, Decimal(0)) > 0, trace.trace_id
    assert Trace.objects.filter(project=project, trace_id__in=trace_ids).count() == len(trace_ids)


def _wait_worker_ready(worker, timeout: float = 180) -> None:
    wait_until(lambda: " ready." in worker.log_text(), timeout=timeout, what=f"{worker.name} to be ready",
               proc=worker)


def _queued_tasks(redis: RedisServer, queue: str) -> list[tuple[str, list]]:
    """(task name, args) of each message waiting on `queue` (kombu's JSON envelope)."""
    with redis.client() as client:
        raw = client.lrange(queue, 0, -1)
    out = []
    for item in raw:
        envelope = json.loads(item)
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        out.append((envelope["headers"]["task"], args))
    return out


def test_worker_killed_mid_batch_gets_its_batch_back_and_scores_it_once(tmp_path, integration_env,
                                                                        integration_logs, ingest_key):
    """A Celery worker SIGKILLed (with its pool) while it scores a batch: the broker
    redelivers the unacknowledged drain message (acks_late, visibility timeout), a new
    worker takes that same batch back, and every trace ends with its full set of
    evaluator scores, each score once."""
    redis = RedisServer(tmp_path / "redis", log_path=integration_logs / "redis-worker-kill.log")
    redis.start()
    # One turn holds the whole batch; a message is redelivered 5 s after delivery.
    env = {**integration_env, "REDIS_URL": redis.url, "CELERY_BROKER_VISIBILITY_TIMEOUT": "5",
           "SPYGLASS_SCORING_TURN_BATCH": "100"}
    web, url = start_gunicorn(env=env, log_path=integration_logs / "gunicorn-worker-kill.log", workers=1)
    tag = uuid.uuid4().hex[:6]
    doomed = start_celery_worker(env=env, log_path=integration_logs / "celery-killed.log",
                                 name=f"doomed-{tag}@localhost", queues=settings.CELERY_WORKER_QUEUES)
    heir = None
    project = ingest_key.project
    try:
        wait_for_http(url + "/healthz", proc=web)
        _wait_worker_ready(doomed)
        trace_ids, body = _batch(30)
        assert post_otlp(url, body, key=ingest_key.secret_key).status == 200
        web.stop()

        def mid_batch() -> bool:
            # The drain has started, holds every queued trace, and has stored nothing yet
            # (it loads the embedding model, then scores, then stores in one transaction).
            return (DRAIN_RECEIVED.search(doomed.log_text()) is not None
                    and not ScoringQueueItem.objects.filter(project=project, claimed_at__isnull=True).exists()
                    and not TraceScoring.objects.filter(project=project).exists())

        wait_until(mid_batch, timeout=120, what="the worker to be in the middle of the batch", proc=doomed)
        kill_group(doomed)
        drain_id = DRAIN_RECEIVED.search(doomed.log_text()).group(1)
        assert not TraceScoring.objects.filter(project=project).exists(), "killed too late: the batch was stored"

        heir = start_celery_worker(env=env, log_path=integration_logs / "celery-heir.log",
                                   name=f"heir-{tag}@localhost", queues=settings.CELERY_WORKER_QUEUES)
        wait_until(lambda: TraceScoring.objects.filter(project=project, status="scored").count() == len(trace_ids),
                   timeout=150, what="the new worker to score the redelivered batch", proc=heir)
        # It was the same message (no sweep runs here: no beat).
        assert f"scoring_drain[{drain_id}] received" in heir.log_text()
        names: dict[str, set[str]] = {t: set() for t in trace_ids}
        for trace_id, name in Score.objects.filter(project=project, source=Source.EVALUATOR).values_list(
                "trace_id", "name"):
            names[trace_id].add(name)
        assert all(found == EVALUATOR_NAMES for found in names.values()), names
        assert _doubled_scores(project) == []
        assert not ScoringQueueItem.objects.filter(project=project).exists()
    finally:
        for process in (web, doomed, heir):
            if process is not None:
                process.stop()
        redis.stop()


def test_same_batch_three_times_at_once_is_stored_and_announced_once(tmp_path, integration_env,
                                                                      integration_logs, ingest_key):
    """The same OTLP batch posted by three clients at the same moment to a gunicorn with
    three workers: every answer is 200, every span is stored once, each trace's span
    count, tokens and cost are those of its spans, and one message announces the traces
    for scoring (not three)."""
    redis = RedisServer(tmp_path / "redis", log_path=integration_logs / "redis-same-batch.log")
    redis.start()
    env = {**integration_env, "REDIS_URL": redis.url}  # no worker: the messages stay queued
    web, url = start_gunicorn(env=env, log_path=integration_logs / "gunicorn-same-batch.log", workers=3)
    project = ingest_key.project
    try:
        wait_for_http(url + "/healthz", proc=web)
        trace_ids, body = _batch(40, llm_calls=2)
        start = threading.Barrier(3)
        answers: list = [None] * 3

        def send(slot: int) -> None:
            start.wait()
            answers[slot] = post_otlp(url, body, key=ingest_key.secret_key, timeout=90).status

        threads = [threading.Thread(target=send, args=(slot,)) for slot in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert answers == [200, 200, 200]
        _assert_aggregates(project, trace_ids, llm_calls=2)
        announced = _queued_tasks(redis, "pipeline")
        assert len(announced) == 1, announced
        task, (project_id, trace_pks) = announced[0]
        assert task == "tracing.tasks.traces_changed" and project_id == project.pk
        assert sorted(trace_pks) == sorted(Trace.objects.filter(project=project).values_list("pk", flat=True))
    finally:
        web.stop()
        redis.stop()


def _send_partly(url: str, body: bytes, *, key: str) -> socket.socket:
    """Start an OTLP POST and send only half its body: the server is left reading it."""
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=30)
    head = (f"POST /v1/traces HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-protobuf\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n")
    conn.sendall(head.encode() + body[: len(body) // 2])
    return conn


def test_web_killed_mid_request_retry_is_stored_once(tmp_path, integration_env, integration_logs, ingest_key):
    """gunicorn SIGKILLed (master and workers) with a request in flight, twice: while it
    reads a large body (nothing may be stored), and at the worst moment for a retrying
    client, when the batch is committed but not yet answered. Each time the client's
    connection fails; it retries the same batch against a restarted server and gets 200,
    and every span is stored once with its trace's aggregates counted once."""
    redis = RedisServer(tmp_path / "redis", log_path=integration_logs / "redis-web-kill.log")
    redis.start()
    env = {**integration_env, "REDIS_URL": redis.url}
    servers = []

    def start_web(name: str) -> str:
        web, url = start_gunicorn(env=env, log_path=integration_logs / f"gunicorn-{name}.log", workers=1)
        servers.append(web)
        wait_for_http(url + "/healthz", proc=web)
        return url

    project = ingest_key.project
    try:
        url = start_web("killed-reading")
        trace_ids, body = _batch(400)
        reading = _send_partly(url, body, key=ingest_key.secret_key)
        time.sleep(1)  # the worker has the headers and half the body, and waits for the rest
        kill_group(servers[-1])
        try:
            answer = reading.recv(1024)
        except ConnectionResetError:
            answer = b""
        reading.close()
        assert answer == b"", f"the server answered a half-sent request: {answer!r}"
        assert not Span.objects.filter(project=project).exists()

        url = start_web("killed-committed")
        # A frozen broker holds the request after its commit: the announcement of the
        # stored traces (sent after commit) waits for Redis's answer (up to ~15 s).
        redis.pause()
        outcome: dict = {}

        def send() -> None:
            try:
                outcome["status"] = post_otlp(url, body, key=ingest_key.secret_key, timeout=120).status
            except Exception as exc:  # the connection dies with the server
                outcome["error"] = exc

        client = threading.Thread(target=send)
        client.start()
        wait_until(lambda: Span.objects.filter(project=project).count() == 2 * len(trace_ids), timeout=60,
                   what="the batch to be committed", proc=servers[-1])
        assert client.is_alive() and not outcome, "the client got an answer before the kill"
        kill_group(servers[-1])
        client.join(30)
        assert "error" in outcome, outcome
        redis.resume()

        url = start_web("restarted")
        assert post_otlp(url, body, key=ingest_key.secret_key).status == 200
        _assert_aggregates(project, trace_ids, llm_calls=1)
        # The killed request's announcement reached Redis at most once; the retry, which
        # stored nothing new, announced nothing (the sweep covers a lost announcement).
        assert len(_queued_tasks(redis, "pipeline")) <= 1
    finally:
        if redis.process is not None:
            redis.resume()
        for web in servers:
            web.stop()
        redis.stop()


def test_broker_stopped_ingest_stores_and_the_sweep_catches_up_once(tmp_path, integration_env,
                                                                     integration_logs, ingest_key):
    """With the broker stopped, ingest still answers 200 and stores the spans (their
    announcement is lost). Once the broker is back, a worker and beat (as `make run`
    starts them) catch up through the periodic sweep: every trace gets its evaluator
    scores and the session its implicit signals, and further sweeps double nothing."""
    redis = RedisServer(tmp_path / "redis", log_path=integration_logs / "redis-stopped.log")
    redis.start()
    env = {**integration_env, "REDIS_URL": redis.url, "SPYGLASS_SCORING_SWEEP_GRACE": "0",
           "SPYGLASS_SCORING_SWEEP_SECONDS": "3"}
    web, url = start_gunicorn(env=env, log_path=integration_logs / "gunicorn-broker-stopped.log", workers=1)
    worker = beat = None
    project = ingest_key.project
    try:
        wait_for_http(url + "/healthz", proc=web)
        redis.stop()
        # One session: the user asks, asks again word for word (a rephrase of turn 1),
        # then thanks the assistant (a reaction to turn 2).
        session = f"sess-{uuid.uuid4().hex[:8]}"
        start = time.time_ns() - 120 * 10**9
        turns = [("How do I reset my password?", "Use the reset link on the log-in page."),
                 ("How do I reset my password?", "Open Settings, then Security, then Reset password."),
                 ("Thanks, that worked!", "Glad to help.")]
        trace_ids = [new_trace_id() for _ in turns]
        for k, ((question, answer), trace_id) in enumerate(zip(turns, trace_ids, strict=True)):
            body = traces_protobuf(_chat_trace(trace_id, question=question, answer=answer,
                                               start=start + k * 20 * 10**9, session=session))
            response = post_otlp(url, body, key=ingest_key.secret_key, timeout=90)
            assert response.status == 200, response.body
        _assert_aggregates(project, trace_ids, llm_calls=1)
        assert "could not announce" in web.log_text()
        web.stop()

        redis.start()  # back, and empty: whatever it held is gone
        tag = uuid.uuid4().hex[:6]
        worker = start_celery_worker(env=env, log_path=integration_logs / "celery-after-outage.log",
                                     name=f"after-outage-{tag}@localhost", queues=settings.CELERY_WORKER_QUEUES)
        beat = start_celery_beat(env=env, log_path=integration_logs / "beat-after-outage.log",
                                 schedule_path=tmp_path / "beat-schedule")

        def implicit() -> set[tuple[str, str]]:
            return set(Score.objects.filter(project=project, source=Source.IMPLICIT).values_list("trace_id", "name"))

        def caught_up() -> bool:
            scored = TraceScoring.objects.filter(project=project, status="scored").count() == len(trace_ids)
            return scored and {(trace_ids[0], "rephrase"), (trace_ids[1], "thanks")} <= implicit()

        wait_until(caught_up, timeout=150, what="the sweep to catch up on scores and signals", proc=worker)
        assert beat.alive(), beat.log_tail()
        # Two more sweeps come and go: they find nothing to do and add nothing.
        sweeps = beat.log_text().count("evaluation.tasks.scoring_sweep")
        wait_until(lambda: beat.log_text().count("evaluation.tasks.scoring_sweep") >= sweeps + 2, timeout=30,
                   what="two more sweeps", proc=beat)
        time.sleep(2)  # the last sweep's message handled
        evaluator = Score.objects.filter(project=project, source=Source.EVALUATOR)
        assert set(evaluator.values_list("trace_id", "name")) == {(t, n) for t in trace_ids for n in EVALUATOR_NAMES}
        assert _doubled_scores(project) == []
    finally:
        for process in (web, worker, beat):
            if process is not None:
                process.stop()
        redis.stop()


def test_frozen_broker_neither_holds_ingest_nor_health(tmp_path, integration_env, integration_logs, ingest_key):
    """A broker that hangs instead of refusing (a frozen Redis, a dead peer behind a
    firewall that drops packets): ingest still answers 200 soon after its commit and
    stores the spans, /healthz answers 503 naming the broker instead of hanging, and once
    the broker is back the next batch is announced again."""
    redis = RedisServer(tmp_path / "redis", log_path=integration_logs / "redis-frozen.log")
    redis.start()
    env = {**integration_env, "REDIS_URL": redis.url}
    web, url = start_gunicorn(env=env, log_path=integration_logs / "gunicorn-frozen-broker.log", workers=1)
    project = ingest_key.project
    try:
        wait_for_http(url + "/healthz", proc=web)
        # A batch first, so the web worker holds a live broker connection when Redis freezes.
        assert post_otlp(url, _batch(1)[1], key=ingest_key.secret_key).status == 200
        redis.pause()
        trace_ids, body = _batch(5)
        started = time.monotonic()
        response = post_otlp(url, body, key=ingest_key.secret_key, timeout=90)
        elapsed = time.monotonic() - started
        assert response.status == 200, response.body
        assert Span.objects.filter(project=project, trace_id__in=trace_ids).count() == 2 * len(trace_ids)
        assert elapsed < 20, f"ingest took {elapsed:.1f}s with the broker frozen"
        assert "could not announce" in web.log_text()

        started = time.monotonic()
        health = http("GET", url + "/healthz", timeout=90)
        elapsed = time.monotonic() - started
        assert health.status == 503 and "broker" in json.loads(health.body)["failing"], health.body
        assert elapsed < 20, f"/healthz took {elapsed:.1f}s with the broker frozen"

        redis.resume()
        with redis.client() as client:
            client.delete("pipeline")
        later, body = _batch(1)
        assert post_otlp(url, body, key=ingest_key.secret_key).status == 200
        announced = _queued_tasks(redis, "pipeline")
        assert [args[1] for _, args in announced] == [
            list(Trace.objects.filter(project=project, trace_id__in=later).values_list("pk", flat=True))]
    finally:
        if redis.process is not None:
            redis.resume()
        web.stop()
        redis.stop()
