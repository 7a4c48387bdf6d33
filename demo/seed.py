"""Generate the demo history through the real SDK and the real OTLP path.

Spans are made with the Spyglass SDK (`spyglass.init` + `spyglass.context`) on an
OpenTelemetry TracerProvider, with explicit timestamps spread over the last D days.
They leave through either
- the real OTLP/HTTP exporter to a running server (`--url`), or
- an in-process exporter that encodes them with the OTLP protobuf encoder and hands the
  bytes to the same decoder and ingest service the HTTP receiver uses (so `make run`
  can seed before the web server is up).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import spyglass
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode

from demo import scenario
from projects.models import Project
from tracing.otlp.decode import decode_traces_protobuf
from tracing.services import spans_ingest

NS = 1_000_000_000


class InProcessExporter(SpanExporter):
    """OTLP-encode spans and ingest them directly (no HTTP hop, same code path)."""

    def __init__(self, project: Project):
        self.project = project
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        body = encode_spans(spans).SerializeToString()
        decoded = decode_traces_protobuf(body)
        spans_ingest(project=self.project, spans=decoded.spans)
        self.exported += len(decoded.spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        from django.db import connection

        connection.close()  # the exporter thread's own connection


@dataclass
class SeededTrace:
    trace_id: str
    user_id: str
    session_id: str
    turn_index: int
    grounded: bool
    rude: bool
    error: bool
    time: datetime
    prompt_version: int
    turn: scenario.Turn


def _feedback_sender(project: Project, url: str | None) -> Callable[[str, str, str, object], None]:
    """End-user feedback goes where the traces go: the SDK's feedback client when a
    server URL is given, otherwise the same service the feedback endpoint calls."""
    if url is not None:
        def send_over_http(trace_id: str, kind: str, name: str, value: object) -> None:
            (spyglass.feedback if kind == "feedback" else spyglass.event)(trace_id, name, value)

        return send_over_http

    from feedback.services import feedback_record

    def record(trace_id: str, kind: str, name: str, value: object) -> None:
        feedback_record(project=project, trace_id=trace_id, kind=kind, name=name, value=value)

    return record


def register_prompts(project: Project) -> None:
    """Register the demo's prompt versions, so traces link to them on the prompt page."""
    from prompts.models import Prompt
    from prompts.services import Actor, prompt_version_create

    if Prompt.objects.filter(project=project, name=scenario.PROMPT_NAME).exists():
        return
    actor = Actor(user=None, name="seed_demo")
    messages = {1: "first cut", 2: "answer only from the documents", 3: "admit gaps, offer a human"}
    for version, system in scenario.PROMPT_VERSIONS.items():
        prompt_version_create(
            project=project,
            name=scenario.PROMPT_NAME,
            template=[
                {"role": "system", "content": system},
                {"role": "system", "content": "Documents:\n{{documents}}"},
                {"role": "user", "content": "{{question}}"},
            ],
            config={"temperature": 0.2, "max_tokens": 512},
            commit_message=messages[version],
            labels=["production", "staging"] if version == max(scenario.PROMPT_VERSIONS) else [],
            actor=actor,
            description="Answers support questions from help-center documents.",
        )


def register_alert_rules(project: Project) -> None:
    """Two alert rules to show the Alerts pages (once per project; no channels, so nothing is sent)."""
    from alerts.models import AlertRule
    from alerts.services import RuleSpec, rule_create

    if AlertRule.objects.filter(project=project).exists():
        return
    rule_create(project=project, spec=RuleSpec(
        name="Cost per user, rolling 24 h", measure="cost_usd", agg="sum", group_by="user_id",
        window_seconds=86400, warning_threshold=0.02, alert_threshold=0.05, no_data="ok", cooldown_seconds=3600))
    rule_create(project=project, spec=RuleSpec(
        name="Error rate, last hour", measure="errors", agg="rate", window_seconds=3600, warning_threshold=0.05,
        alert_threshold=0.1, min_observations=5))


def _messages_json(parts: list[tuple[str, str]]) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]} for role, text in parts])


def _tokens(text: str) -> int:
    # ~4 characters per token is close enough for English support chat.
    return max(1, len(text) // 4)


def seed(
    *,
    project: Project,
    traces: int,
    days: int,
    url: str | None = None,
    secret_key: str | None = None,
    public_key: str | None = None,
    seed_value: int = 7,
    progress: Callable[[int], None] | None = None,
) -> list[SeededTrace]:
    """Create about `traces` traces over the last `days` days; returns what was made."""
    rng = random.Random(seed_value)
    register_prompts(project)
    register_alert_rules(project)
    provider = TracerProvider(resource=Resource.create({
        "service.name": "acme-support-bot",
        "service.version": "2026.11.2",
        "deployment.environment": "production",
    }))
    exporter: SpanExporter | None = None
    if url is None:
        exporter = InProcessExporter(project)
    spyglass.init(
        host=url,
        secret_key=secret_key,
        public_key=public_key,
        service_name="acme-support-bot",
        environment="production",
        tracer_provider=provider,
        span_exporter=exporter,
    )
    tracer = provider.get_tracer("spyglass.demo")
    send_feedback = _feedback_sender(project, url)
    users = scenario.make_users(rng)
    now = datetime.now(UTC)
    made: list[SeededTrace] = []
    session_no = 0
    while len(made) < traces:
        session_no += 1
        user = rng.choice(users)
        age = rng.random() ** 1.3  # more recent traffic than old
        start = now - timedelta(days=days) * age
        session = f"sess-{session_no:05d}"
        turns = rng.choices((1, 2, 3, 4, 5), weights=(30, 30, 20, 12, 8))[0]
        for turn_index in range(turns):
            if len(made) >= traces:
                break
            start += timedelta(seconds=rng.randint(20, 240))
            if start > now - timedelta(seconds=30):
                break  # a session never runs into the future
            made.append(_one_turn(tracer, rng, user=user, session=session, turn_index=turn_index,
                                  start=start, age=age))
            if not made[-1].error:
                for kind, name, value in scenario.feedback_for(rng, made[-1].turn,
                                                               last_in_session=turn_index == turns - 1):
                    send_feedback(made[-1].trace_id, kind, name, value)
            if progress:
                progress(1)
    spyglass.flush(timeout=60)
    provider.force_flush()
    provider.shutdown()
    return made


def _one_turn(tracer, rng: random.Random, *, user, session: str, turn_index: int, start: datetime,
              age: float) -> SeededTrace:
    version = scenario.pick_prompt_version(rng, age)
    turn = scenario.make_turn(rng, user, prompt_version=version, first=turn_index == 0)
    if datetime.now(UTC) - start < timedelta(days=scenario.NEW_TOPIC_DAYS):  # the drift page's new topic
        turn = scenario.new_topic_turn(random.Random(f"{session}/{turn_index}"), turn)
    provider_name, model = scenario.pick_model(rng)
    error = rng.random() < 0.03
    t0 = int(start.timestamp() * NS)
    retrieval_ns = rng.randint(40, 180) * 1_000_000
    llm_ns = rng.randint(500, 4200) * 1_000_000 * (2 if model == "acme-support-7b" else 1)
    tool = rng.random() < 0.2
    tool_ns = rng.randint(30, 300) * 1_000_000 if tool else 0
    total_ns = retrieval_ns + tool_ns + llm_ns + 15_000_000
    metadata = {"plan": user.plan, "locale": user.locale, "channel": rng.choice(("web", "web", "mobile"))}
    with spyglass.context(user_id=user.user_id, session_id=session, tags=[f"plan:{user.plan}"],
                          metadata=metadata):
        root = tracer.start_span("support-turn", start_time=t0, attributes={
            "openinference.span.kind": "CHAIN",
            "input.value": turn.question,
            "spyglass.prompt.name": scenario.PROMPT_NAME,
            "spyglass.prompt.version": str(version),
        })
        with trace.use_span(root, end_on_exit=False):
            trace_id = format(root.get_span_context().trace_id, "032x")
            t = t0 + 5_000_000
            retriever = tracer.start_span("retrieve-docs", start_time=t, attributes=_retriever_attrs(rng, turn))
            retriever.end(end_time=t + retrieval_ns)
            t += retrieval_ns
            if tool:
                span = tracer.start_span("lookup_account", start_time=t, attributes={
                    "openinference.span.kind": "TOOL",
                    "tool.name": "lookup_account",
                    "input.value": json.dumps({"user_id": user.user_id}),
                    "output.value": json.dumps({"plan": user.plan, "seats": rng.randint(1, 12)}),
                })
                span.end(end_time=t + tool_ns)
                t += tool_ns
            llm = tracer.start_span(f"chat {model}", start_time=t, attributes=_llm_attrs(
                rng, turn=turn, provider=provider_name, model=model, version=version))
            if error:
                llm.set_status(Status(StatusCode.ERROR, "upstream rate limit (429)"))
                llm.add_event("exception", {"exception.type": "RateLimitError",
                                            "exception.message": "Rate limit reached; retry after 20s"},
                              timestamp=t + llm_ns)
            llm.end(end_time=t + llm_ns)
        if error:
            root.set_status(Status(StatusCode.ERROR, "answer failed"))
        else:
            root.set_attribute("output.value", turn.answer)
        root.end(end_time=t0 + total_ns)
    return SeededTrace(trace_id=trace_id, user_id=user.user_id, session_id=session, turn_index=turn_index,
                       grounded=turn.grounded, rude=turn.rude, error=error, time=start, prompt_version=version,
                       turn=turn)


def _retriever_attrs(rng: random.Random, turn: scenario.Turn) -> dict:
    attrs = {"openinference.span.kind": "RETRIEVER", "input.value": turn.question}
    for i, (doc_id, title, content) in enumerate(turn.documents):
        prefix = f"retrieval.documents.{i}.document"
        attrs[f"{prefix}.id"] = doc_id
        attrs[f"{prefix}.content"] = f"{title}. {content}"
        attrs[f"{prefix}.score"] = round(0.9 - 0.17 * i + rng.uniform(-0.04, 0.04), 3)
        attrs[f"{prefix}.metadata"] = json.dumps({"title": title, "source": "help-center"})
    return attrs


def _llm_attrs(rng: random.Random, *, turn: scenario.Turn, provider: str, model: str, version: int) -> dict:
    system = scenario.PROMPT_VERSIONS[version]
    context = "\n\n".join(f"[{doc_id}] {title}: {content}" for doc_id, title, content in turn.documents)
    input_messages = [("system", system), ("system", "Documents:\n" + context), ("user", turn.question)]
    input_tokens = sum(_tokens(text) for _, text in input_messages)
    output_tokens = _tokens(turn.answer)
    cached = input_tokens // 2 if provider == "openai" and rng.random() < 0.3 else 0
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 512,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.input.messages": _messages_json(input_messages),
        "gen_ai.output.messages": _messages_json([("assistant", turn.answer)]),
        "spyglass.prompt.name": scenario.PROMPT_NAME,
        "spyglass.prompt.version": str(version),
    }
    if cached:
        attrs["gen_ai.usage.cache_read.input_tokens"] = cached
    return attrs
