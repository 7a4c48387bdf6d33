"""PII masking at ingest, end to end: a trace full of secrets, sent by the stock OTel
exporter and by the Spyglass SDK to the live server, with end-user feedback and an API
score carrying secrets in their comments, then scored by a real worker, leaves no raw
secret in any table of the database."""

from __future__ import annotations

import json
import urllib.request

import pytest
import spyglass
from django.db import connection
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from evaluation.models import TraceScoring
from scores.models import Score
from tests.integration.support import post_otlp, wait_until
from tests.otlp_payloads import genai_message_logs, logs_protobuf
from tracing.masking import DETECTOR_KINDS
from tracing.models import Span, Trace
from tracing.services import masking_settings_save

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SECRETS = {
    "email": "jane.doe@example.com",
    "card": "4111 1111 1111 1111",
    "iban": "DE89 3704 0044 0532 0130 00",
    "api_key": "sk-proj-Zq81mX0aB7cD9eF2gH4iJ6kL",
    "phone": "+49 30 12345678",
    "order": "ORD-733519",
}
TEXT = (f"I am {SECRETS['email']}, card {SECRETS['card']}, IBAN {SECRETS['iban']}, call {SECRETS['phone']}; "
        f"my key is {SECRETS['api_key']} and my order {SECRETS['order']} never came.")


def _tables_holding(needle: str) -> list[str]:
    """Every table (ours and Django's) whose rows, as text, contain `needle`."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [row[0] for row in cursor.fetchall()]
        found = []
        for table in tables:
            cursor.execute(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE %s', [f"%{needle}%"])
            if cursor.fetchone()[0]:
                found.append(table)
    return found


def test_no_raw_secret_is_stored_anywhere(live_server_url, celery_worker, ingest_key):
    masking_settings_save(project=ingest_key.project, kinds=list(DETECTOR_KINDS),
                          custom=[{"name": "order_id", "pattern": r"ORD-\d{6}"}])
    resource = Resource.create({"service.name": "masking-test", "owner.email": SECRETS["email"]})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=f"{live_server_url}/v1/traces", headers={"Authorization": f"Bearer {ingest_key.secret_key}"})))
    tracer = provider.get_tracer("tests.masking")
    try:
        with tracer.start_as_current_span(f"support for {SECRETS['email']}") as root:
            root.set_attributes({"openinference.span.kind": "CHAIN", "input.value": TEXT, "user.id": "u-1",
                                 "metadata": f'{{"contact": "{SECRETS["phone"]}"}}'})
            with tracer.start_as_current_span("retrieve") as retriever:
                retriever.set_attributes({
                    "openinference.span.kind": "RETRIEVER",
                    "retrieval.documents.0.document.content": f"Customer file: {TEXT}",
                })
            with tracer.start_as_current_span("chat") as llm:
                llm.set_attributes({
                    "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
                    "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": TEXT,
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.content": f"Thanks, I emailed {SECRETS['email']}.",
                })
                llm.add_event("note", {"detail": TEXT})
                llm_span_id = format(llm.get_span_context().span_id, "016x")
            root.set_attribute("output.value", f"Refund sent to {SECRETS['iban']}.")
        assert provider.force_flush(60_000)
    finally:
        provider.shutdown()
    trace_id = format(root.get_span_context().trace_id, "032x")
    logs = genai_message_logs(trace_id=trace_id, span_id=llm_span_id, question=TEXT, answer=SECRETS["api_key"])
    assert post_otlp(live_server_url, logs_protobuf(logs), key=ingest_key.secret_key, path="/v1/logs").status == 200

    # The SDK's own spans, and its end-user feedback (public key), and an API score.
    spyglass.init(host=live_server_url, secret_key=ingest_key.secret_key, public_key=ingest_key.public_key,
                  service_name="masking-sdk")
    try:
        with spyglass.llm_span(model="gpt-4o-mini", provider="openai",
                               messages=[{"role": "user", "content": TEXT}]) as sdk_llm:
            sdk_llm.set_output(f"Card {SECRETS['card']} is on file.")
            sdk_trace_id = spyglass.current_trace_id()
        spyglass.feedback(trace_id, "thumbs", 0, comment=f"Wrong! Write to {SECRETS['email']} or {SECRETS['phone']}")
        spyglass.event(trace_id, "edit", f"My IBAN is {SECRETS['iban']}")
        assert spyglass.flush(timeout=60)
    finally:
        spyglass.shutdown()
    score_request = urllib.request.Request(
        f"{live_server_url}/api/v1/scores", method="POST",
        data=json.dumps({"trace_id": trace_id, "name": "qa_note", "value": 1,
                         "comment": f"key {SECRETS['api_key']} seen"}).encode(),
        headers={"Authorization": f"Bearer {ingest_key.secret_key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(score_request, timeout=30) as response:
        assert response.status == 201

    # The worker scores the stored trace (PII, embeddings, groundedness): their evidence
    # and embeddings' source text must see only placeholders too.
    wait_until(lambda: TraceScoring.objects.filter(project=ingest_key.project, trace_id=trace_id,
                                                   status="scored").exists(),
               timeout=180, what="the worker to score the trace", proc=celery_worker.process)
    celery_worker.wait_idle()

    trace = Trace.objects.get(project=ingest_key.project, trace_id=trace_id)
    assert "[EMAIL]" in trace.input and "[CARD]" in trace.input and "[ORDER_ID]" in trace.input
    assert trace.output == "Refund sent to [IBAN]."
    llm_row = Span.objects.get(project=ingest_key.project, trace_id=trace_id, span_id=llm_span_id)
    assert "[API_KEY]" in llm_row.messages[0]["content"] and "[PHONE]" in llm_row.messages[0]["content"]
    assert Score.objects.filter(project=ingest_key.project, trace_id=trace_id).exists()
    sdk_trace = Trace.objects.get(project=ingest_key.project, trace_id=sdk_trace_id)
    assert sdk_trace.output == "Card [CARD] is on file."
    thumbs = Score.objects.get(project=ingest_key.project, trace_id=trace_id, source="end_user")
    assert thumbs.comment == "Wrong! Write to [EMAIL] or [PHONE]"
    note = Score.objects.get(project=ingest_key.project, trace_id=trace_id, name="qa_note")
    assert note.comment == "key [API_KEY] seen"
    leaks = {kind: _tables_holding(value) for kind, value in SECRETS.items()}
    # the digits alone, too: a card number must not survive with its spaces removed
    leaks["card digits"] = _tables_holding(SECRETS["card"].replace(" ", ""))
    assert {kind: tables for kind, tables in leaks.items() if tables} == {}


def test_defaults_mask_keys_and_payment_data_and_keep_contacts(live_server_url, ingest_key):
    from tests.otlp_payloads import new_trace_id, span, traces_protobuf

    trace_id = new_trace_id()
    body = traces_protobuf([span("answer", trace_id=trace_id, attributes={"input.value": TEXT})])
    assert post_otlp(live_server_url, body, key=ingest_key.secret_key).status == 200
    assert Trace.objects.get(project=ingest_key.project, trace_id=trace_id).input == (
        f"I am {SECRETS['email']}, card [CARD], IBAN [IBAN], call {SECRETS['phone']}; "
        f"my key is [API_KEY] and my order {SECRETS['order']} never came.")
