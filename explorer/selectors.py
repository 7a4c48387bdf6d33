"""Reads for traces and spans. Every function takes the project and scopes by it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Left

from config import keyset
from config.errors import NotFound
from evaluation.selectors import trace_ids_nearest
from explorer.filters import TraceFilter
from projects.models import Project
from scores import names
from scores.models import DataType, Score, ScoreConfig, Source
from scores.services import DEFAULT_CONFIGS
from tracing.models import Span, Trace

# How much of a trace's input/output the list returns. One character more is fetched so
# the serializer can tell a truncated preview from a value that happens to fit.
PREVIEW_CHARS = 500

LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 500


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


# --- full-text search -------------------------------------------------------------------


# --- semantic search (pgvector) ---------------------------------------------------------

SEMANTIC_UNAVAILABLE = (
    "Semantic search needs embeddings; they appear once the scoring worker has processed "
    "traces. Until then, search by words."
)


# Nearest traces fetched before the explorer's filters apply (filtering a few hundred
# rows is cheap); a filter that keeps fewer than a page of them still gives a short page.
SEMANTIC_CANDIDATES = 400


def traces_semantic_search(
    *, project: Project, text: str, filters: TraceFilter, limit: int = 20
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
    found = filters.apply(project).filter(trace_id__in=ids)
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
    filters: TraceFilter,
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
    qs = filters.apply(project)
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


def trace_neighbors(*, project: Project, filters: TraceFilter, order: str, trace: Trace) -> Neighbors:
    """The traces just before and after `trace` in the filtered, ordered list (2 queries).

    Same filters and keyset as traces_list, so "next" on a trace page is exactly the
    row below it in the list the user came from.
    """
    column, descending = TRACE_ORDERS[order]
    qs = filters.apply(project)
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


def trace_detail(*, project: Project, trace_id: str, with_scores: bool = True) -> TraceDetail:
    """A trace with all its spans (flat, in start order) and its scores (as API dicts;
    `with_scores=False` when the caller reads them its own way, saving a query).

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
    scores = scores_for_trace(project=project, trace=trace) if with_scores else []
    return TraceDetail(trace=trace, spans=spans, scores=scores)


# --- explorer: scores on trace pages ----------------------------------------------------

# How a score reads at a glance. BAD: an evaluator flagged the trace, an end user or a
# reviewer judged it poorly, or the user's next move says the answer failed (rephrase,
# regenerate, abandon, escalate, frustration). GOOD: the opposite, said by a person.
# PLAIN: a check that passed, a reading time, a label without a direction.
BAD, GOOD, PLAIN = "bad", "good", "plain"
_TONE_RANK = {BAD: 0, GOOD: 1, PLAIN: 2}

# Which chips a row leads with: what needs a look, then what end users said, then the
# rest, folded. Without this a row led with `pii_input no`, `pii_output no`,
# `prompt_injection 0` (alphabetical) while a hallucination hid behind "+2".
TIER_NOTABLE, TIER_FEEDBACK, TIER_REST = 0, 1, 2
CHIPS_SHOWN = 4  # at most this many lead a row; more notable ones fold with the rest

# Within a tier, in the order a reader asks: did a machine flag it, what did the user
# say, what did the user do, what did a reviewer say, what did a script send.
SOURCE_ORDER = (Source.EVALUATOR, Source.END_USER, Source.IMPLICIT, Source.ANNOTATION, Source.API)


# (low, high) of the registered ratings (1-5), from the configs every project starts with.
_SCALES = {name: (low, high) for name, _, low, high, _, _ in DEFAULT_CONFIGS if low is not None and high is not None}


def score_tone(*, name: str, data_type: str, value: float | None, flagged: bool | None = None) -> str:
    """BAD, GOOD or PLAIN for one score, by the registry's direction (scores/names.py).

    `flagged` is an evaluator's own decision (metadata.flagged, evaluation/runner.py),
    made with the project's threshold, so it wins over the registry's default threshold.
    A name outside the registry has no known direction and reads PLAIN.
    """
    if flagged is not None:
        return BAD if flagged else PLAIN
    known = names.known(name)
    if known is None or known.higher_is_better is None or value is None:
        return PLAIN
    better = known.higher_is_better
    if data_type == DataType.BOOLEAN:
        said_yes = value >= 0.5
        if said_yes == better:
            # Only a "yes" to something good is news (thumbs up, copied); "no rephrase"
            # and "no PII" are what every clean trace says.
            return GOOD if said_yes else PLAIN
        return BAD
    if known.flag_threshold is not None:
        over = value >= known.flag_threshold
        return BAD if over != better else PLAIN
    if name in _SCALES:
        low, high = _SCALES[name]
        quarter = (high - low) / 4
        if value <= low + quarter:  # 1-5: 1 and 2
            return BAD if better else GOOD
        if value >= high - quarter:  # 1-5: 4 and 5
            return GOOD if better else BAD
    return PLAIN


def score_tier(*, name: str, source: str, tone: str) -> int:
    """Where a chip goes in a row: notable (BAD), end users' feedback, or the rest."""
    if tone == BAD:
        return TIER_NOTABLE
    known = names.known(name)
    from_end_user = source in (Source.END_USER, Source.IMPLICIT) or (
        known is not None and known.source == names.END_USER
    )
    if from_end_user and (tone == GOOD or source == Source.END_USER):
        # Explicit end-user feedback without a direction (a text, a label) is still
        # someone telling you something; implicit signals count only when positive.
        return TIER_FEEDBACK
    return TIER_REST


def _stored_flag(score: Any) -> bool | None:
    """An evaluator's stored decision. List pages annotate just that key as `flag`
    (the metadata itself can hold whole passages); the trace page has the metadata."""
    if score.source != Source.EVALUATOR:
        return None
    if hasattr(score, "flag"):
        return {"true": True, "false": False}.get(score.flag)
    flagged = (score.metadata or {}).get("flagged")
    return flagged if isinstance(flagged, bool) else None


def _tone_of(score: Any) -> str:
    return score_tone(name=score.name, data_type=score.data_type, value=score.value, flagged=_stored_flag(score))


@dataclass
class ScoreBadge:
    name: str
    value: str  # what the badge shows: mean, yes-share or latest label
    count: int
    sources: str  # comma-separated Score.source values, for the tooltip
    tone: str = PLAIN  # BAD, GOOD or PLAIN: the worst of its scores
    tier: int = TIER_REST

    @property
    def text(self) -> str:
        return f"{self.name} {self.value}"


@dataclass
class TraceScores:
    """Scores of one trace, summarized for a row or a trace header."""

    badges: list[ScoreBadge] = field(default_factory=list)  # notable first
    thumbs_up: int = 0
    thumbs_down: int = 0
    feedback: int = 0  # end-user scores of any type (thumbs, stars, text)

    @property
    def has_feedback(self) -> bool:
        return self.feedback > 0

    @property
    def leading(self) -> list[ScoreBadge]:
        """The chips a row shows: flagged or notable ones and end users' feedback."""
        return [b for b in self.badges if b.tier < TIER_REST][:CHIPS_SHOWN]

    @property
    def folded(self) -> list[ScoreBadge]:
        """The rest, behind "+N" (listed on hover and when expanded)."""
        return self.badges[len(self.leading):]

    @property
    def folded_text(self) -> str:
        return " · ".join(b.text for b in self.folded)


def _badge_value(group: list[Any]) -> str:
    values = [s.value for s in group if s.value is not None]
    if group[0].data_type == DataType.BOOLEAN and values:
        if len(values) > 1:
            return f"{sum(v >= 0.5 for v in values) / len(values):.0%} yes"
        return "yes" if values[0] >= 0.5 else "no"
    if values:
        return f"{sum(values) / len(values):.2f}".rstrip("0").rstrip(".")
    # Categorical or text: the most recent label (scores arrive in created order).
    return next((s.string_value for s in reversed(group) if s.string_value), "") or "—"


def _summarize(scores: list[Any]) -> TraceScores:
    summary = TraceScores()
    by_name: dict[str, list[Any]] = {}
    for score in scores:
        if score.source == Source.END_USER:
            summary.feedback += 1
            # Thumbs are boolean end-user scores (user_thumbs and any alias of it); they
            # have their own column.
            if score.data_type == DataType.BOOLEAN and score.value is not None:
                if score.value >= 0.5:
                    summary.thumbs_up += 1
                else:
                    summary.thumbs_down += 1
                continue
        by_name.setdefault(score.name, []).append(score)
    ranked: list[tuple[tuple[int, int, str], ScoreBadge]] = []
    for name, group in by_name.items():
        # A name's chip is as notable as its most notable score (one reviewer's 1 among 5s).
        judged = []
        for score in group:
            tone = _tone_of(score)
            judged.append((score_tier(name=name, source=score.source, tone=tone), _TONE_RANK[tone], tone))
        tier, _, tone = min(judged)
        sources = sorted({s.source for s in group})
        source_rank = min(SOURCE_ORDER.index(s) if s in SOURCE_ORDER else len(SOURCE_ORDER) for s in sources)
        badge = ScoreBadge(name=name, value=_badge_value(group), count=len(group), sources=", ".join(sources),
                           tone=tone, tier=tier)
        ranked.append(((tier, source_rank, name), badge))
    summary.badges = [badge for _, badge in sorted(ranked, key=lambda item: item[0])]
    return summary


# Columns the summaries read; the comment and metadata can be long and are not needed.
_SCORE_FIELDS = ("trace_id", "name", "value", "string_value", "data_type", "source", "created_at")


def scores_by_trace(*, project: Project, trace_ids: list[str]) -> dict[str, TraceScores]:
    """Score summaries for a page of traces, in one query (index score_project_trace)."""
    if not trace_ids:
        return {}
    grouped: dict[str, list[Any]] = {}
    scores = (
        Score.objects.filter(project=project, trace_id__in=trace_ids)
        .only(*_SCORE_FIELDS)
        # Only the evaluator's decision leaves the database, not the evidence beside it.
        .annotate(flag=KT("metadata__flagged"))
        .order_by("created_at")
    )
    for score in scores:
        grouped.setdefault(score.trace_id, []).append(score)
    return {trace_id: _summarize(group) for trace_id, group in grouped.items()}


TRACE_SCORES_MAX = 500


@dataclass
class ScoreRow:
    score: Score
    tone: str

    @property
    def value(self) -> str:
        score = self.score
        if score.name == names.USER_THUMBS.name and score.data_type == DataType.BOOLEAN and score.value is not None:
            return "👍 up" if score.value >= 0.5 else "👎 down"
        return score.display_value


@dataclass
class ScoreGroup:
    source: str
    label: str
    rows: list[ScoreRow]

    @property
    def notable(self) -> int:
        return sum(row.tone == BAD for row in self.rows)


# The trace page's groups, in the order a reader asks: what did the user say, what did
# the machines find, what did the user do next, what did reviewers say, what did scripts send.
SCORE_GROUPS = (
    (Source.END_USER, "End users"),
    (Source.EVALUATOR, "Evaluators"),
    (Source.IMPLICIT, "Implicit signals"),
    (Source.ANNOTATION, "Annotation"),
    (Source.API, "API"),
)


@dataclass
class TraceScorePanel:
    scores: list[Score]  # every score of the trace, oldest first (with author)
    groups: list[ScoreGroup]  # each score exactly once, grouped by source

    @property
    def notable(self) -> int:
        """Scores that are flagged or say the answer failed (BAD), in every group."""
        return sum(group.notable for group in self.groups)


def trace_score_panel(*, project: Project, trace_id: str) -> TraceScorePanel:
    """Every score of one trace, grouped by source for the trace page (one query).

    Within a group, flagged or poor scores come first, then by name and time. Every
    group is present (possibly empty) so the page can say what is missing.
    """
    scores = list(
        Score.objects.filter(project=project, trace_id=trace_id)
        .select_related("author")
        .order_by("created_at")[:TRACE_SCORES_MAX]
    )
    rows: dict[str, list[ScoreRow]] = {source: [] for source, _ in SCORE_GROUPS}
    for score in scores:
        rows.setdefault(score.source, []).append(ScoreRow(score=score, tone=_tone_of(score)))
    groups = [
        ScoreGroup(source=source, label=label,
                   rows=sorted(rows[source], key=lambda r: (_TONE_RANK[r.tone], r.score.name, r.score.created_at)))
        for source, label in SCORE_GROUPS
    ]
    return TraceScorePanel(scores=scores, groups=groups)


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
    # Configured names and the names Spyglass writes itself (evaluators, signals), so a
    # condition like hallucination>0.5 is one pick away.
    configured = ScoreConfig.objects.filter(project=project, is_archived=False).values_list("name", flat=True)
    score_names = sorted({*configured, *names.REGISTRY})
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


