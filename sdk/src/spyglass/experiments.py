"""``spyglass.run_experiment``: run your own code over a Spyglass dataset.

    import spyglass
    spyglass.init(host=..., secret_key=...)

    def is_polite(output, expected):          # your evaluator: a number or a bool
        return "please" in output.lower()

    run = spyglass.run_experiment(dataset="support-golden", task=my_app.answer,
                                  evaluators=["exact_match", "embedding_similarity", is_polite])
    print(run.url, run.metrics)

`task` is called with each item's input (a text or chat messages) and returns the output
text. Each call is traced (one trace per item, tagged ``experiment:<id>``, with your own
instrumentation's spans inside it), the outputs go to the server, which runs the named
server evaluators (exact_match, regex, json_valid, json_schema, pii, embedding_similarity,
toxicity, groundedness); callables run here and their values are posted beside. The run
then appears on the Experiments page and can be compared with any other run.
Like spyglass.datasets, failures of the server raise ``ExperimentError``; an exception in
``task`` is recorded as that item's error and the run goes on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import datasets
from ._feedback import current_trace_id

BATCH = 50


class ExperimentError(datasets.DatasetError):
    """An experiment call to the server failed; ``status`` is the HTTP status."""


@dataclass(frozen=True)
class ExperimentRun:
    id: int
    url: str
    status: str
    done: int
    failed: int
    metrics: list[dict[str, Any]] = field(default_factory=list)


def _call(method: str, path: str, body: Any = None) -> Any:
    try:
        return datasets._call(method, path, body)
    except datasets.DatasetError as exc:
        raise ExperimentError(str(exc), status=exc.status, detail=exc.detail) from None


def _run_one(task: Callable[[Any], Any], item: datasets.DatasetItem, experiment_id: int,
             custom: Sequence[Callable[..., Any]]) -> dict[str, Any]:
    from opentelemetry import trace

    from ._setup import get_tracer

    tag = f"experiment:{experiment_id}"
    attributes = {"tag.tags": ["experiment", tag], "deployment.environment.name": "experiment",
                  "metadata": json.dumps({"experiment_id": experiment_id, "dataset_item_id": item.id}),
                  "input.value": item.input if isinstance(item.input, str) else json.dumps(item.input)}
    output, error = None, ""
    started = time.perf_counter()
    tracer = get_tracer() or trace.get_tracer("spyglass")  # disabled SDK: no-op spans, still a result
    with tracer.start_as_current_span(f"experiment {experiment_id} item {item.id}",
                                            attributes=attributes) as span:
        trace_id = current_trace_id() or ""
        try:
            value = task(item.input)
            output = value if isinstance(value, str) else json.dumps(value, default=str)
            span.set_attribute("output.value", output)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:4000]
            span.set_status(trace.Status(trace.StatusCode.ERROR, error[:200]))
    result: dict[str, Any] = {"item_id": item.id, "output": output, "error": error, "trace_id": trace_id,
                              "latency_ms": (time.perf_counter() - started) * 1000}
    scores = {}
    if output is not None:
        for fn in custom:
            try:
                value = fn(output, item.expected_output)
            except Exception:
                continue
            if isinstance(value, bool | int | float):
                scores[fn.__name__] = float(value)
    result["scores"] = scores
    return result


def run_experiment(
    *,
    dataset: str,
    task: Callable[[Any], Any],
    evaluators: Sequence[str | dict[str, Any] | Callable[..., Any]] = (),
    name: str = "",
    version: int | None = None,
    split: str | None = None,
    concurrency: int = 4,
) -> ExperimentRun:
    """Run ``task`` over the items of ``dataset`` (a version and split if given) and send
    traces and results to Spyglass. Returns the finished run with its metric summaries."""
    from ._setup import flush

    server = [e for e in evaluators if not callable(e)]
    custom = [e for e in evaluators if callable(e)]
    body: dict[str, Any] = {"kind": "sdk", "dataset": dataset, "name": name, "evaluators": server,
                            "custom_evaluators": [fn.__name__ for fn in custom]}
    if version is not None:
        body["dataset_version"] = version
    if split is not None:
        body["split"] = split
    created = _call("POST", "/api/v1/experiments", body)
    experiment_id = created["id"]
    try:
        items = datasets.get(dataset, version=created["dataset_version"], split=split).items
    except datasets.DatasetError as exc:
        raise ExperimentError(str(exc), status=exc.status, detail=exc.detail) from None
    path = f"/api/v1/experiments/{experiment_id}/results"
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="spyglass-exp") as pool:
        results = list(pool.map(lambda item: _run_one(task, item, experiment_id, custom), items))
    flush()  # the traces reach the server with (or before) the results that name them
    for start in range(0, len(results), BATCH):
        _call("POST", path, {"results": results[start:start + BATCH], "finished": False})
    _call("POST", path, {"results": [], "finished": True})
    detail = _call("GET", f"/api/v1/experiments/{experiment_id}?limit=0")
    from ._prompts import _current_config

    return ExperimentRun(id=experiment_id, url=f"{_current_config().host}/api/v1/experiments/{experiment_id}",
                         status=detail["status"], done=detail["done"], failed=detail["failed"],
                         metrics=detail["metrics"])
