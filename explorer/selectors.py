"""Reads for traces and spans. Every function takes the project and scopes by it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import BooleanField, Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Left

from config import keyset
from config.errors import NotFound
from evaluation.selectors import trace_ids_nearest
from projects.models import Project
from tracing.models import Span, Trace

# How much of a trace's input/output the list returns. One character more is fetched so
# the serializer can tell a truncated preview from a value that happens to fit.
PREVIEW_CHARS = 500

LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 500

# A JSON number exactly as JSON spells it; Python's int()/float() would also accept
# "1_000", "nan" or " 7 ", none of which jsonb could ever contain.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class TraceFilters:
    """Validated filters of the trace list; None / empty means "don't filter"."""

    start_from: datetime | None = None  # inclusive
    start_to: datetime | None = None  # exclusive
    session_id: str | None = None
    user_id: str | None = None
    model: str | None = None
    environment: str | None = None
    status: str | None = None
    name: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    # Explorer filters (the web UI; the API does not expose them yet).
    search: str | None = None  # words or a phrase in the trace's input/output
    score_name: str | None = None  # traces having a score of this name...
    score_min: float | None = None  # ...with value >= score_min
    score_max: float | None = None  # ...and value <= score_max
    has_feedback: bool | None = None  # True: some end-user feedback; False: none


@dataclass(frozen=True)
class TraceCursor:
    """Position after the last row of a page, in (start_time desc, id desc) order."""

    start_time: datetime
    id: int

    def encode(self) -> str:
        return keyset.cursor_encode(keyset.micros_from_datetime(self.start_time), self.id)

    @classmethod
    def decode(cls, token: str) -> TraceCursor:
        """Parse a cursor made by `encode`; ValueError for anything else."""
        micros, pk = keyset.cursor_decode(token, f"{keyset.MICROS}:{keyset.BIGINT_ID}")
        return cls(start_time=keyset.datetime_from_micros(micros), id=int(pk))


@dataclass(frozen=True)
class TracePage:
    traces: list[Trace]
    next_cursor: str | None


@dataclass(frozen=True)
class TraceDetail:
    trace: Trace
    spans: list[Span]
    scores: list[Any]


def metadata_candidates(value: str) -> list[Any]:
    """The JSON values a `metadata.<key>=<value>` query string may stand for.

    Query strings carry only text, while metadata values are typed JSON: `?metadata.
    retries=3` should find {"retries": 3} as well as {"retries": "3"}. The string always
    matches; a JSON number also matches as that number, `true`/`false` as booleans.
    `null` matches only the string "null", so a typo can't turn into "key is missing".
    """
    candidates: list[Any] = [value]
    if _JSON_NUMBER.fullmatch(value):
        number = float(value)
        # jsonb compares numbers by value (3 = 3.0), but keep ints as ints so huge
        # integers are not rounded through a float.
        candidates.append(int(value) if re.fullmatch(r"-?\d+", value) else number)
    elif value in ("true", "false"):
        candidates.append(value == "true")
    return candidates


def traces_filtered(project: Project, filters: TraceFilters) -> QuerySet[Trace]:
    """The project's traces matching `filters`, unordered: the one place filters become SQL."""
    qs = Trace.objects.filter(project=project)
    if filters.start_from is not None:
        qs = qs.filter(start_time__gte=filters.start_from)
    if filters.start_to is not None:
        qs = qs.filter(start_time__lt=filters.start_to)
    exact = {
        "session_id": filters.session_id,
        "user_id": filters.user_id,
        "model": filters.model,
        "environment": filters.environment,
        "status": filters.status,
        "name": filters.name,
    }
    qs = qs.filter(**{column: value for column, value in exact.items() if value is not None})
    if filters.tags:
        # `@>` on the array: served by the GIN index trace_tags_gin.
        qs = qs.filter(tags__contains=list(filters.tags))
    for key, value in filters.metadata.items():
        # One `@>` per candidate type, OR-ed: each is served by the jsonb_path_ops GIN
        # index (a `metadata->>key = value` comparison would not be).
        match = Q()
        for candidate in metadata_candidates(value):
            match |= Q(metadata__contains={key: candidate})
        qs = qs.filter(match)
    if filters.search:
        qs = qs.filter(search_condition(filters.search))
    if filters.score_name or filters.score_min is not None or filters.score_max is not None:
        qs = qs.filter(Exists(_scores_matching(project, filters)))
    if filters.has_feedback is not None:
        from scores.models import Source

        feedback = _score_model().objects.filter(
            project=project, trace_id=OuterRef("trace_id"), source=Source.END_USER
        )
        qs = qs.filter(Exists(feedback) if filters.has_feedback else ~Exists(feedback))
    return qs


def _score_model():
    # Imported late: feedback.selectors imports this module, and scores are an
    # optional neighbour of traces rather than part of them.
    from scores.models import Score

    return Score


def _scores_matching(project: Project, filters: TraceFilters) -> QuerySet:
    """Scores of the outer trace satisfying the score filter (name and value range).

    Served per trace by the index score_project_trace; a range with no name matches any
    score in the range.
    """
    scores = _score_model().objects.filter(project=project, trace_id=OuterRef("trace_id"))
    if filters.score_name:
        scores = scores.filter(name=filters.score_name)
    if filters.score_min is not None:
        scores = scores.filter(value__gte=filters.score_min)
    if filters.score_max is not None:
        scores = scores.filter(value__lte=filters.score_max)
    return scores


# --- full-text search -------------------------------------------------------------------

# Scripts written without spaces between words. The 'simple' text-search parser turns a
# run of them into one lexeme ("東京の天気は晴れです" is a single token), so a word inside
# can't be found through the tsvector; for queries in these scripts we match substrings.
_UNSPACED_SCRIPT = re.compile(
    "[\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs
    "\uac00-\ud7af"  # Hangul (particles attach to words, so prefixes miss)
    "\uff66-\uff9f]"  # half-width Katakana
)
# What the 'simple' parser treats as word characters, near enough: letters and digits
# of any script. The underscore splits words there too.
_WORD = re.compile(r"[^\W_]+")
SEARCH_MAX_WORDS = 16

# The indexed document (migration 0004): keep these two in step.
SEARCH_DOCUMENT = 'tracing_search_document("tracing_trace"."input", "tracing_trace"."output")'


def search_mode(text: str) -> str:
    """'words' (indexed full-text search) or 'substring' (scan) for a search text."""
    return "substring" if _UNSPACED_SCRIPT.search(text) else "words"


def search_condition(text: str) -> Q | RawSQL:
    """A filter for traces whose input or output contains `text`.

    Words mode: every word must occur as a word prefix ("refund" finds "refunds"), in
    any order, case-insensitively, through the GIN index trace_search_gin. No stemming,
    so the result does not depend on guessing the language of each trace.
    Substring mode (scripts without spaces): case-insensitive substring of the input or
    output. Unindexed, but the list walks traces newest first and stops at one page of
    matches, so frequent terms are fast; a rare term within a wide time range scans it.
    """
    text = text.strip()
    if search_mode(text) == "substring":
        return Q(input__icontains=text) | Q(output__icontains=text)
    words = _WORD.findall(text)[:SEARCH_MAX_WORDS]
    if not words:
        # Only punctuation: nothing can match a word search; fall back to the substring.
        return Q(input__icontains=text) | Q(output__icontains=text)
    # Words contain only letters/digits, so quoting them cannot break the tsquery syntax.
    query = " & ".join(f"'{word}':*" for word in words)
    return RawSQL(
        f"{SEARCH_DOCUMENT} @@ to_tsquery('simple'::regconfig, %s)", (query,), output_field=BooleanField()
    )


# --- semantic search (pgvector) ---------------------------------------------------------

SEMANTIC_UNAVAILABLE = (
    "Semantic search needs embeddings; they appear once the scoring worker has processed "
    "traces. Until then, search by words."
)


# Nearest traces fetched before the explorer's filters apply (filtering a few hundred
# rows is cheap); a filter that keeps fewer than a page of them still gives a short page.
SEMANTIC_CANDIDATES = 400


def traces_semantic_search(
    *, project: Project, text: str, filters: TraceFilters, limit: int = 20
) -> list[Trace] | None:
    """The `limit` traces nearest in meaning to `text` (within `filters`), or None when
    the project has no embeddings yet.

    None (not []) means "this search can't be answered yet", so the page can explain
    instead of showing an empty result.
    """
    from evaluation.embeddings import embed_texts
    from evaluation.models import TraceEmbedding

    if not TraceEmbedding.objects.filter(project=project).exists():
        return None
    vector = embed_texts([text])[0]
    ids = trace_ids_nearest(project_id=project.pk, vector=vector, limit=SEMANTIC_CANDIDATES)
    rank = {t: i for i, t in enumerate(ids)}
    found = traces_filtered(project=project, filters=filters).filter(trace_id__in=ids)
    return sorted(found, key=lambda t: rank[t.trace_id])[:limit]


def traces_similar(*, project: Project, trace: Trace, limit: int = 20) -> list[Trace] | None:
    """Traces nearest to `trace` by embedding, or None when it has none yet."""
    from evaluation.models import TraceEmbedding

    own = {
        e.kind: e.embedding
        for e in TraceEmbedding.objects.filter(project=project, trace_id=trace.trace_id, span_id="")
    }
    vector = own.get("input") if own.get("input") is not None else own.get("output")
    if vector is None:
        return None
    ids = trace_ids_nearest(project_id=project.pk, vector=vector, limit=limit, exclude=trace.trace_id)
    rank = {t: i for i, t in enumerate(ids)}
    found = Trace.objects.filter(project=project, trace_id__in=ids).defer("input", "output")
    return sorted(found, key=lambda t: rank[t.trace_id])


# Orders the explorer offers, each backed by an index so keyset pages stay cheap:
# start_time by trace_project_time, latency_ms by trace_project_latency (migration 0004).
# name -> (column, descending)
TRACE_ORDERS: dict[str, tuple[str, bool]] = {
    "-time": ("start_time", True),
    "time": ("start_time", False),
    "-latency": ("latency_ms", True),
    "latency": ("latency_ms", False),
}
DEFAULT_ORDER = "-time"


@dataclass(frozen=True)
class LatencyCursor:
    """Position after the last row of a page sorted by latency: (latency_ms, id)."""

    latency_ms: float
    id: int

    def encode(self) -> str:
        # repr() of a float round-trips exactly, so ties at the boundary are not skipped.
        return keyset.cursor_encode(f"L{self.latency_ms!r}", self.id)

    @classmethod
    def decode(cls, token: str) -> LatencyCursor:
        latency, pk = keyset.cursor_decode(token, rf"L(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?):{keyset.BIGINT_ID}")
        return cls(latency_ms=float(latency), id=int(pk))


def cursor_decode(order: str, token: str) -> TraceCursor | LatencyCursor:
    """The cursor of a page in `order`; ValueError when the token belongs to another order."""
    column, _ = TRACE_ORDERS[order]
    return TraceCursor.decode(token) if column == "start_time" else LatencyCursor.decode(token)


def _cursor_key(cursor: TraceCursor | LatencyCursor) -> Any:
    return cursor.start_time if isinstance(cursor, TraceCursor) else cursor.latency_ms


def _after(column: str, descending: bool, key: Any, pk: int) -> Q:
    """Rows strictly after (key, pk) in the order (column, id), both asc or both desc.

    The first conjunct bounds the index range scan; the OR only resolves ties at `key`.
    """
    if descending:
        return Q(**{f"{column}__lte": key}) & (Q(**{f"{column}__lt": key}) | Q(id__lt=pk))
    return Q(**{f"{column}__gte": key}) & (Q(**{f"{column}__gt": key}) | Q(id__gt=pk))


def _ordered(qs: QuerySet[Trace], column: str, descending: bool) -> QuerySet[Trace]:
    sign = "-" if descending else ""
    return qs.order_by(f"{sign}{column}", f"{sign}id")


def traces_list(
    *,
    project: Project,
    filters: TraceFilters,
    limit: int = LIST_LIMIT_DEFAULT,
    cursor: TraceCursor | LatencyCursor | None = None,
    order: str = DEFAULT_ORDER,
) -> TracePage:
    """One page of the project's traces in `order` (newest first by default), one query.

    Keyset pagination on (key, id) — for the default order (start_time desc, id desc),
    the order of the index trace_project_time: the id breaks ties between traces that
    started in the same microsecond, so pages never overlap or skip rows, and a deep page
    costs the same as the first one (no OFFSET scan).
    """
    column, descending = TRACE_ORDERS[order]
    qs = traces_filtered(project, filters)
    if cursor is not None:
        qs = qs.filter(_after(column, descending, _cursor_key(cursor), cursor.id))
    qs = (
        _ordered(qs, column, descending)
        # Inputs/outputs can be megabytes; cut them in the database rather than ship
        # whole documents to Python for a list of previews.
        .defer("input", "output")
        .annotate(
            input_preview=Left("input", PREVIEW_CHARS + 1),
            output_preview=Left("output", PREVIEW_CHARS + 1),
        )
    )
    # One extra row tells whether there is a next page without a COUNT query.
    rows = list(qs[: limit + 1])
    traces = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = traces[-1]
        if column == "start_time":
            next_cursor = TraceCursor(start_time=last.start_time, id=last.pk).encode()
        else:
            next_cursor = LatencyCursor(latency_ms=last.latency_ms, id=last.pk).encode()
    return TracePage(traces=traces, next_cursor=next_cursor)


@dataclass(frozen=True)
class Neighbors:
    previous: str | None  # trace_id of the row before, in the list's order
    next: str | None


def trace_neighbors(*, project: Project, filters: TraceFilters, order: str, trace: Trace) -> Neighbors:
    """The traces just before and after `trace` in the filtered, ordered list (2 queries).

    Same filters and keyset as traces_list, so "next" on a trace page is exactly the
    row below it in the list the user came from.
    """
    column, descending = TRACE_ORDERS[order]
    qs = traces_filtered(project, filters)
    key = getattr(trace, column)
    after = _ordered(qs.filter(_after(column, descending, key, trace.pk)), column, descending)
    before = _ordered(qs.filter(_after(column, not descending, key, trace.pk)), column, not descending)
    return Neighbors(
        previous=before.values_list("trace_id", flat=True).first(),
        next=after.values_list("trace_id", flat=True).first(),
    )


def scores_for_trace(*, project: Project, trace: Trace) -> list[Any]:
    """Scores attached to a trace and its spans (any source), as API dicts; one query.

    Owned by the feedback app, which stores scores by trace id: feedback that arrived
    before the trace shows up here as soon as the trace exists.
    """
    from scores.selectors import score_as_dict
    from scores.selectors import scores_for_trace as feedback_scores

    return [score_as_dict(score) for score in feedback_scores(project=project, trace_id=trace.trace_id)]


def trace_detail(*, project: Project, trace_id: str) -> TraceDetail:
    """A trace with all its spans (flat, in start order) and its scores.

    `trace_id` is lowercase hex. Another project's trace is "not found", exactly like a
    missing one, so ids of other tenants cannot be probed.
    """
    trace = Trace.objects.filter(project=project, trace_id=trace_id).first()
    if trace is None:
        raise NotFound(f"No trace {trace_id} in project {project.slug}.")
    # Spans join by the natural key (no FK); project_id first keeps this on the unique
    # index span_unique_otel_id. On equal start times the longer span (usually the
    # parent) comes first; span_id makes the order total.
    spans = list(
        Span.objects.filter(project=project, trace_id=trace_id).order_by("start_time", "-end_time", "span_id")
    )
    return TraceDetail(trace=trace, spans=spans, scores=scores_for_trace(project=project, trace=trace))


# --- explorer: scores on trace pages ----------------------------------------------------


@dataclass
class ScoreBadge:
    name: str
    value: str  # what the badge shows: mean, yes-share or latest label
    count: int
    sources: str  # comma-separated Score.source values, for the tooltip


@dataclass
class TraceScores:
    """Scores of one trace, summarized for a row or a trace header."""

    badges: list[ScoreBadge] = field(default_factory=list)
    thumbs_up: int = 0
    thumbs_down: int = 0
    feedback: int = 0  # end-user scores of any type (thumbs, stars, text)

    @property
    def has_feedback(self) -> bool:
        return self.feedback > 0


def _summarize(scores: list[Any]) -> TraceScores:
    from scores.models import DataType, Source

    summary = TraceScores()
    by_name: dict[str, list[Any]] = {}
    for score in scores:
        if score.source == Source.END_USER:
            summary.feedback += 1
            # Thumbs are boolean end-user scores (user_thumbs and any alias of it).
            if score.data_type == DataType.BOOLEAN and score.value is not None:
                if score.value >= 0.5:
                    summary.thumbs_up += 1
                else:
                    summary.thumbs_down += 1
                continue
        by_name.setdefault(score.name, []).append(score)
    for name in sorted(by_name):
        group = by_name[name]
        values = [s.value for s in group if s.value is not None]
        if group[0].data_type == DataType.BOOLEAN and values:
            shown = f"{sum(v >= 0.5 for v in values) / len(values):.0%} yes" if len(values) > 1 else (
                "yes" if values[0] >= 0.5 else "no"
            )
        elif values:
            shown = f"{sum(values) / len(values):.2f}".rstrip("0").rstrip(".")
        else:
            # Categorical or text: the most recent label (scores arrive in created order).
            shown = next((s.string_value for s in reversed(group) if s.string_value), "") or "—"
        sources = ", ".join(sorted({s.source for s in group}))
        summary.badges.append(ScoreBadge(name=name, value=shown, count=len(group), sources=sources))
    return summary


# Columns the summaries read; the comment and metadata can be long and are not needed.
_SCORE_FIELDS = ("trace_id", "name", "value", "string_value", "data_type", "source", "created_at")


def scores_by_trace(*, project: Project, trace_ids: list[str]) -> dict[str, TraceScores]:
    """Score summaries for a page of traces, in one query (index score_project_trace)."""
    if not trace_ids:
        return {}
    grouped: dict[str, list[Any]] = {}
    scores = (
        _score_model()
        .objects.filter(project=project, trace_id__in=trace_ids)
        .only(*_SCORE_FIELDS)
        .order_by("created_at")
    )
    for score in scores:
        grouped.setdefault(score.trace_id, []).append(score)
    return {trace_id: _summarize(group) for trace_id, group in grouped.items()}


TRACE_SCORES_MAX = 500


def trace_scores(*, project: Project, trace_id: str) -> tuple[TraceScores, list[Any]]:
    """The summary and the individual scores (with author) of one trace, one query."""
    scores = list(
        _score_model()
        .objects.filter(project=project, trace_id=trace_id)
        .select_related("author")
        .order_by("created_at")[:TRACE_SCORES_MAX]
    )
    return _summarize(scores), scores


# --- explorer: filter suggestions ---------------------------------------------------------

SUGGESTION_SAMPLE = 2000


@dataclass(frozen=True)
class FilterSuggestions:
    names: list[str]
    models: list[str]
    environments: list[str]
    score_names: list[str]


def filter_suggestions(*, project: Project) -> FilterSuggestions:
    """Values to offer in the filter inputs, from the most recent traces (2 queries).

    A DISTINCT over the whole table would read every row of a large project on each
    page view; the recent SUGGESTION_SAMPLE traces (an index range on trace_project_time)
    cover what people filter on, and the inputs still accept any value.
    """
    recent = list(
        Trace.objects.filter(project=project)
        .order_by("-start_time", "-id")
        .values_list("name", "model", "environment")[:SUGGESTION_SAMPLE]
    )
    from scores.models import ScoreConfig

    score_names = list(
        ScoreConfig.objects.filter(project=project, is_archived=False).order_by("name").values_list("name", flat=True)
    )
    return FilterSuggestions(
        names=sorted({r[0] for r in recent if r[0]})[:200],
        models=sorted({r[1] for r in recent if r[1]})[:200],
        environments=sorted({r[2] for r in recent if r[2]})[:50],
        score_names=score_names,
    )


# --- explorer: span tree and waterfall ----------------------------------------------------

MIN_BAR_PCT = 0.4  # a 0 ms span still gets a visible tick


@dataclass
class SpanRow:
    span: Span
    depth: int
    offset_pct: float  # where the bar starts, in % of the trace's duration
    width_pct: float
    children: int
    orphan: bool  # its parent never arrived (yet)


def span_tree(*, trace: Trace, spans: list[Span]) -> list[SpanRow]:
    """Spans in depth-first order with depth and waterfall geometry, computed server-side.

    `spans` come in start order (trace_detail), so siblings stay in start order.
    A span whose parent is missing (not arrived yet, or dropped upstream) is shown at
    the top level and flagged rather than hidden. Iterative, so a deep agent loop can't
    hit the recursion limit; a parent cycle (malformed ids) can't loop forever.
    """
    if not spans:
        return []
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[Span]] = {}
    for s in spans:
        parent = s.parent_span_id if s.parent_span_id in ids and s.parent_span_id != s.span_id else None
        children.setdefault(parent, []).append(s)
    start = min([trace.start_time, *(s.start_time for s in spans)])
    end = max([trace.end_time, *(s.end_time for s in spans)])
    total = max((end - start).total_seconds(), 1e-6)

    rows: list[SpanRow] = []
    seen: set[str] = set()
    stack: list[tuple[Span, int]] = [(s, 0) for s in reversed(children.get(None, []))]
    while stack:
        s, depth = stack.pop()
        if s.span_id in seen:
            continue
        seen.add(s.span_id)
        offset = (s.start_time - start).total_seconds() / total * 100
        width = max((s.end_time - s.start_time).total_seconds() / total * 100, MIN_BAR_PCT)
        kids = children.get(s.span_id, [])
        rows.append(
            SpanRow(
                span=s,
                depth=depth,
                offset_pct=round(min(offset, 100 - MIN_BAR_PCT), 3),
                width_pct=round(min(width, 100 - offset), 3) if offset < 100 else MIN_BAR_PCT,
                children=len(kids),
                orphan=depth == 0 and s.parent_span_id is not None,
            )
        )
        stack.extend((kid, depth + 1) for kid in reversed(kids))
    # Spans only reachable through a cycle were never visited; list them flat at the end.
    rows.extend(
        SpanRow(span=s, depth=0, offset_pct=0, width_pct=MIN_BAR_PCT, children=0, orphan=True)
        for s in spans
        if s.span_id not in seen
    )
    return rows


# --- explorer: sessions and users ---------------------------------------------------------

GROUP_LIMIT = 50


def _keyset_token(when: datetime, key: str) -> str:
    return keyset.cursor_encode(keyset.micros_from_datetime(when), key)


def keyset_token_decode(token: str) -> tuple[datetime, str]:
    """(last activity, id) of a sessions/users cursor; ValueError for anything else."""
    micros, key = keyset.cursor_decode(token, f"(?s){keyset.MICROS}:(.*)")
    return keyset.datetime_from_micros(micros), key


@dataclass
class SessionRow:
    session_id: str
    user_id: str | None
    turns: int
    first_time: datetime
    last_time: datetime
    end_time: datetime
    cost_usd: Any
    total_tokens: int
    errors: int
    thumbs_up: int = 0
    thumbs_down: int = 0
    feedback: int = 0

    @property
    def duration_ms(self) -> float:
        return (self.end_time - self.first_time).total_seconds() * 1000


@dataclass(frozen=True)
class GroupPage:
    rows: list[Any]
    next_cursor: str | None


def _window_sql(start_from: datetime | None, start_to: datetime | None) -> tuple[str, dict[str, Any]]:
    sql, params = "", {}
    if start_from is not None:
        sql += " AND t.start_time >= %(start_from)s"
        params["start_from"] = start_from
    if start_to is not None:
        sql += " AND t.start_time < %(start_to)s"
        params["start_to"] = start_to
    return sql, params


def sessions_list(
    *,
    project: Project,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    user_id: str | None = None,
    cursor: tuple[datetime, str] | None = None,
    limit: int = GROUP_LIMIT,
) -> GroupPage:
    """Sessions with traces in the window, most recently active first (2 queries).

    Sessions are not stored rows: they are aggregated from traces on the fly, so the
    cost grows with the traces in the window (hence the time range on the page; a
    session rollup table is the scale-out path). Keyset on (last trace start, id).
    """
    window, params = _window_sql(start_from, start_to)
    params.update(project=project.pk, limit=limit + 1)
    where = "t.project_id = %(project)s AND t.session_id IS NOT NULL" + window
    if user_id is not None:
        where += " AND t.user_id = %(user_id)s"
        params["user_id"] = user_id
    having = ""
    if cursor is not None:
        having = "HAVING (max(t.start_time), t.session_id) < (%(c_time)s, %(c_key)s)"
        params.update(c_time=cursor[0], c_key=cursor[1])
    sql = f"""
        SELECT t.session_id, min(t.user_id), count(*), min(t.start_time), max(t.start_time),
               max(t.end_time), sum(t.cost_usd), coalesce(sum(t.total_tokens), 0),
               count(*) FILTER (WHERE t.status = 'error')
        FROM tracing_trace t
        WHERE {where}
        GROUP BY t.session_id {having}
        ORDER BY max(t.start_time) DESC, t.session_id DESC
        LIMIT %(limit)s
    """
    with connection.cursor() as db:
        db.execute(sql, params)
        rows = [SessionRow(*r) for r in db.fetchall()]
    page, more = rows[:limit], len(rows) > limit
    _attach_session_feedback(project, page)
    next_cursor = _keyset_token(page[-1].last_time, page[-1].session_id) if more else None
    return GroupPage(rows=page, next_cursor=next_cursor)


_FEEDBACK_SQL = """
    SELECT t.{group}, count(*) FILTER (WHERE s.data_type = 'boolean' AND s.value >= 0.5),
           count(*) FILTER (WHERE s.data_type = 'boolean' AND s.value < 0.5),
           count(*), count(DISTINCT t.trace_id)
    FROM tracing_trace t
    JOIN scores_score s ON s.project_id = t.project_id AND s.trace_id = t.trace_id
    WHERE t.project_id = %(project)s AND t.{group} = ANY(%(keys)s) AND s.source = 'end_user' {window}
    GROUP BY t.{group}
"""


def _feedback_counts(
    project: Project, group: str, keys: list[str], start_from: datetime | None = None,
    start_to: datetime | None = None,
) -> dict[str, tuple[int, int, int, int]]:
    """{key: (thumbs up, thumbs down, end-user scores, traces with any)} for a page."""
    if not keys:
        return {}
    window, params = _window_sql(start_from, start_to)
    params.update(project=project.pk, keys=keys)
    with connection.cursor() as db:
        db.execute(_FEEDBACK_SQL.format(group=group, window=window), params)
        return {row[0]: row[1:] for row in db.fetchall()}


def _attach_session_feedback(project: Project, rows: list[SessionRow]) -> None:
    counts = _feedback_counts(project, "session_id", [r.session_id for r in rows])
    for row in rows:
        row.thumbs_up, row.thumbs_down, row.feedback, _ = counts.get(row.session_id, (0, 0, 0, 0))


SESSION_TURNS_MAX = 200
TURN_TEXT_CHARS = 20_000


@dataclass(frozen=True)
class SessionDetail:
    session_id: str
    turns: list[Trace]
    truncated: bool  # more than SESSION_TURNS_MAX turns exist


def session_detail(*, project: Project, session_id: str) -> SessionDetail:
    """A session's traces in conversation order (index trace_project_session)."""
    rows = list(
        Trace.objects.filter(project=project, session_id=session_id)
        .order_by("start_time", "id")
        .defer("input", "output", "metadata")
        .annotate(
            input_text=Left("input", TURN_TEXT_CHARS),
            output_text=Left("output", TURN_TEXT_CHARS),
        )[: SESSION_TURNS_MAX + 1]
    )
    if not rows:
        raise NotFound(f"No session {session_id!r} in project {project.slug}.")
    return SessionDetail(
        session_id=session_id, turns=rows[:SESSION_TURNS_MAX], truncated=len(rows) > SESSION_TURNS_MAX
    )


@dataclass
class UserRow:
    user_id: str
    traces: int
    sessions: int
    cost_usd: Any
    total_tokens: int
    first_seen: datetime
    last_seen: datetime
    errors: int
    thumbs_up: int = 0
    thumbs_down: int = 0
    feedback: int = 0
    traces_with_feedback: int = 0

    @property
    def feedback_rate(self) -> float | None:
        """Share of the user's traces that got any end-user feedback."""
        return self.traces_with_feedback / self.traces if self.traces else None

    @property
    def thumbs_up_rate(self) -> float | None:
        votes = self.thumbs_up + self.thumbs_down
        return self.thumbs_up / votes if votes else None


_USERS_SQL = """
    SELECT t.user_id, count(*), count(DISTINCT t.session_id), sum(t.cost_usd),
           coalesce(sum(t.total_tokens), 0), min(t.start_time), max(t.start_time),
           count(*) FILTER (WHERE t.status = 'error')
    FROM tracing_trace t
    WHERE {where}
    GROUP BY t.user_id {having}
    ORDER BY max(t.start_time) DESC, t.user_id DESC
    LIMIT %(limit)s
"""


def users_list(
    *,
    project: Project,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    cursor: tuple[datetime, str] | None = None,
    limit: int = GROUP_LIMIT,
    user_id: str | None = None,
) -> GroupPage:
    """End users with traces in the window, most recently seen first (2 queries)."""
    window, params = _window_sql(start_from, start_to)
    params.update(project=project.pk, limit=limit + 1)
    where = "t.project_id = %(project)s AND t.user_id IS NOT NULL" + window
    if user_id is not None:
        where += " AND t.user_id = %(user_id)s"
        params["user_id"] = user_id
    having = ""
    if cursor is not None:
        having = "HAVING (max(t.start_time), t.user_id) < (%(c_time)s, %(c_key)s)"
        params.update(c_time=cursor[0], c_key=cursor[1])
    with connection.cursor() as db:
        db.execute(_USERS_SQL.format(where=where, having=having), params)
        rows = [UserRow(*r) for r in db.fetchall()]
    page, more = rows[:limit], len(rows) > limit
    counts = _feedback_counts(project, "user_id", [r.user_id for r in page], start_from, start_to)
    for row in page:
        row.thumbs_up, row.thumbs_down, row.feedback, row.traces_with_feedback = counts.get(
            row.user_id, (0, 0, 0, 0)
        )
    next_cursor = _keyset_token(page[-1].last_seen, page[-1].user_id) if more else None
    return GroupPage(rows=page, next_cursor=next_cursor)


def user_summary(*, project: Project, user_id: str) -> UserRow:
    """All-time totals of one end user (index trace_project_user)."""
    page = users_list(project=project, user_id=user_id, limit=1)
    if not page.rows:
        raise NotFound(f"No end user {user_id!r} in project {project.slug}.")
    return page.rows[0]


