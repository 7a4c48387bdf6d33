"""The review page puts the evidence beside the answer: the context it should rest on
(retrieved documents, system messages, tool results), the groundedness verdict with its
unsupported sentences, the end user's feedback; and it takes a corrected answer."""

from __future__ import annotations

import secrets
import time

import pytest
from django.test import Client

from annotation.models import Correction
from annotation.selectors import newest_corrections, review_context
from annotation.services import correction_save, queue_claim_next, queue_create, queue_item_submit
from config.errors import ValidationFailed
from evaluation.evidence import context_pieces, trace_texts
from evaluation.runner import traces_score_batch
from scores.models import Source
from scores.services import score_upsert
from tests.helpers import config, ingest_trace
from tests.otlp_payloads import MS
from tracing.models import Span, Trace
from tracing.otlp.types import RawSpan
from tracing.services import spans_ingest

pytestmark = pytest.mark.django_db

DOC = "Refunds are accepted within 30 days of purchase with a receipt."
SYSTEM = "You are the support assistant of Acme. Answer from the policy only."
TOOL_RESULT = '{"order": "A-1001", "status": "shipped"}'
ANSWER = "Refunds are accepted within 30 days. We also give every customer a free car in 2031."


def rag_trace(project) -> Trace:
    """A root span with a retrieved document, an LLM span with a system message and a
    tool span with a result: the three kinds of context."""
    trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
    now = time.time_ns()

    def span(span_id, parent, name, attributes, offset):
        return RawSpan(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name, otel_kind=1,
                       start_ns=now + offset * MS, end_ns=now + (offset + 100) * MS, status_code=1,
                       status_message=None, attributes=attributes, events=[], resource={"service.name": "bot"})

    spans_ingest(project=project, spans=[
        span(root, None, "answer", {"input.value": "What is the refund policy?", "output.value": ANSWER,
                                    "retrieval.documents.0.document.content": DOC}, 0),
        span(secrets.token_hex(8), root, "lookup_order", {"openinference.span.kind": "TOOL",
                                                          "output.value": TOOL_RESULT}, 10),
        span(secrets.token_hex(8), root, "chat", {
            "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
            "llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": SYSTEM,
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": "What is the refund policy?",
            "output.value": ANSWER}, 20),
    ])
    return Trace.objects.get(project=project, trace_id=trace_id)


def claimed(world, trace, reviewer=None):
    queue = queue_create(project=world.project, name="Check answers", created_by=world.owner,
                         items=[(trace.trace_id, None)], config_ids=[config(world.project, "helpfulness").pk])
    item = queue_claim_next(queue=queue, reviewer=reviewer or world.reviewer)
    return queue, item


def test_context_pieces_are_labelled_and_match_what_groundedness_reads(world):
    trace = rag_trace(world.project)
    spans = list(Span.objects.filter(project=world.project, trace_id=trace.trace_id))
    pieces = context_pieces(trace, spans)
    assert [(p.label, p.text) for p in pieces] == [
        ("retrieved document", DOC), ("tool result", TOOL_RESULT), ("system message", SYSTEM)]
    # One reading of the context for the evaluator and for the reviewer.
    assert [p.text for p in pieces] == trace_texts(trace, spans).context


def test_review_page_shows_context_unsupported_sentences_and_user_feedback(world):
    trace = rag_trace(world.project)
    traces_score_batch([trace.pk])  # the real groundedness evaluator flags the invented sentence
    score_upsert(project=world.project, trace_id=trace.trace_id, name="user_thumbs", value=False,
                 source=Source.END_USER, comment="It promised me a car")
    queue, item = claimed(world, trace)
    client = Client()
    client.force_login(world.reviewer)
    page = client.get(f"/p/{world.project.slug}/annotate/{queue.pk}/items/{item.pk}/").content.decode()
    context = page[page.index('id="review-context"'):]
    for text in ("retrieved document", DOC, "system message", SYSTEM, "tool result", "{&quot;order&quot;"):
        assert text in context
    assert "<mark" in page and "We also give every customer a free car in 2031.</mark>" in page
    assert "likely unsupported" in page
    feedback = page[page.index('id="review-user-feedback"'):]
    assert "👎 down" in feedback and "It promised me a car" in feedback
    assert 'name="correction"' in page


def test_review_page_says_when_there_is_no_context_or_feedback(world):
    trace = ingest_trace(world.project)
    queue, item = claimed(world, trace)
    client = Client()
    client.force_login(world.reviewer)
    page = client.get(f"/p/{world.project.slug}/annotate/{queue.pk}/items/{item.pk}/").content.decode()
    assert "No context recorded" in page
    assert "The end user gave no feedback" in page
    assert "Not checked (yet)" in page


def test_long_context_is_cut_and_counted(world):
    trace = ingest_trace(world.project, attributes={
        f"retrieval.documents.{i}.document.content": f"document {i} " + "x" * 5000 for i in range(25)})
    queue, item = claimed(world, trace)
    ctx = review_context(queue=queue, item=item, reviewer=world.reviewer)
    assert len(ctx.context) == 20 and ctx.context_more == 5
    assert all(len(p.text) < 4100 for p in ctx.context) and "more characters]" in ctx.context[0].text


def test_submitting_a_correction_stores_it_and_prefills_it(world):
    trace = ingest_trace(world.project)
    queue, item = claimed(world, trace)
    client = Client()
    client.force_login(world.reviewer)
    helpfulness = config(world.project, "helpfulness")
    url = f"/p/{world.project.slug}/annotate/{queue.pk}/items/{item.pk}"
    response = client.post(url + "/submit", {f"score_{helpfulness.pk}": "2", "comment": "",
                                             "correction": "Refunds within 30 days, receipt needed."})
    assert response.status_code == 302
    stored = Correction.objects.get(project=world.project, trace_id=trace.trace_id)
    assert (stored.author, stored.text, stored.queue_id) == (world.reviewer, "Refunds within 30 days, receipt needed.",
                                                             queue.pk)
    page = client.get(url + "/").content.decode()
    assert "Refunds within 30 days, receipt needed.</textarea>" in page
    # A form without the field leaves it alone; an empty box removes it.
    client.post(url + "/submit", {f"score_{helpfulness.pk}": "3"})
    assert Correction.objects.get(trace_id=trace.trace_id).text == "Refunds within 30 days, receipt needed."
    client.post(url + "/submit", {f"score_{helpfulness.pk}": "2", "correction": "  "})
    assert not Correction.objects.filter(trace_id=trace.trace_id).exists()


def test_another_reviewers_correction_is_shown_not_prefilled(world):
    trace = ingest_trace(world.project)
    correction_save(project=world.project, trace_id=trace.trace_id, author=world.member, text="Member's fix")
    queue, item = claimed(world, trace)
    ctx = review_context(queue=queue, item=item, reviewer=world.reviewer)
    assert ctx.correction == "" and [c.text for c in ctx.other_corrections] == ["Member's fix"]


def test_correction_is_kept_when_a_score_is_missing_and_a_huge_one_is_refused(world):
    trace = ingest_trace(world.project)
    queue, item = claimed(world, trace)
    client = Client()
    client.force_login(world.reviewer)
    url = f"/p/{world.project.slug}/annotate/{queue.pk}/items/{item.pk}/submit"
    response = client.post(url, {"correction": "keep me"})
    assert response.status_code == 400 and "keep me</textarea>" in response.content.decode()
    assert not Correction.objects.exists()
    with pytest.raises(ValidationFailed, match="correction"):
        queue_item_submit(queue=queue, item_id=item.pk, reviewer=world.reviewer,
                          values={config(world.project, "helpfulness").pk: "3"}, correction="x" * 1_000_001)
    assert not Correction.objects.exists()


def test_newest_correction_wins_per_trace(world):
    trace = ingest_trace(world.project)
    correction_save(project=world.project, trace_id=trace.trace_id, author=world.member, text="first")
    correction_save(project=world.project, trace_id=trace.trace_id, author=world.reviewer, text="second")
    assert newest_corrections(project=world.project, trace_ids=[trace.trace_id]) == {trace.trace_id: "second"}
    correction_save(project=world.project, trace_id=trace.trace_id, author=world.member, text="first, edited")
    assert newest_corrections(project=world.project, trace_ids=[trace.trace_id]) == {
        trace.trace_id: "first, edited"}


def test_a_correction_is_masked_like_other_typed_text(world):
    from tracing.models import MaskingSettings

    trace = ingest_trace(world.project)
    correction_save(project=world.project, trace_id=trace.trace_id, author=world.reviewer,
                    text="Charge card 4111 1111 1111 1111 again")  # the default rules mask cards
    assert Correction.objects.get(trace_id=trace.trace_id).text == "Charge card [CARD] again"
    MaskingSettings.objects.create(project=world.project, kinds=["email"])
    correction_save(project=world.project, trace_id=trace.trace_id, author=world.reviewer, text="Mail jo@x.io")
    assert Correction.objects.get(trace_id=trace.trace_id).text == "Mail [EMAIL]"
