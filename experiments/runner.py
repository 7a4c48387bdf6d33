"""Runs an experiment's items through the project's OpenAI-compatible connection.

Threads make the calls (bounded by the run's concurrency; the work is waiting on the
network), the calling thread does every database write: results are flushed in
batches (one ingest transaction for their traces, one bulk insert for their rows), so
the database sees a few statements per batch instead of several per item, and no
worker thread ever holds a connection.

Between items the loop re-reads the cancel flag and checks the cost cap. The cap
counts the calls in flight at the average cost so far, so a run stops below its cap
except for at most `concurrency` calls that were already paid for.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import openai
import orjson
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from config.errors import ValidationFailed
from datasets.models import DatasetItem
from datasets.selectors import version_items
from evaluation.judge import CONNECT_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS, decrypt_secret
from evaluation.models import JudgeSettings
from experiments import evaluators
from experiments.models import Experiment, ExperimentResult, Kind, Status, StopReason
from prompts.models import PromptVersion
from prompts.templating import template_render
from tracing.cost import span_cost
from tracing.otlp.types import RawSpan
from tracing.services import spans_ingest

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 4  # one call + three retries, only on 429 and 5xx
BACKOFF_SECONDS = 0.5  # doubled per retry; a longer Retry-After header wins
MAX_BACKOFF_SECONDS = 20.0
FLUSH_ITEMS = 25
FLUSH_SECONDS = 0.5
# Model parameters a prompt version's config may carry into the call.
CALL_PARAMS = ("temperature", "max_tokens", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty")
ENVIRONMENT = "experiment"


@dataclass(frozen=True)
class Connection:
    base_url: str
    api_key: str
    model: str
    timeout_seconds: float


def connection_for(project_id: int) -> Connection | None:
    """The LLM judge's OpenAI-compatible endpoint (evaluation settings): one connection
    per project, whether or not the judge itself is enabled."""
    row = JudgeSettings.objects.filter(project_id=project_id).first()
    if row is None or not row.base_url:
        return None
    api_key = decrypt_secret(row.api_key_encrypted)
    if not api_key:
        return None
    return Connection(row.base_url, api_key, row.model, row.timeout_seconds)


class RateLimiter:
    """Call starts at most `per_minute` a minute across the run's threads, evenly spaced."""

    def __init__(self, per_minute: int | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:  # reserve a slot; sleep outside the lock so others reserve theirs
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


@dataclass
class CallResult:
    item_id: int
    messages: list[dict[str, Any]]
    output: str | None = None
    error: str = ""
    model: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    attempts: int = 0
    start_ns: int = 0
    end_ns: int = 0
    cost_usd: Decimal | None = None
    # SDK runs: the user's code made the call and its trace; these come from the post.
    sdk_trace_id: str | None = None
    sdk_latency_ms: float | None = None
    sdk_scores: dict[str, float] | None = None


def _backoff(exc: openai.APIStatusError, attempt: int) -> float:
    delay = BACKOFF_SECONDS * 2 ** (attempt - 1)
    retry_after = exc.response.headers.get("retry-after") if exc.response is not None else None
    if retry_after:
        try:
            delay = max(delay, float(retry_after))
        except ValueError:
            pass  # an HTTP date: keep our own backoff
    return min(delay, MAX_BACKOFF_SECONDS)


def model_call(client: openai.OpenAI, *, item_id: int, model: str, messages: list[dict[str, Any]],
               params: dict[str, Any], limiter: RateLimiter,
               sleep: Callable[[float], None] = time.sleep) -> CallResult:
    """One item's completion. Never raises for the endpoint's failures: they come back in
    `error`. Retries 429 and 5xx with exponential backoff; other errors are final."""
    result = CallResult(item_id=item_id, messages=messages, model=model, start_ns=time.time_ns())
    while True:
        result.attempts += 1
        limiter.wait()
        try:
            response = client.chat.completions.create(model=model, messages=messages, **params)
        except openai.APIStatusError as exc:
            if (exc.status_code == 429 or exc.status_code >= 500) and result.attempts < MAX_ATTEMPTS:
                sleep(_backoff(exc, result.attempts))
                continue
            result.error = f"HTTP {exc.status_code} from the model endpoint"
        except openai.APITimeoutError:
            result.error = "the model endpoint timed out"
        except openai.APIConnectionError as exc:
            result.error = f"cannot reach the model endpoint ({type(exc.__cause__).__name__})"
        except openai.OpenAIError as exc:
            result.error = f"model client error: {type(exc).__name__}"
        except (ValueError, TypeError, AttributeError) as exc:
            result.error = f"unreadable response from the model endpoint ({type(exc).__name__})"
        else:
            usage = getattr(response, "usage", None)
            result.input_tokens = getattr(usage, "prompt_tokens", None)
            result.output_tokens = getattr(usage, "completion_tokens", None)
            result.model = getattr(response, "model", None) or model
            try:
                content = response.choices[0].message.content
            except (AttributeError, IndexError, TypeError):
                content = None
            if isinstance(content, str):
                result.output = content
            else:
                result.error = "the model answered without text content"
        result.end_ns = time.time_ns()
        return result


def item_text(value: Any) -> str:
    """An item's input as text: itself, or its last user message."""
    if isinstance(value, str):
        return value
    for message in reversed(value or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def item_messages(version: PromptVersion | None, item: DatasetItem) -> list[dict[str, Any]]:
    """The chat messages for one item: the prompt rendered with the item's metadata and
    `{{input}}`; when the template has no `{{input}}`, the item's input follows it."""
    text = item_text(item.input)
    own = item.input if isinstance(item.input, list) else [{"role": "user", "content": text}]
    if version is None:
        return own
    values = {k: v for k, v in (item.metadata or {}).items() if isinstance(v, str | int | float | bool)}
    values["input"] = text
    rendered = template_render(version.template, values)
    messages = [{"role": "user", "content": rendered}] if isinstance(rendered, str) else list(rendered)
    if "input" not in (version.variables or []):
        messages += own
    return messages


def item_context(item: DatasetItem) -> list[str]:
    """What groundedness checks the output against: metadata `context` (a text or a list)."""
    raw = (item.metadata or {}).get("context")
    if isinstance(raw, str):
        return [raw] if raw.strip() else []
    if isinstance(raw, list):
        return [str(x) for x in raw if str(x).strip()]
    return []


def call_cost(exp: Experiment, result: CallResult) -> Decimal | None:
    if result.input_tokens is None and result.output_tokens is None:
        # Nothing billed that we can see (refused, 5xx after retries).
        return Decimal(0) if result.output is None else exp.cost_per_call_usd
    priced = span_cost(provider=None, model=result.model, input_tokens=result.input_tokens,
                       output_tokens=result.output_tokens, cached_tokens=None, cache_creation_tokens=None,
                       at=timezone.now())
    return priced if priced is not None else exp.cost_per_call_usd


def _claim(experiment_id: int) -> Experiment | None:
    # Conditional: a redelivered message for a finished run does nothing; one for a run
    # that was interrupted resumes it (items with a result are skipped).
    claimed = Experiment.objects.filter(pk=experiment_id, status__in=(Status.QUEUED, Status.RUNNING)).update(
        status=Status.RUNNING, started_at=timezone.now())
    if not claimed:
        return None
    return Experiment.objects.select_related("project", "dataset", "prompt", "prompt_version").get(pk=experiment_id)


def _finish(exp: Experiment, status: str, *, reason: str = "", error: str = "") -> None:
    totals = exp.results.aggregate(n=Count("id"), failed=Count("id", filter=~Q(error="")), cost=Sum("cost_usd"))
    Experiment.objects.filter(pk=exp.pk).update(
        status=status, stop_reason=reason, error=error[:4000], finished_at=timezone.now(),
        done_count=totals["n"], failed_count=totals["failed"], cost_usd=totals["cost"] or Decimal(0))


def experiment_execute(experiment_id: int, *, client_factory: Callable[..., openai.OpenAI] = openai.OpenAI,
                       sleep: Callable[[float], None] = time.sleep) -> None:
    """Run (or resume) one experiment to its end; idempotent for a finished run."""
    exp = _claim(experiment_id)
    if exp is None or exp.kind != Kind.PROMPT:
        return
    try:
        status, reason = _run(exp, client_factory=client_factory, sleep=sleep)
    except Exception as exc:
        logger.exception("experiment %s failed", exp.pk)
        _finish(exp, Status.FAILED, reason=StopReason.ERROR, error=f"{type(exc).__name__}: {exc}")
        return
    _finish(exp, status, reason=reason)


def _run(exp: Experiment, *, client_factory: Callable[..., openai.OpenAI],
         sleep: Callable[[float], None]) -> tuple[str, str]:
    connection = connection_for(exp.project_id)
    if connection is None:
        raise ValidationFailed("the project has no OpenAI-compatible connection (base URL and API key in the "
                               "LLM judge settings)")
    model = exp.model or connection.model
    version = exp.prompt_version
    params = {k: v for k, v in ((version.config if version else {}) or {}).items() if k in CALL_PARAMS}
    params.update(exp.params or {})
    timeout = openai.Timeout(min(connection.timeout_seconds, MAX_TIMEOUT_SECONDS),
                             connect=min(CONNECT_TIMEOUT_SECONDS, connection.timeout_seconds))
    # max_retries=0: our loop retries 429/5xx only; the client's would repeat timeouts too.
    client = client_factory(base_url=connection.base_url, api_key=connection.api_key, timeout=timeout,
                            max_retries=0)
    limiter = RateLimiter(exp.rate_limit_per_minute, sleep=sleep)
    # Skipped in Python, not excluded in SQL: the split is a window over the version's
    # items, and a WHERE on result rows would change it on a resumed run.
    done_items = set(ExperimentResult.objects.filter(experiment=exp).values_list("item_id", flat=True))
    items = version_items(dataset=exp.dataset, number=exp.dataset_version, split=exp.split)
    flusher = _Flusher(exp)
    spent, calls = Decimal(exp.cost_usd), 0
    stop = ""
    pending: set[Future] = set()
    in_flight: dict[Future, DatasetItem] = {}
    with ThreadPoolExecutor(max_workers=exp.concurrency, thread_name_prefix=f"experiment-{exp.pk}") as pool:
        queue = items.iterator(chunk_size=500)
        exhausted = False
        while True:
            while not stop and not exhausted and len(pending) < exp.concurrency:
                average = spent / calls if calls else Decimal(0)
                if exp.cost_cap_usd is not None and spent + average * (len(pending) + 1) > exp.cost_cap_usd:
                    stop = StopReason.COST_CAP
                    break
                item = next(queue, None)
                if item is None:
                    exhausted = True
                    break
                if item.pk in done_items:
                    continue
                try:
                    messages = item_messages(version, item)
                except ValidationFailed as exc:  # a variable the item does not provide
                    flusher.add(CallResult(item.pk, [], error=f"prompt: {exc.message}"), item)
                    continue
                future = pool.submit(model_call, client, item_id=item.pk, model=model, messages=messages,
                                     params=params, limiter=limiter, sleep=sleep)
                in_flight[future] = item
                pending.add(future)
            if not pending:
                break
            finished, pending = wait(pending, timeout=FLUSH_SECONDS, return_when=FIRST_COMPLETED)
            for future in finished:
                result = future.result()
                result.cost_usd = call_cost(exp, result)
                spent += result.cost_usd or 0
                calls += 1
                flusher.add(result, in_flight.pop(future))
            flusher.maybe_flush(force=not pending)
            if not stop and Experiment.objects.filter(pk=exp.pk, cancel_requested=True).exists():
                stop = StopReason.CANCELLED
    flusher.maybe_flush(force=True)
    if stop == StopReason.CANCELLED:
        return Status.CANCELLED, stop
    return Status.DONE, stop


class _Flusher:
    """Buffers finished items and writes them in batches (see the module docstring)."""

    def __init__(self, exp: Experiment):
        self.exp = exp
        self.buffer: list[tuple[CallResult, DatasetItem]] = []
        self.last = time.monotonic()

    def add(self, result: CallResult, item: DatasetItem) -> None:
        self.buffer.append((result, item))

    def maybe_flush(self, *, force: bool = False) -> None:
        if not self.buffer:
            return
        if not force and len(self.buffer) < FLUSH_ITEMS and time.monotonic() - self.last < FLUSH_SECONDS:
            return
        batch, self.buffer, self.last = self.buffer, [], time.monotonic()
        results_flush(self.exp, batch)


def results_flush(exp: Experiment, batch: list[tuple[CallResult, DatasetItem]]) -> None:
    """Store a batch: traces through the ingest path, evaluator results, result rows and
    the run's progress, in one transaction."""
    judged = evaluators.evaluate(exp.evaluators or [], [
        evaluators.ItemOutput(r.output, item.expected_output, item_context(item)) for r, item in batch])
    rows, spans = [], []
    for (result, item), (scores, evidence) in zip(batch, judged, strict=True):
        if result.sdk_trace_id is not None:  # the SDK sent its own trace
            trace_id, latency = result.sdk_trace_id, result.sdk_latency_ms
            scores = {**scores, **(result.sdk_scores or {})}
        else:
            trace_id = secrets.token_hex(16) if result.start_ns else ""
            latency = (result.end_ns - result.start_ns) / 1e6 if result.start_ns else None
        if result.start_ns:
            spans.append(_span(exp, result, item, trace_id))
        rows.append(ExperimentResult(
            experiment=exp, project_id=exp.project_id, item=item, trace_id=trace_id,
            output=result.output, error=result.error, latency_ms=latency,
            cost_usd=result.cost_usd, input_tokens=result.input_tokens, output_tokens=result.output_tokens,
            attempts=max(result.attempts, 1), scores=scores, evidence=evidence))
    with transaction.atomic():
        if spans:
            spans_ingest(project=exp.project, spans=spans)
        ExperimentResult.objects.bulk_create(rows, ignore_conflicts=True)
        Experiment.objects.filter(pk=exp.pk).update(
            done_count=F("done_count") + len(rows),
            failed_count=F("failed_count") + sum(1 for r in rows if r.error),
            cost_usd=F("cost_usd") + sum((r.cost_usd or Decimal(0) for r in rows), Decimal(0)))


def _span(exp: Experiment, result: CallResult, item: DatasetItem, trace_id: str) -> RawSpan:
    """The item's call as an OTel GenAI chat span, so ingest maps it like any client's."""
    version = exp.prompt_version
    metadata = {"experiment_id": exp.pk, "dataset": exp.dataset.name, "dataset_version": exp.dataset_version,
                "dataset_item_id": item.pk}
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": exp.model or result.model,
        "gen_ai.input.messages": orjson.dumps(result.messages).decode(),
        "tag.tags": ["experiment", exp.tag],
        "metadata": orjson.dumps(metadata).decode(),
        "deployment.environment.name": ENVIRONMENT,
        "langfuse.trace.name": f"experiment {exp.name or exp.pk}",
    }
    if result.model:
        attributes["gen_ai.response.model"] = result.model
    if result.output is not None:
        attributes["gen_ai.output.messages"] = orjson.dumps([{"role": "assistant", "content": result.output}]).decode()
    if result.input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = result.input_tokens
    if result.output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = result.output_tokens
    if version is not None and exp.prompt is not None:
        attributes["spyglass.prompt.name"] = exp.prompt.name
        attributes["spyglass.prompt.version"] = str(version.version)
    if result.error:
        attributes["error.type"] = result.error[:200]
    return RawSpan(trace_id=trace_id, span_id=secrets.token_hex(8), parent_span_id=None,
                   name=f"chat {result.model or exp.model}", otel_kind=3, start_ns=result.start_ns,
                   end_ns=max(result.end_ns, result.start_ns), status_code=2 if result.error else 1,
                   status_message=result.error or None, attributes=attributes, events=[],
                   resource={"service.name": "spyglass-experiments"})
