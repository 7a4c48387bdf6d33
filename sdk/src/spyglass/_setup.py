"""``init`` / ``flush`` / ``shutdown``: wiring the SDK into OpenTelemetry.

Spyglass adds one SpanProcessor to a TracerProvider. If the app already configured an
SDK TracerProvider (its own exporters, other instrumentations), we join it rather than
replace it, so spans from every instrumentation carry Spyglass context and reach both
backends. Otherwise we create a provider and make it the global one.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from . import _attributes as A
from ._config import Config, MaskFn, resolve
from ._context import _EMPTY, current_values
from ._export import ResilientExporter
from ._log import logger, reset_all, warn_once
from ._version import __version__

_INSTRUMENTATION_NAME = "spyglass"


class _RateSampler(Sampler):
    """ParentBased(TraceIdRatioBased) whose rate can change when ``init`` is called again."""

    def __init__(self, rate: float) -> None:
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        self._delegate = ParentBased(TraceIdRatioBased(rate))

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        return self._delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"SpyglassSampler{{{self._delegate.get_description()}}}"


def _trace_sampled(trace_id: int, rate: float) -> bool:
    # Same rule as TraceIdRatioBased, so a joined provider samples whole traces consistently.
    bound = TraceIdRatioBased.get_bound_for_rate(rate)
    return trace_id & TraceIdRatioBased.TRACE_ID_LIMIT < bound


class SpyglassSpanProcessor(SpanProcessor):
    """Copies ``context()`` values onto every starting span and feeds our exporter.

    Attached once per provider and re-configured on re-``init``, because the SDK offers
    no way to remove a processor from a provider.
    """

    def __init__(self) -> None:
        self._export: SpanProcessor | None = None
        self._filter_rate: float | None = None
        self._extra: dict[str, Any] = {}
        self.active = False

    def configure(
        self, *, export: SpanProcessor | None, filter_rate: float | None, extra: dict[str, Any]
    ) -> None:
        self._export, self._filter_rate, self._extra = export, filter_rate, extra
        self.active = True

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if not self.active:
            return
        try:
            values = current_values(parent_context)
            if values is _EMPTY and parent_context is not None:
                values = current_values()
            attrs = values.attributes()
            if self._extra:
                attrs = {**self._extra, **attrs}
            if attrs:
                span.set_attributes(attrs)
        except Exception:  # enriching must never break span creation in the host app
            pass

    def on_end(self, span: ReadableSpan) -> None:
        export = self._export
        if not self.active or export is None:
            return
        rate = self._filter_rate
        if rate is not None and span.context is not None and not _trace_sampled(span.context.trace_id, rate):
            return
        export.on_end(span)

    def shutdown(self) -> None:
        self.active = False
        export, self._export = self._export, None
        if export is not None:
            export.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        export = self._export
        return export.force_flush(timeout_millis) if export is not None else True


@dataclass
class _State:
    config: Config | None = None
    enabled: bool = True
    tracer: trace.Tracer | None = None
    processor: SpyglassSpanProcessor | None = None
    own_provider: TracerProvider | None = None
    feedback: Any = None  # _feedback.FeedbackClient, imported lazily to avoid a cycle
    atexit_registered: bool = False


state = _State()
_processors: weakref.WeakKeyDictionary[TracerProvider, SpyglassSpanProcessor] = weakref.WeakKeyDictionary()
_init_lock = threading.RLock()
_global_tracer = trace.get_tracer(_INSTRUMENTATION_NAME, __version__)


def get_tracer() -> trace.Tracer | None:
    """The tracer for SDK spans, or None when the SDK is disabled.

    Before ``init`` we use the global (proxy) tracer, so apps that configured OTel
    themselves still get ``@observe`` spans without calling ``init``.
    """
    if not state.enabled:
        return None
    return state.tracer or _global_tracer


def get_config() -> Config | None:
    return state.config


def get_mask() -> MaskFn | None:
    return state.config.mask if state.config else None


def max_field_chars() -> int:
    return state.config.max_field_chars if state.config else 20_000


def init(
    host: str | None = None,
    public_key: str | None = None,
    secret_key: str | None = None,
    service_name: str | None = None,
    environment: str | None = None,
    release: str | None = None,
    sample_rate: float | None = None,
    mask: MaskFn | None = None,
    enabled: bool | None = None,
    *,
    max_field_chars: int | None = None,
    export_timeout: float | None = None,
    tracer_provider: TracerProvider | None = None,
    span_exporter: SpanExporter | None = None,
) -> None:
    """Configure Spyglass. Every argument falls back to its ``SPYGLASS_*`` env variable.

    Never raises: a broken configuration logs one warning and leaves the app running
    with tracing off. Calling ``init`` again replaces the previous configuration.
    """
    with _init_lock:
        try:
            _init(
                resolve(
                    host=host,
                    public_key=public_key,
                    secret_key=secret_key,
                    service_name=service_name,
                    environment=environment,
                    release=release,
                    sample_rate=sample_rate,
                    mask=mask,
                    enabled=enabled,
                    max_field_chars=max_field_chars,
                    export_timeout=export_timeout,
                ),
                tracer_provider,
                span_exporter,
            )
        except Exception as exc:
            state.enabled = False
            state.tracer = None
            logger.warning("spyglass: init failed (%r); tracing is off", exc)


def _init(config: Config, tracer_provider: TracerProvider | None, span_exporter: SpanExporter | None) -> None:
    if state.processor is not None:
        shutdown(timeout=2.0)
    reset_all()
    state.config = config
    state.enabled = config.enabled
    state.tracer = None
    if not config.enabled:
        return

    provider, own = _resolve_provider(config, tracer_provider)
    exporter = _build_exporter(config, span_exporter)
    batch = BatchSpanProcessor(exporter) if exporter is not None else None
    # A provider's resource cannot be changed: neither a foreign one nor the one an earlier
    # init() made (OTel sets the global provider once per process). Facts the resource lacks
    # go on every span; span attributes beat the resource at ingest. A foreign resource's own
    # values are kept (the app set them), ours give way to the latest init().
    extra: dict[str, Any] = {}
    resource_attrs = provider.resource.attributes
    for key, value in ((A.DEPLOYMENT_ENVIRONMENT, config.environment), (A.SERVICE_VERSION, config.release)):
        if value and (key not in resource_attrs or (own and resource_attrs[key] != value)):
            extra[key] = value
    filter_rate = None if own or config.sample_rate >= 1.0 else config.sample_rate

    processor = _processors.get(provider)
    if processor is None:
        processor = SpyglassSpanProcessor()
        _processors[provider] = processor
        processor.configure(export=batch, filter_rate=filter_rate, extra=extra)
        provider.add_span_processor(processor)
    else:
        processor.configure(export=batch, filter_rate=filter_rate, extra=extra)
    state.processor = processor
    state.tracer = provider.get_tracer(_INSTRUMENTATION_NAME, __version__)

    from ._feedback import FeedbackClient

    state.feedback = FeedbackClient(config) if config.feedback_endpoint and config.public_key else None
    if not state.atexit_registered:
        atexit.register(_at_exit)
        state.atexit_registered = True


def _resolve_provider(config: Config, explicit: TracerProvider | None) -> tuple[TracerProvider, bool]:
    if explicit is not None:
        return explicit, explicit is state.own_provider
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        if current is state.own_provider:
            sampler = current.sampler
            if isinstance(sampler, _RateSampler):
                sampler.set_rate(config.sample_rate)
            return current, True
        return current, False
    if state.own_provider is not None:
        # Someone else owns the global slot; keep using the provider we made before.
        own = state.own_provider
        if isinstance(own.sampler, _RateSampler):
            own.sampler.set_rate(config.sample_rate)
        return own, True
    resource_attrs: dict[str, Any] = {A.SERVICE_NAME: config.service_name}
    if config.environment:
        resource_attrs[A.DEPLOYMENT_ENVIRONMENT] = config.environment
    if config.release:
        resource_attrs[A.SERVICE_VERSION] = config.release
    provider = TracerProvider(
        resource=Resource.create(resource_attrs), sampler=_RateSampler(config.sample_rate)
    )
    trace.set_tracer_provider(provider)
    state.own_provider = provider
    return provider, True


def _build_exporter(config: Config, span_exporter: SpanExporter | None) -> SpanExporter | None:
    if span_exporter is not None:
        return ResilientExporter(span_exporter, target=type(span_exporter).__name__)
    endpoint = config.traces_endpoint
    if endpoint is None:
        warn_once("no-host", "spyglass: no host configured (SPYGLASS_HOST); spans are not exported")
        return None
    if not config.secret_key:
        warn_once(
            "no-secret",
            "spyglass: no secret key configured (SPYGLASS_SECRET_KEY); the server will reject spans",
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    headers = {"Authorization": f"Bearer {config.secret_key}"} if config.secret_key else {}
    otlp = OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=config.export_timeout)
    return ResilientExporter(otlp, target=endpoint)


def _run_bounded(fn: Any, timeout: float) -> bool:
    """Run ``fn`` in a daemon thread and wait at most ``timeout`` seconds.

    The SDK's BatchSpanProcessor.force_flush ignores its timeout and blocks for as long
    as the exporter takes; this keeps ``flush()`` (and exit) bounded.
    """
    outcome: list[bool] = []

    def target() -> None:
        try:
            outcome.append(bool(fn()))
        except Exception:
            outcome.append(False)

    worker = threading.Thread(target=target, name="spyglass-flush", daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(outcome and outcome[0])


def flush(timeout: float = 5.0) -> bool:
    """Send buffered spans and feedback now; waits at most ``timeout`` seconds.

    Returns True when everything was handed to the server. Never raises.
    """
    deadline = time.monotonic() + timeout
    ok = True
    processor = state.processor
    if processor is not None and processor.active:
        ok = _run_bounded(lambda: processor.force_flush(int(timeout * 1000)), timeout)
    if state.feedback is not None:
        ok = state.feedback.flush(max(deadline - time.monotonic(), 0.0)) and ok
    return ok


def shutdown(timeout: float = 5.0) -> None:
    """Flush, then stop exporting. Decorated functions keep working, untraced."""
    processor, feedback = state.processor, state.feedback
    state.processor, state.feedback, state.tracer = None, None, None
    state.enabled = False
    if processor is not None:
        _run_bounded(lambda: (processor.force_flush(int(timeout * 1000)), processor.shutdown())[0], timeout)
    if feedback is not None:
        feedback.shutdown(timeout)


def _at_exit() -> None:
    with contextlib.suppress(Exception):
        shutdown(timeout=5.0)
