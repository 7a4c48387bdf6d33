"""LLM-as-judge (feedback/judge.py) against a local fake OpenAI-compatible server:
sampling, verdict scores, idempotency, the daily budget, retries and failures, and the
API key's secrecy."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from evaluation import judge
from evaluation.models import JudgeCall, JudgeSettings
from scores.models import Score, Source
from tests.evaluation.fake_judge import FakeJudgeServer, Reply, verdict
from tests.helpers import ingest_trace

API_KEY = "sk-judge-" + "x7Q2" * 8 + "Zk9w"


@pytest.fixture
def server():
    with FakeJudgeServer() as fake:
        yield fake


def enable(project, server, **overrides) -> JudgeSettings:
    options = {
        "enabled": True, "base_url": server.base_url, "model": "gpt-4o-mini", "api_key": API_KEY,
        "sample_rate": 1.0, "daily_budget_usd": Decimal("10"), "rubrics": ["hallucination", "relevance"],
        "timeout_seconds": 5,
    }  # fmt: skip
    options.update(overrides)
    return judge.judge_settings_save(project=project, user=None, **options)


def run(project, trace_ids, **kwargs) -> judge.JudgeReport:
    sleeps: list[float] = []
    report = judge.judge_traces(project=project, trace_ids=trace_ids, sleep=sleeps.append, **kwargs)
    report.sleeps = sleeps  # type: ignore[attr-defined]
    return report


# --- sampling -------------------------------------------------------------------------------


def test_sampling_is_deterministic_by_trace_id_and_close_to_the_rate():
    ids = [secrets.token_hex(16) for _ in range(20_000)]
    first = [judge.judge_sampled(t, 0.05) for t in ids]
    assert first == [judge.judge_sampled(t, 0.05) for t in ids]
    assert first == [judge.judge_sampled(t.upper(), 0.05) for t in ids]  # hex case does not matter
    assert 0.04 < sum(first) / len(ids) < 0.06


def test_raising_the_rate_only_adds_traces():
    ids = [secrets.token_hex(16) for _ in range(2000)]
    low = {t for t in ids if judge.judge_sampled(t, 0.1)}
    high = {t for t in ids if judge.judge_sampled(t, 0.3)}
    assert low < high
    assert not any(judge.judge_sampled(t, 0) for t in ids) and all(judge.judge_sampled(t, 1) for t in ids)


def test_unsampled_traces_are_never_sent(world, server):
    enable(world.project, server, sample_rate=0.0)
    trace = ingest_trace(world.project)
    report = run(world.project, [trace.trace_id])
    assert report.sampled == 0 and server.requests == []


# --- verdicts --------------------------------------------------------------------------------


def test_verdicts_become_evaluator_scores_with_the_explanation_as_comment(world, server):
    enable(world.project, server)
    trace = ingest_trace(world.project, input="What is the refund window?", output="30 days.")
    server.script = [Reply(content=verdict("faithful", 0.1, "Matches the policy.")),
                     Reply(content=verdict("relevant", 0.9, "Answers the question."))]  # fmt: skip

    report = run(world.project, [trace.trace_id])

    assert (report.calls, report.scores, report.failures) == (2, 2, 0)
    scores = {s.name: s for s in Score.objects.filter(project=world.project, trace_id=trace.trace_id)}
    hallucination = scores["judge_hallucination"]
    assert hallucination.source == Source.EVALUATOR and hallucination.value == 0.1
    assert hallucination.comment == "Matches the policy."
    assert hallucination.metadata["label"] == "faithful" and hallucination.metadata["model"] == "gpt-4o-mini"
    assert scores["judge_relevance"].value == 0.9
    request = server.requests[0]
    assert request["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert request["json"]["model"] == "gpt-4o-mini" and request["json"]["temperature"] == 0
    assert "What is the refund window?" in request["json"]["messages"][1]["content"]


def test_rerunning_judges_nothing_twice(world, server):
    enable(world.project, server)
    trace = ingest_trace(world.project)
    run(world.project, [trace.trace_id])

    again = run(world.project, [trace.trace_id])

    assert again.calls == 0 and again.skipped_existing == 2 and len(server.requests) == 2
    assert Score.objects.filter(project=world.project, name__startswith="judge_").count() == 2


def test_disabled_judge_does_nothing(world, server):
    enable(world.project, server, enabled=False)
    trace = ingest_trace(world.project)
    assert run(world.project, [trace.trace_id]).calls == 0 and server.requests == []


def test_retrieved_documents_are_sent_as_context(world, server):
    enable(world.project, server, rubrics=["hallucination"])
    trace = ingest_trace(world.project)
    # a retriever span with one document, through the ingest path (OpenInference attributes)
    from tests.otlp_payloads import BASE_NS
    from tracing.otlp.types import RawSpan
    from tracing.services import spans_ingest

    spans_ingest(project=world.project, spans=[RawSpan(
        trace_id=trace.trace_id, span_id=secrets.token_hex(8), parent_span_id=None, name="retrieve", otel_kind=1,
        start_ns=BASE_NS, end_ns=BASE_NS + 10**6, status_code=1, status_message=None,
        attributes={"openinference.span.kind": "RETRIEVER",
                    "retrieval.documents.0.document.content": "Refunds within 30 days of purchase."},
        events=[], resource={},
    )])  # fmt: skip

    run(world.project, [trace.trace_id])

    assert "Refunds within 30 days of purchase." in server.requests[0]["json"]["messages"][1]["content"]


def test_the_judge_reads_the_same_evidence_as_groundedness(world, server):
    # System instructions and tool results are context too; the judge used to see only
    # retrieved documents, so judge_hallucination and hallucination judged different things.
    from evaluation.evidence import traces_evidence
    from tests.otlp_payloads import BASE_NS
    from tracing.otlp.types import RawSpan
    from tracing.services import spans_ingest

    enable(world.project, server, rubrics=["hallucination"])
    trace = ingest_trace(world.project)
    spans_ingest(project=world.project, spans=[RawSpan(
        trace_id=trace.trace_id, span_id=secrets.token_hex(8), parent_span_id=None, name="lookup_order",
        otel_kind=1, start_ns=BASE_NS, end_ns=BASE_NS + 10**6, status_code=1, status_message=None,
        attributes={"openinference.span.kind": "TOOL", "output.value": "Order 7 shipped on 3 March.",
                    "llm.input_messages.0.message.role": "system",
                    "llm.input_messages.0.message.content": "Refunds are possible within 30 days."},
        events=[], resource={},
    )])  # fmt: skip

    run(world.project, [trace.trace_id])

    sent = server.requests[0]["json"]["messages"][1]["content"]
    evidence = traces_evidence(world.project, [trace.trace_id])[trace.trace_id]
    assert "Order 7 shipped on 3 March." in evidence.context
    for passage in evidence.context:
        assert passage in sent


# --- budget ------------------------------------------------------------------------------------


def test_the_daily_budget_stops_judging_below_the_cap(world, server):
    enable(world.project, server, cost_per_call_usd=Decimal("0.01"), daily_budget_usd=Decimal("0.025"))
    traces = [ingest_trace(world.project) for _ in range(3)]
    now = timezone.now()

    report = run(world.project, [t.trace_id for t in traces], now=now)

    assert report.calls == 2 and report.budget_exhausted  # a third call would reach 0.03 > 0.025
    assert len(server.requests) == 2
    assert judge.judge_usage_today(project=world.project, now=now).cost_usd == Decimal("0.02")
    # Later the same day: still stopped. The next day (UTC): judging resumes.
    assert run(world.project, [t.trace_id for t in traces], now=now + timedelta(minutes=5)).calls == 0
    next_day = run(world.project, [t.trace_id for t in traces], now=now + timedelta(days=1))
    assert next_day.calls == 2 and next_day.budget_exhausted


def test_cost_is_priced_from_the_response_usage(world, server):
    enable(world.project, server, rubrics=["relevance"])
    trace = ingest_trace(world.project)
    run(world.project, [trace.trace_id])
    call = JudgeCall.objects.get(project=world.project)
    # gpt-4o-mini: 400 input + 60 output tokens at $0.15 / $0.60 per million tokens.
    assert call.cost_usd == Decimal("0.000096")
    assert (call.input_tokens, call.output_tokens) == (400, 60)


def test_a_priced_budget_stops_after_the_spend_reaches_it(world, server):
    enable(world.project, server, rubrics=["relevance"], daily_budget_usd=Decimal("0.0002"))
    traces = [ingest_trace(world.project) for _ in range(5)]
    report = run(world.project, [t.trace_id for t in traces])
    # 0.000096 per call: two calls fit (0.000192), a third would exceed 0.0002.
    assert report.calls == 2 and report.budget_exhausted


# --- failures ---------------------------------------------------------------------------------


def test_429_is_retried_with_backoff_then_succeeds(world, server):
    enable(world.project, server, rubrics=["relevance"])
    trace = ingest_trace(world.project)
    server.script = [Reply(status=429, headers={"Retry-After": "2"}), Reply(status=503)]

    report = run(world.project, [trace.trace_id])

    assert report.scores == 1 and report.failures == 0 and len(server.requests) == 3
    assert report.sleeps == [2.0, 2.0]  # Retry-After wins over 1 s; then 1 s × 2
    assert JudgeCall.objects.get(project=world.project).attempts == 3


def test_persistent_5xx_is_a_recorded_failure_after_three_attempts(world, server):
    enable(world.project, server, rubrics=["relevance"])
    trace = ingest_trace(world.project)
    server.script = [Reply(status=500)] * 3

    report = run(world.project, [trace.trace_id])

    assert report.failures == 1 and report.scores == 0 and len(server.requests) == 3
    call = JudgeCall.objects.get(project=world.project)
    assert call.status == "failed" and call.error == "HTTP 500 from the judge endpoint" and call.attempts == 3
    assert not Score.objects.filter(name="judge_relevance").exists()


def test_other_4xx_are_not_retried(world, server):
    enable(world.project, server, rubrics=["relevance"])
    trace = ingest_trace(world.project)
    server.script = [Reply(status=400)]
    report = run(world.project, [trace.trace_id])
    assert report.failures == 1 and len(server.requests) == 1 and report.sleeps == []


@pytest.mark.parametrize(
    "content",
    ["I think it is fine.", '{"label": "relevant"}', '{"label": "relevant", "score": 7, "explanation": "x"}',
     '{"label": ', "[1, 2]"],
)  # fmt: skip
def test_malformed_answers_are_recorded_failures_never_crashes(world, server, content):
    enable(world.project, server, rubrics=["relevance"])
    trace = ingest_trace(world.project)
    server.script = [Reply(content=content)]

    report = run(world.project, [trace.trace_id])

    assert report.failures == 1 and report.scores == 0
    assert JudgeCall.objects.get(project=world.project).error.startswith("malformed answer")


def test_a_non_completion_body_is_a_recorded_failure(world, server):
    enable(world.project, server, rubrics=["relevance"])
    trace = ingest_trace(world.project)
    server.script = [Reply(raw=b"<html>gateway</html>")]
    assert run(world.project, [trace.trace_id]).failures == 1


def test_a_fenced_json_answer_is_accepted():
    parsed = judge.verdict_parse('Sure:\n```json\n{"label": "toxic", "score": "0.8", "explanation": "insult"}\n```')
    assert parsed == judge.Verdict("toxic", 0.8, "insult")


def test_a_slow_endpoint_times_out_as_a_recorded_failure(world, server):
    enable(world.project, server, rubrics=["relevance"], timeout_seconds=1)
    trace = ingest_trace(world.project)
    server.script = [Reply(delay=2.5)]
    report = run(world.project, [trace.trace_id])
    assert report.failures == 1 and "timed out" in JudgeCall.objects.get(project=world.project).error


def test_an_unreachable_endpoint_is_a_recorded_failure(world, server):
    enable(world.project, server, rubrics=["relevance"], base_url="http://127.0.0.1:9/v1")
    trace = ingest_trace(world.project)
    report = run(world.project, [trace.trace_id])
    assert report.failures == 1 and "cannot reach" in report.errors[0]


# --- the key ------------------------------------------------------------------------------------


def test_the_api_key_is_encrypted_at_rest_and_never_logged(world, server, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, including openai's and httpx's debug output
    row = enable(world.project, server, rubrics=["relevance", "toxicity"])
    trace = ingest_trace(world.project)
    server.script = [Reply(status=429), Reply(content="not json"), Reply(status=500), Reply(status=500),
                     Reply(status=500)]  # fmt: skip

    run(world.project, [trace.trace_id])

    stored = JudgeSettings.objects.get(pk=row.pk)
    assert API_KEY not in stored.api_key_encrypted and API_KEY not in str(stored)
    assert judge.decrypt_secret(stored.api_key_encrypted) == API_KEY
    assert stored.api_key_masked.endswith("Zk9w") and API_KEY not in stored.api_key_masked
    assert caplog.records  # something was logged (the failures), so the check below means something
    assert API_KEY not in caplog.text and API_KEY[:-4] not in caplog.text
    assert all(API_KEY not in c.error for c in JudgeCall.objects.all())


def test_a_key_encrypted_under_another_secret_is_unreadable_not_a_crash(world, server, settings):
    enable(world.project, server)
    settings.SECRET_KEY = "rotated"
    trace = ingest_trace(world.project)
    assert run(world.project, [trace.trace_id]).calls == 0 and server.requests == []


def test_enabling_without_a_key_is_refused(world, server):
    from config.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="needs a base URL, a model and an API key"):
        judge.judge_settings_save(
            project=world.project, user=None, enabled=True, base_url=server.base_url, model="m",
            sample_rate=0.05, daily_budget_usd=Decimal(1), rubrics=["relevance"],
        )  # fmt: skip


def test_saving_without_a_key_keeps_the_stored_one(world, server):
    enable(world.project, server)
    enable(world.project, server, api_key=None, sample_rate=0.5)
    row = JudgeSettings.objects.get(project=world.project)
    assert judge.decrypt_secret(row.api_key_encrypted) == API_KEY and row.sample_rate == 0.5
