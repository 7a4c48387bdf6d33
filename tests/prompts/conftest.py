"""Helpers for prompt tests: registry state through the services, traces through the
real ingest path (OTLP body -> decode -> spans_ingest) with the SDK's own attributes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from spyglass._context import prompt_attributes

from projects.models import Project
from prompts import services
from prompts.models import PromptVersion
from scores.models import DataType, Score
from tests.otlp_payloads import new_trace_id, span, traces_protobuf
from tracing.otlp.decode import decode_traces
from tracing.services import spans_ingest

ACTOR = services.Actor(user=None, name="test")


def add_version(project: Project, name: str, template: Any, **kwargs: Any) -> PromptVersion:
    return services.prompt_version_create(project=project, name=name, template=template, actor=ACTOR, **kwargs)


def ingest_trace(
    project: Project,
    *,
    prompt: Any,
    start: datetime | None = None,
    latency_ms: float = 100.0,
    error: bool = False,
    tokens: tuple[int, int] = (10, 5),
    output: str | None = None,
) -> str:
    """One LLM span linked to `prompt` exactly as the SDK links it (same attribute keys)."""
    start = start or timezone.now() - timedelta(hours=1)
    start_ns = int(start.timestamp() * 1e9)
    trace_id = new_trace_id()
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": tokens[0],
        "gen_ai.usage.output_tokens": tokens[1],
        **prompt_attributes(prompt),
    }
    if output is not None:
        attributes.update({"input.value": "How do I get a refund?", "output.value": output})
    body = traces_protobuf(
        [
            span(
                "chat gpt-4o-mini",
                trace_id=trace_id,
                start=start_ns,
                end=start_ns + int(latency_ms * 1e6),
                attributes=attributes,
                status=2 if error else 1,
            )
        ]
    )
    spans_ingest(project=project, spans=decode_traces(body, "protobuf").spans)
    return trace_id


def add_score(project: Project, trace_id: str, name: str, value: float, source: str) -> Score:
    return Score.objects.create(
        project=project,
        trace_id=trace_id,
        name=name,
        value=value,
        data_type=DataType.NUMERIC,
        source=source,
    )


@pytest.fixture
def key_client(world) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.key.secret_key}")
    return client
