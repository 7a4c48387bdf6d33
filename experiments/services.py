"""Writes of experiments: start a run (everything it will use is pinned now), cancel it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, ValidationFailed
from datasets.selectors import dataset_get, split_of, version_items, version_number
from experiments import evaluators
from experiments.models import Experiment, Kind, Status, StopReason
from experiments.runner import CALL_PARAMS, connection_for
from projects.models import Project
from prompts.selectors import prompt_resolve
from tracing.cost import span_cost

logger = logging.getLogger(__name__)

MAX_CONCURRENCY = 32
MAX_RATE_PER_MINUTE = 100_000


@dataclass(frozen=True)
class ExperimentSpec:
    """What a caller asked for, before names are resolved."""

    dataset: str
    prompt: str | None = None
    prompt_version: int | None = None
    prompt_label: str | None = None
    model: str = ""
    dataset_version: Any = None
    split: Any = None
    name: str = ""
    evaluators: Any = None
    params: Any = None
    concurrency: int = 4
    rate_limit_per_minute: int | None = None
    cost_cap_usd: Any = None
    cost_per_call_usd: Any = None
    kind: str = Kind.PROMPT
    custom_evaluators: Any = None  # SDK runs: names of the SDK's own evaluators


def _bad(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", detail={field: message})


def _money(field: str, raw: Any) -> Decimal | None:
    if raw in (None, ""):
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise _bad(field, "must be a number of US dollars") from None
    if not value.is_finite() or value < 0 or value >= Decimal(10) ** 8:
        raise _bad(field, "must be between 0 and 100,000,000")
    return value


def _params(raw: Any) -> dict[str, Any]:
    if raw in (None, ""):
        return {}
    if not isinstance(raw, dict):
        raise _bad("params", "must be an object, e.g. {\"temperature\": 0}")
    unknown = sorted(set(raw) - set(CALL_PARAMS))
    if unknown:
        raise _bad("params", f"unknown parameter {unknown[0]!r} (allowed: {', '.join(CALL_PARAMS)})")
    return dict(raw)


@transaction.atomic
def experiment_create(*, project: Project, spec: ExperimentSpec, user: Any = None, inline: bool = False) -> Experiment:
    """Validate and pin a run; its task is queued after commit (`inline`: the caller runs
    it, e.g. the experiment_run command). Unknown dataset or prompt
    names raise NotFound, anything else wrong ValidationFailed naming the field."""
    dataset = dataset_get(project=project, name=spec.dataset)
    number = version_number(dataset, spec.dataset_version)
    split = split_of(spec.split)
    total = version_items(dataset=dataset, number=number, split=split).count()
    if not 1 <= spec.concurrency <= MAX_CONCURRENCY:
        raise _bad("concurrency", f"must be between 1 and {MAX_CONCURRENCY}")
    if spec.rate_limit_per_minute is not None and not 1 <= spec.rate_limit_per_minute <= MAX_RATE_PER_MINUTE:
        raise _bad("rate_limit_per_minute", f"must be between 1 and {MAX_RATE_PER_MINUTE}")
    cap = _money("cost_cap_usd", spec.cost_cap_usd)
    per_call = _money("cost_per_call_usd", spec.cost_per_call_usd)
    if spec.kind not in Kind.values:
        raise _bad("kind", "must be prompt or sdk")
    checks = evaluators.specs_validate(spec.evaluators)
    if spec.kind == Kind.SDK:
        checks += evaluators.custom_names_validate(spec.custom_evaluators)
    elif spec.custom_evaluators:
        raise _bad("custom_evaluators", "only SDK runs (kind sdk) post their own evaluators' values")
    params = _params(spec.params)
    prompt = version = None
    model = (spec.model or "").strip()
    if len(model) > 200:
        raise _bad("model", "at most 200 characters")
    if spec.kind == Kind.PROMPT:
        if not spec.prompt:
            raise _bad("prompt", "a prompt name from the registry is required")
        if spec.prompt_label is not None and spec.prompt_version is not None:
            raise _bad("prompt_label", "give either prompt_version or prompt_label, not both")
        resolved = prompt_resolve(project=project, name=spec.prompt, label=spec.prompt_label or None,
                                  version=spec.prompt_version)
        prompt, version = resolved.prompt, resolved.version
        connection = connection_for(project.pk)
        if connection is None:
            raise _bad("connection", "the project has no OpenAI-compatible connection: set a base URL and an "
                                     "API key in the LLM judge settings")
        model = model or str((version.config or {}).get("model") or "") or connection.model
        if not model:
            raise _bad("model", "no model given, none in the prompt version's config nor in the connection")
        if cap is not None and per_call is None and span_cost(
                provider=None, model=model, input_tokens=1000, output_tokens=1000, cached_tokens=None,
                cache_creation_tokens=None, at=timezone.now()) is None:
            # A cap that can never trigger would be worse than no cap.
            raise _bad("cost_per_call_usd", f"model {model!r} has no known price; give a per-call cost so that "
                                            "the cost cap can work")
    exp = Experiment.objects.create(
        project=project, name=(spec.name or "").strip()[:200], kind=spec.kind, dataset=dataset,
        dataset_version=number, split=split, prompt=prompt, prompt_version=version,
        prompt_label=spec.prompt_label or "", model=model, params=params, evaluators=checks,
        concurrency=spec.concurrency, rate_limit_per_minute=spec.rate_limit_per_minute, cost_cap_usd=cap,
        cost_per_call_usd=per_call, total=total, created_by=user if getattr(user, "pk", None) else None,
        status=Status.QUEUED if spec.kind == Kind.PROMPT else Status.RUNNING,
        started_at=None if spec.kind == Kind.PROMPT else timezone.now())
    if spec.kind == Kind.PROMPT and not inline:
        transaction.on_commit(lambda: _enqueue(exp.pk))
    return exp


def _enqueue(experiment_id: int) -> None:
    from experiments.tasks import experiment_run

    try:
        experiment_run.delay(experiment_id)
    except Exception as exc:  # noqa: BLE001 - any broker failure
        # The row is committed: say why it will never run instead of leaving it queued.
        logger.warning("could not queue experiment %s: %s", experiment_id, exc)
        Experiment.objects.filter(pk=experiment_id, status=Status.QUEUED).update(
            status=Status.FAILED, stop_reason=StopReason.ERROR, finished_at=timezone.now(),
            error="could not queue the run: the task broker is unavailable; start it again")


@transaction.atomic
def experiment_cancel(*, experiment: Experiment) -> Experiment:
    """Ask the run to stop; it stops between items. A queued run is cancelled at once
    (the task then finds nothing to claim). Cancelling a finished run changes nothing."""
    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if locked.finished:
        return locked
    locked.cancel_requested = True
    fields = ["cancel_requested"]
    if locked.status == Status.QUEUED or locked.kind == Kind.SDK:
        locked.status, locked.stop_reason, locked.finished_at = Status.CANCELLED, StopReason.CANCELLED, timezone.now()
        fields += ["status", "stop_reason", "finished_at"]
    locked.save(update_fields=fields)
    return locked


MAX_RESULTS_PER_CALL = 1000


@dataclass(frozen=True)
class ResultIn:
    item_id: int
    output: str | None
    error: str = ""
    latency_ms: float | None = None
    trace_id: str = ""
    scores: dict[str, float] | None = None


def results_parse(raw: Any) -> list[ResultIn]:
    """The SDK's posted results; a ValidationFailed names the entry and field."""
    if not isinstance(raw, list) or len(raw) > MAX_RESULTS_PER_CALL:
        raise _bad("results", f"must be a list of at most {MAX_RESULTS_PER_CALL} results")
    out = []
    for i, entry in enumerate(raw):
        where = f"results[{i}]"
        if not isinstance(entry, dict):
            raise _bad(where, "must be an object")
        item_id, output, error = entry.get("item_id"), entry.get("output"), entry.get("error") or ""
        if not isinstance(item_id, int) or isinstance(item_id, bool):
            raise _bad(f"{where}.item_id", "a dataset item id (integer) is required")
        if output is not None and not isinstance(output, str):
            raise _bad(f"{where}.output", "must be a string or null")
        if not isinstance(error, str):
            raise _bad(f"{where}.error", "must be a string")
        latency = entry.get("latency_ms")
        if latency is not None and (not isinstance(latency, int | float) or isinstance(latency, bool) or latency < 0):
            raise _bad(f"{where}.latency_ms", "must be a non-negative number")
        trace_id = entry.get("trace_id") or ""
        if not isinstance(trace_id, str) or (trace_id and len(trace_id) != 32):
            raise _bad(f"{where}.trace_id", "must be 32 hex characters")
        scores = entry.get("scores") or {}
        if not isinstance(scores, dict) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and v == v for v in scores.values()):
            raise _bad(f"{where}.scores", "must map evaluator names to numbers")
        out.append(ResultIn(item_id, output, error[:4000], latency, trace_id.lower(),
                            {k: float(v) for k, v in scores.items()}))
    return out


def results_record(*, experiment: Experiment, results: list[ResultIn], finished: bool) -> Experiment:
    """Store an SDK run's results (the server's evaluators run on the outputs here), and
    finish the run when `finished`. Items already recorded are skipped (a retried post)."""
    from datasets.models import DatasetItem, in_version
    from experiments.runner import CallResult, results_flush

    if experiment.kind != Kind.SDK:
        raise Conflict("results: only SDK runs take posted results; the server runs prompt runs itself")
    if experiment.finished:
        raise Conflict(f"results: experiment {experiment.pk} is {experiment.status}")
    custom = {s["name"] for s in experiment.evaluators or [] if s.get("custom")}
    for i, r in enumerate(results):
        unknown = sorted(set(r.scores or {}) - custom)
        if unknown:
            raise _bad(f"results[{i}].scores", f"{unknown[0]!r} is not one of this run's custom evaluators")
    items = {item.pk: item for item in DatasetItem.objects.filter(
        in_version(experiment.dataset_version), dataset=experiment.dataset, pk__in=[r.item_id for r in results])}
    for i, r in enumerate(results):
        if r.item_id not in items:
            raise _bad(f"results[{i}].item_id", f"item {r.item_id} is not in {experiment.dataset.name} "
                                                f"v{experiment.dataset_version}")
    batch = []
    for r in results:
        call = CallResult(item_id=r.item_id, messages=[], output=r.output, error=r.error)
        call.sdk_trace_id, call.sdk_latency_ms, call.sdk_scores = r.trace_id, r.latency_ms, r.scores
        batch.append((call, items[r.item_id]))
    if batch:
        results_flush(experiment, batch)
    if finished:
        from experiments.runner import _finish

        exp = Experiment.objects.get(pk=experiment.pk)
        _finish(exp, Status.CANCELLED if exp.cancel_requested else Status.DONE,
                reason=StopReason.CANCELLED if exp.cancel_requested else "")
    return Experiment.objects.get(pk=experiment.pk)
