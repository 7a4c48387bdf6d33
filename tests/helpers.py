"""Test helpers: traces created through the production ingest path, API clients by
key or session, and the roles every permission test walks."""

from __future__ import annotations

import secrets
from typing import Any

from rest_framework.test import APIClient

from scores.models import ScoreConfig
from tests.otlp_payloads import BASE_NS, MS
from tracing.models import Trace
from tracing.otlp.types import RawSpan
from tracing.services import spans_ingest


def ingest_trace(
    project,
    *,
    trace_id: str | None = None,
    input: str = "What is the refund policy?",
    output: str = "Refunds are accepted within 30 days.",
    start_ns: int = BASE_NS,
    attributes: dict[str, Any] | None = None,
    spans: int = 1,
    status_code: int = 1,
) -> Trace:
    """Store a trace (root + `spans`-1 LLM children) via tracing.services.spans_ingest."""
    trace_id = trace_id or secrets.token_hex(16)
    root_id = secrets.token_hex(8)
    raw = [
        RawSpan(
            trace_id=trace_id,
            span_id=root_id,
            parent_span_id=None,
            name="answer",
            otel_kind=1,
            start_ns=start_ns,
            end_ns=start_ns + 900 * MS,
            status_code=status_code,  # OTel: 1 ok, 2 error
            status_message=None,
            attributes={"input.value": input, "output.value": output, **(attributes or {})},
            events=[],
            resource={"service.name": "support-bot"},
        )
    ]
    for i in range(1, spans):
        raw.append(
            RawSpan(
                trace_id=trace_id,
                span_id=secrets.token_hex(8),
                parent_span_id=root_id,
                name=f"chat gpt-4o-mini #{i}",
                otel_kind=3,
                start_ns=start_ns + i * 10 * MS,
                end_ns=start_ns + i * 10 * MS + 500 * MS,
                status_code=1,
                status_message=None,
                attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"},
                events=[],
                resource={"service.name": "support-bot"},
            )
        )
    spans_ingest(project=project, spans=raw)
    return Trace.objects.get(project=project, trace_id=trace_id)


def key_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def session_client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def config(project, name: str) -> ScoreConfig:
    return ScoreConfig.objects.get(project=project, name=name)


ROLE_USERS = ("owner", "member", "reviewer", "viewer", "outsider")
