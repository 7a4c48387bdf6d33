"""The evidence an answer may rest on, gathered one way for every judge of it.

Groundedness (evaluation/runner.py) and the LLM judge (evaluation/judge.py) read the same
question, answer and context from here, so `hallucination` and `judge_hallucination`
judge the same thing: retrieved documents, system/context messages, tool results and
earlier turns of the conversation.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from evaluation.evaluators.base import TraceTexts
from projects.models import Project
from tracing.models import Span, Trace

# The span columns the evidence reads (the rest of a span can be large and is not needed).
SPAN_FIELDS = ("trace_id", "span_id", "kind", "start_time", "messages", "documents", "input", "output")


# Roles whose messages are context an answer may rest on, besides the earlier turns.
CONTEXT_ROLES = {"system", "developer", "tool", "function", "context", "document"}


def message_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multi-part content: keep the text parts
        return "\n".join(message_text(p.get("text") if isinstance(p, dict) else p) for p in content)
    if isinstance(content, dict):
        return message_text(content.get("text") or content.get("content"))
    return str(content)


@dataclass(frozen=True)
class ContextPiece:
    """One piece of what an answer may rest on, labelled for a reader (the review page)."""

    kind: str  # "document" | "message" | "tool"
    label: str  # e.g. "retrieved document", "system message", "tool result", "earlier turn (user)"
    text: str
    span_id: str


def _walk(spans: list[Span]) -> tuple[list[ContextPiece], str, str]:
    """(context pieces in span order, the last user message, the last LLM answer)."""
    pieces: list[ContextPiece] = []
    last_user = ""
    final_output = ""
    for span in sorted(spans, key=lambda s: (s.start_time, s.span_id)):
        for doc in span.documents or []:
            text = message_text(doc.get("content") if isinstance(doc, dict) else doc)
            if text:
                pieces.append(ContextPiece("document", "retrieved document", text, span.span_id))
        inputs = [m for m in (span.messages or []) if isinstance(m, dict) and m.get("source") != "output"]
        for i, message in enumerate(inputs):
            role, text = (message.get("role") or "").lower(), message_text(message.get("content"))
            if not text:
                continue
            if role == "user" and i == len(inputs) - 1:
                last_user = text
            elif role in CONTEXT_ROLES:
                pieces.append(ContextPiece("message", f"{role} message", text, span.span_id))
            elif role in ("user", "assistant"):
                pieces.append(ContextPiece("message", f"earlier turn ({role})", text, span.span_id))
        if span.kind == "tool" and span.output:
            pieces.append(ContextPiece("tool", "tool result", span.output, span.span_id))
        if span.kind == "llm" and span.output:
            final_output = span.output
    return pieces, last_user, final_output


def _kept(pieces: list[ContextPiece], user_input: str, output: str) -> list[ContextPiece]:
    # The first piece of each text wins; a trace whose root echoes the question in its
    # input must not count it as context.
    seen: set[str] = set()
    kept = []
    for piece in pieces:
        if piece.text in seen or not piece.text.strip() or piece.text in (user_input, output):
            continue
        seen.add(piece.text)
        kept.append(piece)
    return kept


def context_pieces(trace: Trace, spans: list[Span]) -> list[ContextPiece]:
    """The context of `trace_texts`, piece by piece with what each piece is."""
    pieces, last_user, final_output = _walk(spans)
    return _kept(pieces, trace.input or last_user, trace.output or final_output)


def trace_texts(trace: Trace, spans: list[Span]) -> TraceTexts:
    """Input, output and context of a trace, from its row and its spans' messages.

    Context = retrieved documents of every span + system/tool messages + earlier turns
    (every input message except the last user one, which is the question itself).
    """
    pieces, last_user, final_output = _walk(spans)
    user_input = trace.input or last_user
    output = trace.output or final_output
    context = [p.text for p in _kept(pieces, user_input, output)]
    return TraceTexts(trace_id=trace.trace_id, input=user_input or "", output=output or "", context=context)


def spans_by_trace(project: Project | int, trace_ids: list[str]) -> dict[str, list[Span]]:
    """The spans of these traces (evidence columns only), one query."""
    spans: dict[str, list[Span]] = defaultdict(list)
    for span in Span.objects.filter(project=project, trace_id__in=trace_ids).only(*SPAN_FIELDS):
        spans[span.trace_id].append(span)
    return spans


def traces_evidence(project: Project, trace_ids: list[str]) -> dict[str, TraceTexts]:
    """Question, answer and context of each of these traces (two queries)."""
    traces = list(Trace.objects.filter(project=project, trace_id__in=trace_ids).only("trace_id", "input", "output"))
    spans = spans_by_trace(project, [t.trace_id for t in traces])
    return {t.trace_id: trace_texts(t, spans[t.trace_id]) for t in traces}
