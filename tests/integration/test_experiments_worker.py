"""An experiment end to end: started over the live API, run by a real Celery worker
against the local fake OpenAI-compatible server (a failing item, a 429 answer), then a
second, slow run cancelled over the API while it runs."""

from __future__ import annotations

import json

import pytest

from experiments.models import Experiment, ExperimentResult
from tests.experiments.support import connect, make_dataset, make_prompt
from tests.integration.fake_openai import FakeOpenAIServer
from tests.integration.support import http, wait_until
from tracing.models import Trace

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _api(base: str, key: str, method: str, path: str, body: dict | None = None):
    response = http(method, base + path, json.dumps(body).encode() if body is not None else None,
                    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    return response.status, json.loads(response.body or b"{}")


def test_run_and_cancel_through_the_worker(live_server_url, celery_worker, ingest_key):
    project, key = ingest_key.project, ingest_key.secret_key
    with FakeOpenAIServer() as fake:
        connect(project, fake.base_url)
        make_dataset(project, inputs=["alpha", "bad [fail-400]", "busy [rate-limit-once]", "delta"])
        make_dataset(project, name="slow", inputs=[f"q{i}" for i in range(40)])
        make_prompt(project)

        status, body = _api(live_server_url, key, "POST", "/api/v1/experiments", {
            "dataset": "golden", "prompt": "qa", "model": "echo", "evaluators": ["exact_match"], "concurrency": 2})
        assert status == 201, body
        run = f"/api/v1/experiments/{body['id']}"
        wait_until(lambda: _api(live_server_url, key, "GET", run)[1]["status"] == "done", timeout=180,
                   what="the run to finish", proc=celery_worker.process)
        detail = _api(live_server_url, key, "GET", run)[1]
        assert (detail["done"], detail["failed"], detail["total"]) == (4, 1, 4)
        by_input = {r["output"]: r for r in detail["results"]}
        assert by_input["Q: busy [rate-limit-once]"]["attempts"] == 2
        assert detail["metrics"][0]["n"] == 3 and detail["metrics"][0]["mean"] == 1.0
        assert Trace.objects.filter(project=project, tags__contains=[detail["tag"]]).count() == 4

        fake.delay_seconds = 0.2
        status, body = _api(live_server_url, key, "POST", "/api/v1/experiments", {
            "dataset": "slow", "prompt": "qa", "model": "echo", "concurrency": 1})
        slow = body["id"]
        wait_until(lambda: ExperimentResult.objects.filter(experiment_id=slow).count() >= 2, timeout=120,
                   what="the slow run to start", proc=celery_worker.process)
        status, body = _api(live_server_url, key, "POST", f"/api/v1/experiments/{slow}/cancel")
        assert status == 200 and body["status"] == "running"  # the worker stops it between items
        wait_until(lambda: Experiment.objects.get(pk=slow).status == "cancelled", timeout=60,
                   what="the run to stop", proc=celery_worker.process)
        exp = Experiment.objects.get(pk=slow)
        assert 2 <= exp.done_count < 40 and exp.done_count == ExperimentResult.objects.filter(experiment=exp).count()
        calls = len(fake.requests)
        celery_worker.wait_idle()
        assert len(fake.requests) == calls  # nothing ran after the cancel
