"""factory_boy factories for tracing rows, always scoped to a project.

Until a test needs the real ingest path (tracing.services), these build Trace and Span
rows directly. Pass `project=` (e.g. `world.project`); without it a bare project is made.

    trace = TraceFactory(project=world.project, spans=3)   # root + 2 children
    SpanFactory(trace=trace, kind="llm", model="gpt-4o")     # one more span
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal
from typing import Any

import factory
from django.utils import timezone

from projects.models import Project
from tracing.models import Span, SpanKind, Status, Trace


class ProjectFactory(factory.django.DjangoModelFactory):
    """A project with no members or keys; use projects.services.project_create for those."""

    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")


class TraceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Trace
        # The spans hook saves what it changes; skip factory_boy's blanket second save.
        skip_postgeneration_save = True

    class Params:
        duration = timedelta(milliseconds=1200)

    project = factory.SubFactory(ProjectFactory)
    trace_id = factory.LazyFunction(lambda: secrets.token_hex(16))
    name = "chat"
    start_time = factory.LazyFunction(timezone.now)
    end_time = factory.LazyAttribute(lambda o: o.start_time + o.duration)
    latency_ms = factory.LazyAttribute(lambda o: (o.end_time - o.start_time) / timedelta(milliseconds=1))
    status = Status.OK
    input = "What is the refund policy?"
    output = "Refunds are accepted within 30 days."
    model = "gpt-4o-mini"
    input_tokens = 12
    output_tokens = 9
    total_tokens = factory.LazyAttribute(lambda o: o.input_tokens + o.output_tokens)
    cost_usd = Decimal("0.0000072")

    @factory.post_generation
    def spans(trace: Trace, create: bool, extracted: int | None, **kwargs: Any) -> None:
        """`spans=N` adds a root span and N-1 children inside the trace's time range,
        and sets span_count/root_span_id as ingest would."""
        if not extracted:
            return
        step = (trace.end_time - trace.start_time) / (extracted + 1)
        root = SpanFactory(
            trace=trace,
            **{
                "name": trace.name,
                "kind": SpanKind.CHAIN,
                "start_time": trace.start_time,
                "end_time": trace.end_time,
                "model": None,
                **kwargs,
            },
        )
        for i in range(1, extracted):
            SpanFactory(
                trace=trace,
                parent_span_id=root.span_id,
                start_time=trace.start_time + step * i,
                end_time=trace.start_time + step * (i + 1),
                **kwargs,
            )
        trace.span_count = extracted
        trace.root_span_id = root.span_id
        if create:
            trace.save(update_fields=["span_count", "root_span_id"])


class SpanFactory(factory.django.DjangoModelFactory):
    """A span of `trace` (required unless project and trace_id are both given)."""

    class Meta:
        model = Span

    class Params:
        trace = None
    project = factory.LazyAttribute(lambda o: o.trace.project)
    trace_id = factory.LazyAttribute(lambda o: o.trace.trace_id)
    span_id = factory.LazyFunction(lambda: secrets.token_hex(8))
    parent_span_id = None
    name = "openai.chat"
    kind = SpanKind.LLM
    start_time = factory.LazyAttribute(lambda o: o.trace.start_time if o.trace else timezone.now())
    end_time = factory.LazyAttribute(lambda o: o.start_time + timedelta(milliseconds=800))
    latency_ms = factory.LazyAttribute(lambda o: (o.end_time - o.start_time) / timedelta(milliseconds=1))
    status = Status.OK
    provider = "openai"
    model = "gpt-4o-mini"
    input_tokens = 12
    output_tokens = 9
    total_tokens = factory.LazyAttribute(
        lambda o: None if o.input_tokens is None else o.input_tokens + (o.output_tokens or 0)
    )
    cost_usd = Decimal("0.0000072")
    input = "What is the refund policy?"
    output = "Refunds are accepted within 30 days."
    messages = factory.LazyFunction(
        lambda: [
            {"role": "user", "content": "What is the refund policy?", "source": "input"},
            {"role": "assistant", "content": "Refunds are accepted within 30 days.", "source": "output"},
        ]
    )
    params = factory.LazyFunction(lambda: {"temperature": 0.2})
    finish_reason = "stop"
