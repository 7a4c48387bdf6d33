"""spyglass.run_experiment against the real server (pytest-django's live server): the
user's callable runs per item, traces and results reach the server, server and custom
evaluators both score, a raising task is that item's error."""

from __future__ import annotations

import time

import pytest

from experiments.models import Experiment, ExperimentResult
from tests.experiments.support import make_dataset
from tracing.models import Trace

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def spyglass_sdk(world, live_server):
    import spyglass

    spyglass.init(host=live_server.url, secret_key=world.key.secret_key, service_name="experiments-sdk-test")
    yield spyglass
    spyglass.shutdown()


def test_run_experiment_runs_the_task_and_sends_traces_and_results(spyglass_sdk, world):
    make_dataset(world.project, inputs=["alpha", "beta", "boom"])

    def task(question: str) -> str:
        if question == "boom":
            raise RuntimeError("the app broke")
        return f"Q: {question}"

    def short(output: str, expected: str | None) -> bool:
        return len(output) < 9

    run = spyglass_sdk.run_experiment(dataset="golden", task=task, evaluators=["exact_match", short],
                                      name="sdk run")
    assert (run.status, run.done, run.failed) == ("done", 3, 1)
    assert {m["name"]: (m["n"], m["mean"]) for m in run.metrics} == {"exact_match": (2, 1.0), "short": (2, 1.0)}
    exp = Experiment.objects.get(pk=run.id)
    assert exp.kind == "sdk" and exp.name == "sdk run"
    rows = {r.item.input: r for r in ExperimentResult.objects.filter(experiment=exp).select_related("item")}
    assert rows["boom"].error == "RuntimeError: the app broke" and rows["boom"].output is None
    assert rows["alpha"].scores == {"exact_match": 1.0, "short": 1.0}
    deadline = time.monotonic() + 20
    while Trace.objects.filter(project=world.project, tags__contains=[exp.tag]).count() < 3:
        assert time.monotonic() < deadline, "the SDK's traces did not arrive"
        time.sleep(0.2)
    trace = Trace.objects.get(trace_id=rows["alpha"].trace_id)
    assert trace.output == "Q: alpha" and trace.metadata["experiment_id"] == exp.pk


def test_unknown_dataset_raises(spyglass_sdk, world):
    with pytest.raises(spyglass_sdk.ExperimentError) as missing:
        spyglass_sdk.run_experiment(dataset="nope", task=str)
    assert missing.value.status == 404
