"""The experiment runner against the local fake OpenAI-compatible server: outputs,
traces through the ingest path, a failing item, a 429 answer retried, cancel between
items, the cost cap, the rate limiter and evaluator results."""

from __future__ import annotations

from decimal import Decimal

import pytest

from experiments import runner
from experiments.models import Experiment, ExperimentResult, Status, StopReason
from experiments.services import ExperimentSpec, experiment_create
from tests.experiments.support import connect, make_dataset, make_prompt
from tests.integration.fake_openai import FakeOpenAIServer
from tracing.models import Trace


@pytest.fixture
def server():
    with FakeOpenAIServer() as fake:
        yield fake


def start(world, **spec) -> Experiment:
    options = {"dataset": "golden", "prompt": "qa", "model": "echo", "evaluators": ["exact_match"]}
    options.update(spec)
    return experiment_create(project=world.project, spec=ExperimentSpec(**options))


def execute(exp: Experiment) -> Experiment:
    sleeps: list[float] = []
    runner.experiment_execute(exp.pk, sleep=sleeps.append)
    exp.refresh_from_db()
    exp.sleeps = sleeps  # type: ignore[attr-defined]
    return exp


def results(exp: Experiment) -> dict[str, ExperimentResult]:
    return {r.item.input: r for r in ExperimentResult.objects.filter(experiment=exp).select_related("item")}


def test_run_stores_outputs_scores_and_one_tagged_trace_per_item(world, server):
    connect(world.project, server.base_url)
    make_dataset(world.project, inputs=["alpha", "beta", "gamma"], expected={"gamma": "something else"})
    make_prompt(world.project)
    exp = execute(start(world))
    assert (exp.status, exp.total, exp.done_count, exp.failed_count) == (Status.DONE, 3, 3, 0)
    rows = results(exp)
    assert rows["alpha"].output == "Q: alpha"  # the prompt rendered, the echo model answered it
    assert rows["alpha"].scores == {"exact_match": 1.0} and rows["gamma"].scores == {"exact_match": 0.0}
    traces = Trace.objects.filter(project=world.project, tags__contains=[exp.tag])
    assert traces.count() == 3
    trace = traces.get(trace_id=rows["beta"].trace_id)
    assert trace.metadata["experiment_id"] == exp.pk and trace.metadata["dataset_item_id"] == rows["beta"].item_id
    assert "Q: beta" in (trace.output or "") and "Q: beta" in (trace.input or "") and trace.environment == "experiment"
    assert rows["beta"].latency_ms is not None and rows["beta"].latency_ms >= 0


def test_a_failing_item_is_recorded_and_a_rate_limited_one_is_retried(world, server):
    connect(world.project, server.base_url)
    make_dataset(world.project, inputs=["fine", "bad [fail-400]", "busy [rate-limit-once]"])
    make_prompt(world.project)
    exp = execute(start(world))
    assert (exp.status, exp.done_count, exp.failed_count) == (Status.DONE, 3, 1)
    rows = results(exp)
    assert rows["bad [fail-400]"].error == "HTTP 400 from the model endpoint"
    assert rows["bad [fail-400]"].output is None and rows["bad [fail-400]"].scores == {}
    busy = rows["busy [rate-limit-once]"]
    assert busy.error == "" and busy.output == "Q: busy [rate-limit-once]" and busy.attempts == 2
    assert exp.sleeps == [runner.BACKOFF_SECONDS]  # one backoff, before the retry
    failed_trace = Trace.objects.get(project=world.project, trace_id=rows["bad [fail-400]"].trace_id)
    assert failed_trace.status == "error"


def test_server_errors_are_retried_then_reported(world, server):
    connect(world.project, server.base_url)
    make_dataset(world.project, inputs=["down [fail-500]"])
    make_prompt(world.project)
    exp = execute(start(world))
    row = results(exp)["down [fail-500]"]
    assert row.error == "HTTP 500 from the model endpoint" and row.attempts == runner.MAX_ATTEMPTS
    assert exp.sleeps == [0.5, 1.0, 2.0]


def test_cancel_is_checked_between_items(world, server):
    connect(world.project, server.base_url)
    make_dataset(world.project, inputs=[f"q{i}" for i in range(6)])
    make_prompt(world.project)
    exp = start(world, concurrency=1)
    Experiment.objects.filter(pk=exp.pk).update(cancel_requested=True)
    exp = execute(exp)
    # The first item was in flight when the flag was first read; nothing after it ran.
    assert (exp.status, exp.stop_reason, exp.done_count) == (Status.CANCELLED, StopReason.CANCELLED, 1)


def test_cost_cap_stops_the_run_below_the_cap(world, server):
    connect(world.project, server.base_url)
    make_dataset(world.project, inputs=[f"q{i}" for i in range(6)])
    make_prompt(world.project)
    exp = execute(start(world, concurrency=1, cost_cap_usd="0.025", cost_per_call_usd="0.01"))
    assert (exp.status, exp.stop_reason, exp.done_count) == (Status.DONE, StopReason.COST_CAP, 2)
    assert exp.cost_usd == Decimal("0.02")


def test_prompt_variables_come_from_item_metadata_and_a_missing_one_fails_only_that_item(world, server):
    connect(world.project, server.base_url)
    make_dataset(world.project, inputs=["a", "b"], metadata={"a": {"tone": "dry"}})
    make_prompt(world.project, template="Be {{tone}}.")
    exp = execute(start(world, evaluators=[]))
    rows = results(exp)
    assert rows["a"].output == "a"  # no {{input}} in the template: the item's input follows it
    assert "tone" in rows["b"].error and rows["b"].trace_id == ""
    assert server.requests[0][1]["messages"] == [{"role": "user", "content": "Be dry."},
                                                 {"role": "user", "content": "a"}]


def test_a_finished_run_is_not_run_again(world, server):
    connect(world.project, server.base_url)
    make_dataset(world.project, inputs=["a"])
    make_prompt(world.project)
    exp = execute(start(world))
    calls = len(server.requests)
    runner.experiment_execute(exp.pk)
    assert len(server.requests) == calls


def test_rate_limiter_spaces_call_starts():
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    limiter = runner.RateLimiter(120, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.wait()
    assert sleeps == [0.5, 1.0]  # 120/min: starts at 0, 0.5 and 1.0 s
