"""Score one batch of traces with every enabled evaluator and store the results.

Idempotent by construction: each score's primary key is a UUID derived from
(project, trace_id, span_id, name, source=evaluator), and the write is one
INSERT … ON CONFLICT (id) DO UPDATE — re-running a batch, or two workers scoring the
same trace after a redelivery, updates the same rows and never adds any.

Costs: spans are loaded once per batch (one query), the embedding model is called
once for all inputs and outputs of the batch, and all writes are three bulk
statements in one transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import numpy as np
from django.db import DatabaseError, transaction

from evaluation import deferred, evidence
from evaluation.embeddings import MODEL_NAME, embed_texts
from evaluation.evaluators import groundedness, injection, pii, registry, toxicity
from evaluation.evaluators.base import EvalResult, EvalScore, TraceTexts
from evaluation.models import EvaluatorSettings, ScoringStatus, TraceEmbedding, TraceScoring
from scores import names
from scores.models import DataType, Score, Source
from tracing.models import Span, Trace

logger = logging.getLogger(__name__)

SCORE_NAMESPACE = uuid.UUID("5c0b1e7a-6a8e-4c2f-9a51-0e6d8f3b2a10")


def score_uuid(project_id: int, trace_id: str, span_id: str | None, name: str) -> uuid.UUID:
    """The one id an evaluator score of this key can have (the upsert key)."""
    return uuid.uuid5(SCORE_NAMESPACE, f"{project_id}:{trace_id}:{span_id or ''}:{name}:{Source.EVALUATOR}")


def llm_span_texts(spans: list[Span], texts: TraceTexts, *, limit: int) -> list[tuple[str, str, str]]:
    """(span_id, kind, text) of the LLM calls worth their own embedding, at most `limit`.

    Only texts that differ from the trace's own input/output: in the common one-call
    trace the LLM span says exactly what the trace says, and a second identical vector
    would cost model time and crowd the nearest-neighbour results with duplicates.
    """
    seen = {texts.input.strip(), texts.output.strip(), ""}
    out: list[tuple[str, str, str]] = []
    for span in sorted(spans, key=lambda s: (s.start_time, s.span_id)):
        if span.kind != "llm":
            continue
        users = [m for m in (span.messages or []) if isinstance(m, dict) and m.get("source") != "output"
                 and (m.get("role") or "").lower() == "user"]
        asked = evidence.message_text(users[-1].get("content")) if users else (span.input or "")
        for kind, text in (("input", asked), ("output", span.output or "")):
            if text.strip() not in seen and len(out) < limit:
                seen.add(text.strip())
                out.append((span.span_id, kind, text))
    return out


def _run_toxicity(texts: list[TraceTexts], config: dict) -> list[EvalResult]:
    inputs, outputs = [t.input for t in texts], [t.output for t in texts]
    in_vecs = np.array([t.input_vector if t.input_vector is not None else np.zeros(384) for t in texts])
    out_vecs = np.array([t.output_vector if t.output_vector is not None else np.zeros(384) for t in texts])
    have_vectors = all(t.input_vector is not None and t.output_vector is not None for t in texts)
    tin = toxicity.toxicity_scores(inputs, in_vecs if have_vectors else None)
    tout = toxicity.toxicity_scores(outputs, out_vecs if have_vectors else None)
    cut = config.get("threshold") or toxicity.threshold()
    results = []
    for t, a, b in zip(texts, tin, tout, strict=True):
        scores = []
        for name, text, value in ((names.TOXICITY_INPUT.name, t.input, a), (names.TOXICITY_OUTPUT.name, t.output, b)):
            if text.strip():
                scores.append(EvalScore(name, round(float(value), 4), evidence={
                    "flagged": bool(value >= cut), "threshold": round(cut, 4), "version": toxicity.version()}))
        results.append(EvalResult(scores, note="" if scores else "empty input and output"))
    return results


def _run_pii(t: TraceTexts, config: dict) -> EvalResult:
    kinds = tuple(config.get("kinds") or pii.KINDS)
    scores = []
    for name, text in ((names.PII_INPUT.name, t.input), (names.PII_OUTPUT.name, t.output)):
        found = pii.pii_find(text, kinds=kinds)
        summary = pii.pii_summary(found)
        comment = ", ".join(f"{k} ×{n}" for k, n in summary["kinds"].items())
        scores.append(EvalScore(name, float(bool(found)), DataType.BOOLEAN, comment, summary))
    return EvalResult(scores)


def _run_injection(t: TraceTexts, config: dict) -> EvalResult:
    if not t.input.strip():
        return EvalResult(note="no user input")
    value, hits = injection.injection_score(t.input)
    cut = float(config.get("threshold") or 0.5)
    rules = ", ".join(sorted({h["rule"] for h in hits}))
    return EvalResult([EvalScore(names.PROMPT_INJECTION.name, value, comment=rules,
                                 evidence={"rules": hits[:20], "flagged": value >= cut, "threshold": cut,
                                           "version": injection.VERSION})])


def _run_groundedness(t: TraceTexts, config: dict) -> EvalResult:
    result = groundedness.groundedness(t.output, t.context)
    if result is None:
        return EvalResult(note="no context" if t.output.strip() else "no output")
    cut = config.get("threshold") or result["threshold"]
    result["flagged"] = result["score"] >= cut
    comment = f"{len(result['unsupported'])} of {result['sentences']} sentences unsupported"
    return EvalResult([EvalScore(names.HALLUCINATION.name, result["score"], comment=comment, evidence=result)])


VERSIONS = {
    "embeddings": lambda: MODEL_NAME,
    "groundedness": groundedness.version,
    "toxicity": toxicity.version,
    "pii": lambda: pii.VERSION,
    "injection": lambda: injection.VERSION,
}


def traces_score_batch(trace_pks: list[int], *, only: set[str] | None = None, defer: bool = False) -> int:
    """Score these traces (row ids) with their projects' enabled evaluators.

    `only` limits the run to some evaluators (backfill of one evaluator, the grounding
    task); such a partial run merges into the trace's scoring status instead of
    replacing it. `defer` (the scoring tasks) leaves groundedness to the grounding
    queue (see evaluation/deferred.py); without it everything runs here, as the
    backfill command wants. Returns the number of traces handled. Database errors
    propagate (the task retries them); an evaluator's own bug marks the trace `failed`
    with the message and the others' scores are still written.
    """
    traces = list(Trace.objects.filter(pk__in=trace_pks).select_related("project").defer("metadata"))
    by_project: dict[int, list[Trace]] = defaultdict(list)
    for trace in traces:
        by_project[trace.project_id].append(trace)
    for project_traces in by_project.values():
        _score_project_traces(project_traces, only=only, defer=defer)
    return len(traces)


def _score_project_traces(traces: list[Trace], *, only: set[str] | None, defer: bool) -> None:
    project = traces[0].project
    stored = EvaluatorSettings.objects.filter(project=project).values_list("config", flat=True).first()
    config = registry.evaluator_config(stored=stored or {})
    enabled = [n for n in registry.enabled_evaluators(config) if only is None or n in only]
    spans = evidence.spans_by_trace(project, [t.trace_id for t in traces])
    texts = [evidence.trace_texts(t, spans[t.trace_id]) for t in traces]
    errors: dict[str, list[str]] = defaultdict(list)
    results: dict[str, list[EvalResult]] = {}

    embeddings = config["embeddings"]
    if "embeddings" in enabled and embeddings.get("spans", True):
        for t in texts:
            t.span_texts = llm_span_texts(spans[t.trace_id], t, limit=int(embeddings.get("max_spans") or 0))
    if "embeddings" in enabled or "toxicity" in enabled:
        # One model call for the whole batch; the toxicity head reuses these vectors.
        extra = [text for t in texts for _, _, text in t.span_texts]
        vectors = embed_texts([t.input for t in texts] + [t.output for t in texts] + extra)
        n, at = len(texts), 2 * len(texts)
        for i, t in enumerate(texts):
            t.input_vector, t.output_vector = vectors[i], vectors[n + i]
            t.span_vectors = list(vectors[at : at + len(t.span_texts)])
            at += len(t.span_texts)
    decided: dict[str, EvalResult] = {}
    queued: list[str] = []
    if "groundedness" in enabled:
        decided, queued = deferred.plan(texts, config["groundedness"], defer=defer)
    for name, run in (("toxicity", None), ("pii", _run_pii), ("injection", _run_injection),
                      ("groundedness", _run_groundedness)):
        if name not in enabled:
            continue
        if run is None:
            results[name] = _run_toxicity(texts, config[name])
            continue
        outcome = []
        for t in texts:
            if name == "groundedness" and t.trace_id in decided:
                outcome.append(decided[t.trace_id])
                continue
            try:
                outcome.append(run(t, config[name]))
            except Exception as exc:
                if isinstance(exc, DatabaseError):
                    raise
                logger.exception("evaluator %s failed on trace %s", name, t.trace_id)
                # One line per evaluator, "name: ...": a later partial run replaces its own line.
                message = " ".join(str(exc).split())
                errors[t.trace_id].append(f"{name}: {type(exc).__name__}: {message}")
                outcome.append(None)
        results[name] = outcome
    # Asked for but switched off in this project (a grounding message sent before the
    # switch): say so, rather than leave a "queued" note behind for ever.
    notes = {name: "switched off" for name in (only or set()) - set(enabled) if name in registry.EVALUATORS}
    _store(project, traces, texts, enabled, results, errors, partial=only is not None, extra_notes=notes)
    if queued:
        ids = set(queued)
        transaction.on_commit(lambda: deferred.enqueue([t.pk for t in traces if t.trace_id in ids]))


@transaction.atomic
def _store(project, traces, texts, enabled, results, errors, *, partial: bool, extra_notes: dict[str, str]) -> None:
    now = datetime.now(UTC)
    score_rows: list[Score] = []
    keep_ids: list[uuid.UUID] = []
    notes: dict[str, dict[str, str]] = defaultdict(dict)
    # Per evaluator, the traces whose earlier scores a fresh run replaces: not those it
    # crashed on (None) nor those whose scores another task will replace.
    replaced: dict[str, list[str]] = defaultdict(list)
    for name, outcome in results.items():
        for t, result in zip(texts, outcome, strict=True):
            if result is None:
                continue
            if not result.keep_previous:
                replaced[name].append(t.trace_id)
            if result.note:
                notes[t.trace_id][name] = result.note
            for s in result.scores:
                sid = score_uuid(project.pk, t.trace_id, None, s.name)
                keep_ids.append(sid)
                score_rows.append(Score(
                    id=sid, project=project, trace_id=t.trace_id, span_id=None, name=s.name, value=s.value,
                    data_type=s.data_type, source=Source.EVALUATOR, comment=s.comment, metadata=s.evidence,
                ))
    if score_rows:
        Score.objects.bulk_create(
            score_rows, update_conflicts=True, unique_fields=["id"],
            update_fields=["value", "data_type", "comment", "metadata", "updated_at"],
        )
    # Scores an evaluator gave earlier but not now (the trace changed): remove, so the
    # stored set is exactly what a fresh run produces.
    for name, trace_ids in replaced.items():
        if registry.SCORE_NAMES[name] and trace_ids:
            (Score.objects.filter(project=project, trace_id__in=trace_ids, source=Source.EVALUATOR,
                                  name__in=registry.SCORE_NAMES[name]).exclude(id__in=keep_ids).delete())
    if "embeddings" in enabled:
        _store_embeddings(project, texts)
    versions = {name: VERSIONS[name]() for name in enabled}
    for trace_id in {t.trace_id for t in texts}:
        notes[trace_id].update(extra_notes)
    ran = set(results) | set(extra_notes) | ({"embeddings"} & set(enabled))
    status_rows = _status_rows(project, traces, errors, notes, versions, ran=ran, partial=partial, now=now)
    TraceScoring.objects.bulk_create(
        status_rows, update_conflicts=True, unique_fields=["project", "trace_id"],
        update_fields=["status", "error", "trace_updated_at", "scored_at", "versions", "notes"],
    )


def _status_rows(project, traces, errors, notes, versions, *, ran: set[str], partial: bool,
                 now: datetime) -> list[TraceScoring]:
    """Each trace's TraceScoring row after this run.

    A full run replaces notes and errors; a partial one (`only`: the grounding task, a
    one-evaluator backfill) replaces only those of the evaluators it ran and keeps the
    rest, and leaves `trace_updated_at` alone, since it did not score the whole trace.
    Versions always merge: an evaluator switched off keeps its old scores, and the
    version they came from.
    """
    previous = {
        row.trace_id: row
        for row in TraceScoring.objects.select_for_update().filter(
            project=project, trace_id__in=[t.trace_id for t in traces])
    }
    rows = []
    for trace in traces:
        old = previous.get(trace.trace_id)
        new_errors = errors.get(trace.trace_id, [])
        trace_notes = notes.get(trace.trace_id, {})
        updated_at = trace.updated_at
        if partial and old is not None:
            kept = [line for line in old.error.splitlines() if line.split(":", 1)[0] not in ran]
            new_errors = kept + new_errors
            trace_notes = {**{k: v for k, v in old.notes.items() if k not in ran}, **trace_notes}
            updated_at = old.trace_updated_at
        elif partial:
            updated_at = None  # never fully scored: the sweep still sees it as pending
        if new_errors:
            status = ScoringStatus.FAILED
        elif updated_at is None:
            status = ScoringStatus.PENDING
        else:
            status = ScoringStatus.SCORED
        rows.append(TraceScoring(
            project=project, trace_id=trace.trace_id, status=status, error="\n".join(new_errors),
            trace_updated_at=updated_at, scored_at=now, versions={**(old.versions if old else {}), **versions},
            notes=trace_notes,
        ))
    return rows


def _store_embeddings(project, texts: list[TraceTexts]) -> None:
    rows = []
    for t in texts:
        for kind, text, vector in (("input", t.input, t.input_vector), ("output", t.output, t.output_vector)):
            if text.strip() and vector is not None:
                rows.append(TraceEmbedding(project=project, trace_id=t.trace_id, span_id="", kind=kind,
                                           embedding=vector.tolist(), model=MODEL_NAME))
        for (span_id, kind, _), vector in zip(t.span_texts, t.span_vectors, strict=True):
            rows.append(TraceEmbedding(project=project, trace_id=t.trace_id, span_id=span_id, kind=kind,
                                       embedding=vector.tolist(), model=MODEL_NAME))
    if rows:
        TraceEmbedding.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["project", "trace_id", "span_id", "kind"],
            update_fields=["embedding", "model", "created_at"],
        )
    # Span rows a fresh run would not write (the span's text now equals the trace's, or
    # span embeddings were switched off) go, so re-scoring converges to one stored set.
    keep = {(t.trace_id, span_id, kind) for t in texts for span_id, kind, _ in t.span_texts}
    stale = [
        pk for pk, trace_id, span_id, kind in TraceEmbedding.objects.filter(
            project=project, trace_id__in=[t.trace_id for t in texts]
        ).exclude(span_id="").values_list("pk", "trace_id", "span_id", "kind")
        if (trace_id, span_id, kind) not in keep
    ]
    if stale:
        TraceEmbedding.objects.filter(pk__in=stale).delete()
