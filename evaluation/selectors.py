"""Reads of evaluation's data: a trace's evaluator scores with evidence and its status,
a project's scoring health, and the traces nearest to a vector (embeddings)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, Max, Min, OuterRef, Q, Subquery
from pgvector.django import CosineDistance

from evaluation.deferred import NOT_SAMPLED, NOTE_QUEUED, SKIPPED
from evaluation.models import TraceEmbedding, TraceScoring
from scores import names
from scores.models import Score, Source
from tracing.models import Trace


@dataclass
class TraceEvaluations:
    status: str  # pending | scored | failed
    error: str = ""
    scored_at: Any = None
    notes: dict[str, str] = field(default_factory=dict)
    scores: dict[str, Score] = field(default_factory=dict)
    # The output cut into [(text, unsupported?)] so the template can highlight it.
    output_segments: list[tuple[str, bool]] = field(default_factory=list)


def _segments(output: str, unsupported: list[dict]) -> list[tuple[str, bool]]:
    spans = sorted((u["start"], u["end"]) for u in unsupported if 0 <= u.get("start", -1) < u.get("end", -1))
    out, pos = [], 0
    for start, end in spans:
        if start < pos:
            continue
        if start > pos:
            out.append((output[pos:start], False))
        out.append((output[start:end], True))
        pos = end
    if pos < len(output):
        out.append((output[pos:], False))
    return out


def trace_evaluations(
    *, project_id: int, trace_id: str, output: str = "", scores: list[Score] | None = None
) -> TraceEvaluations:
    """Status and evaluator scores of one trace; pass `scores` when the page already
    loaded the trace's scores, to save a query."""
    row = TraceScoring.objects.filter(project_id=project_id, trace_id=trace_id).first()
    if scores is None:
        scores = list(Score.objects.filter(project_id=project_id, trace_id=trace_id, source=Source.EVALUATOR))
    scores = {s.name: s for s in scores if s.source == Source.EVALUATOR and s.span_id is None}
    result = TraceEvaluations(status=row.status if row else "pending", scores=scores)
    if row is not None:
        result.error, result.scored_at, result.notes = row.error, row.scored_at, row.notes
    hallucination = scores.get(names.HALLUCINATION.name)
    if hallucination is not None and output:
        result.output_segments = _segments(output, hallucination.metadata.get("unsupported", []))
    return result


@dataclass
class ScoringHealth:
    """How far scoring has got with one project's recent traces (the settings page)."""

    traces: int
    scored: int
    failed: int
    pending: int
    last_error: str = ""
    last_scored_at: Any = None
    # Groundedness outcomes without a score (evaluation/deferred.py).
    grounding_queued: int = 0
    grounding_not_sampled: int = 0
    grounding_skipped: int = 0
    # Left unscored by the project's backlog policy (evaluation/backlog.py).
    skipped: int = 0


def project_scoring_health(*, project_id: int, since) -> ScoringHealth:
    """Counts of traces started since `since` by scoring status (four small queries).

    A trace counts as pending when it has no result yet or changed after its last one
    (more spans arrived), the same rule the sweep uses.
    """
    status = TraceScoring.objects.filter(project_id=project_id, trace_id=OuterRef("trace_id"))
    counts = (
        Trace.objects.filter(project_id=project_id, start_time__gte=since)
        .annotate(s=Subquery(status.values("status")[:1]), at=Subquery(status.values("trace_updated_at")[:1]))
        .aggregate(
            traces=Count("id"),
            scored=Count("id", filter=Q(s="scored", at__gte=F("updated_at"))),
            failed=Count("id", filter=Q(s="failed", at__gte=F("updated_at"))),
            skipped=Count("id", filter=Q(s="skipped", at__gte=F("updated_at"))),
        )
    )
    latest = (
        TraceScoring.objects.filter(project_id=project_id).aggregate(at=Max("scored_at"))["at"]
    )
    failed = (
        TraceScoring.objects.filter(project_id=project_id, status="failed").order_by("-scored_at")
        .values_list("error", flat=True).first()
    )
    grounding = TraceScoring.objects.filter(project_id=project_id, scored_at__gte=since).aggregate(
        queued=Count("id", filter=Q(notes__groundedness=NOTE_QUEUED)),
        not_sampled=Count("id", filter=Q(notes__groundedness__startswith=NOT_SAMPLED)),
        skipped=Count("id", filter=Q(notes__groundedness__startswith=SKIPPED)),
    )
    return ScoringHealth(
        traces=counts["traces"], scored=counts["scored"], failed=counts["failed"],
        skipped=counts["skipped"], pending=counts["traces"] - counts["scored"] - counts["failed"] - counts["skipped"],
        last_error=(failed or "")[:500], last_scored_at=latest, grounding_queued=grounding["queued"],
        grounding_not_sampled=grounding["not_sampled"], grounding_skipped=grounding["skipped"],
    )


@dataclass(frozen=True)
class BacklogStatus:
    """A project's cheap-scoring backlog and what its policy does about it (settings pages)."""

    waiting: int  # traces of this project in the fair queue
    oldest: Any  # when the oldest of them was queued, or None
    lag_seconds: float | None  # how long it has waited
    total: int  # waiting across all projects
    skipped_recent: int  # traces skipped by the policy since `since`, still unscored
    skipped_total: int  # ever (the /metrics counter)
    policy: Any  # evaluation.backlog.Policy
    active: bool  # the backlog is above the threshold: the policy acts now


def project_backlog_status(*, project_id: int, since) -> BacklogStatus:
    from datetime import UTC, datetime

    from evaluation.backlog import policy_for
    from evaluation.fair_queue import project_backlog
    from evaluation.models import ScoringTurn

    waiting, oldest, total = project_backlog(project_id)
    policy = policy_for(project_id)
    skipped_total = ScoringTurn.objects.filter(project_id=project_id).values_list("skipped_total", flat=True).first()
    return BacklogStatus(
        waiting=waiting, oldest=oldest, total=total, policy=policy, active=policy.applies(waiting),
        lag_seconds=(datetime.now(UTC) - oldest).total_seconds() if oldest else None,
        skipped_recent=TraceScoring.objects.filter(project_id=project_id, status="skipped",
                                                   scored_at__gte=since).count(),
        skipped_total=skipped_total or 0,
    )


# --- nearest traces (pgvector) ----------------------------------------------------------
#
# Every project's embeddings share one HNSW index (trace_embedding_hnsw). A walk of that
# index meets rows in order of distance whatever their project, and the project filter
# drops the others' afterwards: for a project whose rows are not the ones crowding the
# query's neighbourhood, the walk ends before it finds a page. Whether Postgres walks the
# index or reads the project's rows through its project_id index is the planner's guess
# from table statistics, which can be stale (tests/explorer/test_semantic_search.py: a
# 50-trace project beside a big one got 0 of 20) or wrong for mid-size projects
# (bench/semantic.py: a 20,000-trace project got under 1% of 400). So the path is decided
# here.

# Up to this many embedding rows (about 10,000 traces) a project is searched exactly:
# every row's distance, grouped by trace. Right by construction, and its time depends
# only on the project's size. A walk of the shared index is faster when the query sits
# among the project's own rows, but slow when it sits among a neighbour's (the walk
# spends its whole budget, then the exact search runs anyway). bench/semantic.py, two
# sittings under load 7-11: at 16,000 rows the exact search had the better p95 (0.35-0.46 s
# against 0.83-1.9 s); at 40,000 rows which one won depended on the query.
EXACT_SEARCH_MAX_ROWS = 20_000
# Larger projects walk the index. A trace owns several rows (input, output, its LLM
# calls'), so ask for this many rows per trace wanted, more when they repeat.
INDEX_ROWS_PER_TRACE = 3
INDEX_ROWS_MAX = 10_000
# pgvector 0.8's iterative scan keeps walking past the rows the filter dropped until the
# LIMIT is met, visiting at most HNSW_MAX_SCAN_TUPLES rows (pgvector's default); relaxed
# order lets it return rows slightly out of order, sorted again below. ef_search is the
# candidate list of each step: 100 raised the big project's recall at 20 traces from
# 0.81-0.92 (main's 60) to 0.85-0.97, and gives 1,200 rows in 1.1-1.3 times the time
# main's single 1,000-candidate pass took for 1,000.
HNSW_EF_SEARCH = 100
HNSW_MAX_SCAN_TUPLES = 20_000


def trace_ids_nearest(
    *, project_id: int, vector: Sequence[float], limit: int, exclude: str | None = None
) -> list[str]:
    """Up to `limit` trace ids of the project, nearest first: a trace is as near as its
    nearest embedding row (input, output or an LLM call's) by cosine distance to `vector`.

    Fewer than `limit` only when the project has fewer traces (other than `exclude`).
    Small projects are searched exactly; larger ones through the HNSW index, falling
    back to the exact search when the walk ran out before finding `limit` traces.
    """
    if _embedding_rows_upto(project_id, EXACT_SEARCH_MAX_ROWS + 1) <= EXACT_SEARCH_MAX_ROWS:
        return _nearest_exact(project_id=project_id, vector=vector, limit=limit, exclude=exclude)
    found = _nearest_indexed(project_id=project_id, vector=vector, limit=limit, exclude=exclude)
    if found is None:
        found = _nearest_exact(project_id=project_id, vector=vector, limit=limit, exclude=exclude)
    return found


def _embedding_rows_upto(project_id: int, cap: int) -> int:
    """The project's embedding rows, counted up to `cap`: an index-only range scan of
    the project_id index, so a big project costs no more than a `cap`-row one."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {TraceEmbedding._meta.db_table} WHERE project_id = %s LIMIT %s) r",
            [project_id, cap],
        )
        return cursor.fetchone()[0]


def _project_embeddings(project_id: int, exclude: str | None):
    rows = TraceEmbedding.objects.filter(project_id=project_id)
    return rows.exclude(trace_id=exclude) if exclude else rows


def _nearest_exact(
    *, project_id: int, vector: Sequence[float], limit: int, exclude: str | None = None
) -> list[str]:
    """The exact answer: every row of the project, grouped by trace. Ordering by an
    aggregate leaves the planner no way to use the HNSW index."""
    return list(
        _project_embeddings(project_id, exclude)
        .values("trace_id")
        .annotate(distance=Min(CosineDistance("embedding", vector)))
        .order_by("distance", "trace_id")
        .values_list("trace_id", flat=True)[:limit]
    )


def _nearest_indexed(
    *, project_id: int, vector: Sequence[float], limit: int, exclude: str | None = None
) -> list[str] | None:
    """The approximate answer from an iterative walk of the HNSW index, or None when the
    walk ran out (HNSW_MAX_SCAN_TUPLES) before it found `limit` traces of the project."""
    rows_wanted = limit * INDEX_ROWS_PER_TRACE
    while True:
        with transaction.atomic():
            with connection.cursor() as cursor:
                # set_config(..., true) lasts until this transaction ends.
                cursor.execute(
                    "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),"
                    " set_config('hnsw.ef_search', %s, true), set_config('hnsw.max_scan_tuples', %s, true)",
                    [str(HNSW_EF_SEARCH), str(HNSW_MAX_SCAN_TUPLES)],
                )
            rows = list(
                _project_embeddings(project_id, exclude)
                .annotate(distance=CosineDistance("embedding", vector))
                .order_by("distance")
                .values_list("trace_id", "distance")[:rows_wanted]
            )
        best: dict[str, float] = {}
        for trace_id, distance in rows:
            best[trace_id] = min(distance, best.get(trace_id, distance))
        if len(best) >= limit:
            return sorted(best, key=lambda t: (best[t], t))[:limit]
        if len(rows) < rows_wanted or rows_wanted >= INDEX_ROWS_MAX:
            return None  # the walk ran out, or traces with many rows each: search exactly
        rows_wanted = min(rows_wanted * 4, INDEX_ROWS_MAX)
