"""Reads for the drift page and API: bounded samples of two windows, compared by drift/stats.py.

Cost is bounded whatever the project's size: each window is read through a sample of at
most FEATURE_SAMPLE traces (lengths, tokens, latency, cost, model, prompt, metadata and
the quality scores of each sampled trace, one query) and at most EMBEDDING_SAMPLE
(current) / REFERENCE_SAMPLE (baseline) input embeddings. The sample is a hash of the
trace id below a fraction sized from the window's count, so it is spread over the whole
window and the same traces are drawn on every reload (the page does not flicker).
Windows smaller than the sample are read whole, so small projects get exact numbers.

New topics: a current input whose nearest input in the baseline sample is far is a
candidate; candidates are clustered, and each cluster's most central input is checked
against the whole baseline window with pgvector (an HNSW walk): a topic that has a
near neighbour among the baseline traces the sample missed is not new and is dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import psycopg
from django.db import connection, transaction
from psycopg.types.json import set_json_loads

from drift import stats
from evaluation.embeddings import DIMENSIONS
from evaluation.models import EmbeddingKind, TraceEmbedding
from projects.models import Project
from scores import names
from scores.models import Score
from tracing.models import Trace

FEATURE_SAMPLE = 20_000
# The classifier is trained on EMBEDDING_SAMPLE inputs per window (the baseline cut to
# the same size); every current input is compared with REFERENCE_SAMPLE baseline inputs
# when looking for new topics.
EMBEDDING_SAMPLE = 1_000
REFERENCE_SAMPLE = 4_000
TEXT_CHARS = 300
# Metadata keys compared as categorical features: the most common ones, with few enough
# values to be categories (a key with a value per user, like a request id, is not).
METADATA_KEYS = 8
METADATA_MIN_SHARE = 0.05
METADATA_MAX_VALUES = 50
# Categories beyond the most common ones are folded into "(other)" so a long tail of
# rare values neither crowds the page nor inflates chi-square with tiny expected counts.
TOP_CATEGORIES = 20
OTHER = "(other)"
MISSING = "(none)"

# pgvector walk of the confirmation query (see evaluation.selectors for the settings).
# The walk meets the topic's own current inputs first (they are nearest) and checks each
# against the baseline window; 2,000 rows bound that cost. A walk that meets no baseline
# row within them means the topic's neighbourhood is all current traffic: new.
HNSW_EF_SEARCH = 100
HNSW_MAX_SCAN_TUPLES = 2_000

NUMERIC_FEATURES = (
    # (name, label, unit, group)
    ("input_chars", "Input length", "characters", "input"),
    ("output_chars", "Output length", "characters", "output"),
    ("input_tokens", "Input tokens", "tokens", "input"),
    ("output_tokens", "Output tokens", "tokens", "output"),
    ("latency_ms", "Latency", "ms", "operations"),
    ("cost_usd", "Cost", "USD", "operations"),
)
# Quality: the share of a window's scored traces where the score says yes. Hallucination
# and toxicity use the evaluator's stored decision (its threshold may be a project
# setting), the registry threshold only for scores stored without one.
SCORE_FEATURES = (
    # (name, label, score names, "yes" means)
    ("hallucination_rate", "Hallucination rate", (names.HALLUCINATION.name,), "flagged"),
    ("toxicity_rate", "Toxicity rate", (names.TOXICITY_INPUT.name, names.TOXICITY_OUTPUT.name), "flagged"),
    ("thumbs_up_rate", "Thumbs-up rate", (names.USER_THUMBS.name,), "up"),
)
_YES_NO = {"flagged": ("yes", "no"), "up": ("up", "down")}
_FLAG_THRESHOLD = names.HALLUCINATION.flag_threshold


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


@dataclass
class EmbeddingSample:
    trace_ids: list[str]
    vectors: np.ndarray
    texts: list[str]


@dataclass
class WindowSample:
    traces: int  # traces in the window
    sampled: int  # traces read for the features
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, Counter] = field(default_factory=dict)
    embeddings: EmbeddingSample | None = None


_SCALE = 2147483647  # the hash below is masked to [0, 2^31)


def _hash_cut(fraction: float) -> int:
    return _SCALE if fraction >= 1 else int(fraction * _SCALE)


def window_trace_count(*, project: Project, window: Window) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {Trace._meta.db_table} t "
            "WHERE t.project_id = %s AND t.start_time >= %s AND t.start_time < %s",
            [project.pk, window.start, window.end],
        )
        return cursor.fetchone()[0]


def window_sample(*, project: Project, window: Window, limit: int = FEATURE_SAMPLE,
                  embeddings: int = EMBEDDING_SAMPLE) -> WindowSample:
    """About `limit` traces of the window with their numeric and categorical features and
    quality outcomes, and up to `embeddings` input embeddings with the inputs' first
    TEXT_CHARS characters (for topic labels).

    One scan of the window: a trace is in the feature sample when the hash of its id is
    below one cut, in the embedding sample when below another, so the samples are nested
    and the window's rows are read once (reading them is most of the cost). Scores come
    through one index look-up per feature-sampled trace, the embedding through one per
    embedding-sampled trace."""
    total = window_trace_count(project=project, window=window)
    # Aim a little under the limit, and over the embedding count (not every trace has an
    # embedding yet): the cuts are fractions of the window's count.
    feature_cut = _hash_cut(0.95 * limit / total if total else 1.0)
    embedding_cut = _hash_cut(1.2 * embeddings / total if total else 1.0)
    flag = ("CASE WHEN jsonb_typeof(s.metadata -> 'flagged') = 'boolean' THEN (s.metadata ->> 'flagged')::boolean "
            "ELSE s.value >= %s END")
    score_columns, score_params, wanted = [], [], []
    for _, _, score_names, meaning in SCORE_FEATURES:
        placeholders = ", ".join(["%s"] * len(score_names))
        expression = flag if meaning == "flagged" else "s.value >= 0.5"
        score_columns.append(f"bool_or({expression}) FILTER (WHERE s.name IN ({placeholders}))")
        score_params += ([_FLAG_THRESHOLD] if meaning == "flagged" else []) + list(score_names)
        wanted += score_names
    # The conditions on t.h inside the lateral subqueries reference only the outer row, so
    # Postgres runs each look-up only for the rows that pass them (a one-time filter).
    # LIMIT 1 (at most one row matches: trace_embedding_unique) keeps the embedding
    # look-up a per-row index probe: without it the planner flattened the subquery into a
    # hash join that read EVERY input embedding of the project (250,000 vectors of 1.5 kB,
    # ~540 MB, for the 4,000 it needed; most of the page's time, and growing with the
    # project's history, not with the window).
    sql = f"""
        SELECT t.h < %s, t.trace_id, char_length(t.input), char_length(t.output), t.input_tokens,
               t.output_tokens, t.latency_ms, t.cost_usd::float8, t.model, t.prompt_name, t.prompt_version,
               t.environment, t.metadata, {", ".join(f"q.s{i}" for i in range(len(SCORE_FEATURES)))},
               e.embedding, left(coalesce(t.input, ''), %s)
        FROM (
            SELECT t.*, (hashtextextended(t.trace_id, 0) & {_SCALE}) AS h
            FROM {Trace._meta.db_table} t
            WHERE t.project_id = %s AND t.start_time >= %s AND t.start_time < %s
        ) t
        LEFT JOIN LATERAL (
            SELECT {", ".join(f"{col} AS s{i}" for i, col in enumerate(score_columns))}
            FROM {Score._meta.db_table} s
            WHERE t.h < %s AND s.project_id = t.project_id AND s.trace_id = t.trace_id
              AND s.name IN ({", ".join(["%s"] * len(wanted))})
        ) q ON TRUE
        LEFT JOIN LATERAL (
            SELECT e.embedding FROM {TraceEmbedding._meta.db_table} e
            WHERE t.h < %s AND e.project_id = t.project_id AND e.trace_id = t.trace_id AND e.span_id = ''
              AND e.kind = %s
            LIMIT 1
        ) e ON TRUE
        WHERE t.h < %s
    """
    params = [feature_cut, TEXT_CHARS, project.pk, window.start, window.end, *score_params, feature_cut, *wanted,
              embedding_cut, EmbeddingKind.INPUT, max(feature_cut, embedding_cut)]
    connection.ensure_connection()
    # A plain (server-side binding) cursor with binary results: Django's client-side cursors
    # cannot return binary, and parsing 384 decimals a row from text cost ~0.3 ms a row.
    with psycopg.Cursor(connection.connection) as cursor:
        # orjson for the metadata column: psycopg's default (the standard json module)
        # cost ~25 µs a row, a third of a second per window at 20,000 rows.
        set_json_loads(orjson.loads, cursor)
        cursor.execute(sql, params, binary=True)
        rows = cursor.fetchall()
    # Columns taken straight from the fetched rows: slicing each row into a new tuple
    # made 20,000 more objects, and the garbage collector's passes over them cost more
    # than the slicing.
    sample = _sample_from_rows([r for r in rows if r[0]], total=total, first=2)
    sample.embeddings = _embedding_sample([(r[1], r[-2], r[-1]) for r in rows if r[-2] is not None], embeddings)
    return sample


def _embedding_sample(rows: list[tuple], limit: int) -> EmbeddingSample:
    """`limit` of the rows (trace id, raw vector, text), the same ones on every call."""
    rows = sorted(rows)[:limit]
    if not rows:
        return EmbeddingSample([], np.zeros((0, DIMENSIONS), dtype=np.float32), [])
    # pgvector's binary form: int16 dimensions, int16 unused, then big-endian float4s;
    # every row decoded by numpy at once.
    raw = b"".join(bytes(r[1])[4:] for r in rows)
    vectors = np.frombuffer(raw, dtype=">f4").astype(np.float32).reshape(len(rows), DIMENSIONS)
    return EmbeddingSample([r[0] for r in rows], vectors, [r[2] for r in rows])


def _category(value) -> str:
    if value is None or value == "":
        return MISSING
    return str(value)


def _categories(values) -> Counter:
    """Counter of _category(value) over values: counted first, the (few) distinct values
    mapped after, instead of calling _category on each of 20,000 values."""
    out: Counter = Counter()
    for value, n in Counter(values).items():
        out[_category(value)] += n
    return out


def _sample_from_rows(rows: list[tuple], *, total: int, first: int = 0) -> WindowSample:
    """The sample's features from rows whose columns from `first` on are the numeric
    features, model, prompt name and version, environment, metadata and score outcomes."""
    sample = WindowSample(traces=total, sampled=len(rows))
    width = 11 + len(SCORE_FEATURES)
    columns = list(zip(*rows, strict=True))[first:first + width] if rows else [()] * width
    for index, (name, *_rest) in enumerate(NUMERIC_FEATURES):
        values = np.array(columns[index], dtype=float)  # None -> NaN, dropped
        sample.numeric[name] = values[~np.isnan(values)]
    sample.categorical["model"] = _categories(columns[6])
    sample.categorical["prompt"] = Counter(
        MISSING if not name else f"{name}@{version}" if version else name
        for name, version in zip(columns[7], columns[8], strict=True)
    )
    sample.categorical["environment"] = _categories(columns[9])
    # Django's connection reads jsonb as text (it decodes JSONField values itself).
    metadata = [m if isinstance(m, dict) else orjson.loads(m) if m else {} for m in columns[10]]
    metadata = [m if isinstance(m, dict) else {} for m in metadata]
    sample.categorical.update({f"metadata.{key}": _categories(_hashable(m.get(key)) for m in metadata)
                               for key in {key for m in metadata for key in m}})
    for offset, (name, _, _, meaning) in enumerate(SCORE_FEATURES):
        values = [v for v in columns[11 + offset] if v is not None]
        yes, no = _YES_NO[meaning]
        sample.categorical[name] = Counter({yes: sum(values), no: len(values) - sum(values)})
    return sample


def _hashable(value):
    """A metadata value as a Counter key: lists and objects by their str(), as _category
    names them anyway."""
    return str(value) if isinstance(value, list | dict) else value


def metadata_keys(baseline: WindowSample, current: WindowSample) -> list[str]:
    """Metadata keys worth comparing: present on enough of either window's traces and with
    few enough values, most common first."""
    candidates = []
    for key in set(baseline.categorical) | set(current.categorical):
        if not key.startswith("metadata."):
            continue
        shares, values = [], set()
        for sample in (baseline, current):
            counts = sample.categorical.get(key, Counter())
            present = sum(n for v, n in counts.items() if v != MISSING)
            shares.append(present / sample.sampled if sample.sampled else 0.0)
            values |= {v for v in counts if v != MISSING}
        if max(shares) >= METADATA_MIN_SHARE and 0 < len(values) <= METADATA_MAX_VALUES:
            candidates.append((-max(shares), key))
    return [key for _, key in sorted(candidates)[:METADATA_KEYS]]


def fold_rare(baseline: Counter, current: Counter) -> tuple[Counter, Counter]:
    """Keep the TOP_CATEGORIES most common categories (over both windows), fold the rest."""
    keep = {k for k, _ in (baseline + current).most_common(TOP_CATEGORIES)}

    def fold(counts: Counter) -> Counter:
        out: Counter = Counter()
        for k, n in counts.items():
            out[k if k in keep else OTHER] += n
        return out

    return fold(baseline), fold(current)


# ------------------------------------------------------------------------ embeddings


@contextmanager
def _vector_cursor() -> Iterator[Any]:
    """A psycopg cursor that sends vectors as pgvector values. Registered on this cursor
    only, so Django's own queries read vectors as before."""
    from pgvector.psycopg.vector import register_vector_info
    from psycopg.types import TypeInfo

    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        register_vector_info(cursor, TypeInfo.fetch(connection.connection, "vector"))
        yield cursor


def nearest_baseline_distance(*, project: Project, window: Window, vector: np.ndarray) -> float | None:
    """Cosine distance from `vector` to the nearest input embedding of the window's traces,
    by pgvector (HNSW walk on large projects, exact on small ones); None when the walk
    met none within HNSW_MAX_SCAN_TUPLES rows (then nothing in the window is near)."""
    sql = f"""
        SELECT e.embedding <=> %s AS distance
        FROM {TraceEmbedding._meta.db_table} e
        WHERE e.project_id = %s AND e.kind = %s AND e.span_id = ''
          AND EXISTS (SELECT 1 FROM {Trace._meta.db_table} t WHERE t.project_id = e.project_id
                      AND t.trace_id = e.trace_id AND t.start_time >= %s AND t.start_time < %s)
        ORDER BY e.embedding <=> %s
        LIMIT 1
    """
    with transaction.atomic(), _vector_cursor() as cursor:
        cursor.execute(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),"
            " set_config('hnsw.ef_search', %s, true), set_config('hnsw.max_scan_tuples', %s, true)",
            [str(HNSW_EF_SEARCH), str(HNSW_MAX_SCAN_TUPLES)],
        )
        vector = np.asarray(vector, dtype=np.float32)
        cursor.execute(sql, [vector, project.pk, EmbeddingKind.INPUT, window.start, window.end, vector])
        row = cursor.fetchone()
    return None if row is None else float(row[0])


# ------------------------------------------------------------------------ the report


@dataclass
class Feature:
    name: str
    label: str
    kind: str  # "numeric" | "categorical" | "rate"
    group: str  # "input" | "output" | "operations" | "release" | "metadata" | "quality"
    unit: str
    psi: float | None
    status: str
    test: str | None  # "ks" | "chi2"
    statistic: float | None
    p_value: float | None
    baseline: dict
    current: dict


@dataclass
class TopicReport:
    label: str
    terms: list[str]
    size: int  # current inputs in the sample
    share: float  # of the current sample
    mean_distance: float
    nearest_baseline_distance: float | None  # of the central input, over the whole baseline window
    examples: list[dict]  # {"trace_id", "input"}


@dataclass
class DriftReport:
    baseline: Window
    current: Window
    baseline_traces: int
    current_traces: int
    baseline_sampled: int
    current_sampled: int
    features: list[Feature]
    embedding: stats.EmbeddingDrift
    topics: list[TopicReport]


def _numeric_summary(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {"n": 0, "mean": None, "p50": None, "p95": None}
    return {"n": len(values), "mean": float(values.mean()), "p50": float(np.percentile(values, 50)),
            "p95": float(np.percentile(values, 95))}


def _numeric_feature(name, label, unit, group, b: np.ndarray, c: np.ndarray) -> Feature:
    psi = test = None
    if min(len(b), len(c)) >= stats.MIN_N:
        psi = stats.psi_numeric(b, c)
        test = stats.ks(b, c)
    return Feature(name, label, "numeric", group, unit, psi, stats.feature_status(psi, test and test.p_value),
                   test and test.test, test and test.statistic, test and test.p_value, _numeric_summary(b),
                   _numeric_summary(c))


def _shares(counts: Counter) -> dict:
    total = sum(counts.values())
    return {k: n / total for k, n in counts.most_common()} if total else {}


def _categorical_feature(name, label, group, kind, b: Counter, c: Counter, *, yes: str | None = None) -> Feature:
    b, c = fold_rare(b, c)
    psi = test = None
    nb, nc = sum(b.values()), sum(c.values())
    if min(nb, nc) >= stats.MIN_N:  # one category in both windows: PSI 0, no test
        psi = stats.psi_categorical(b, c)
        test = stats.chi_square(b, c)
    summary_b = {"n": nb, "shares": _shares(b)}
    summary_c = {"n": nc, "shares": _shares(c)}
    if yes is not None:
        summary_b["rate"] = b.get(yes, 0) / nb if nb else None
        summary_c["rate"] = c.get(yes, 0) / nc if nc else None
    return Feature(name, label, kind, group, "share" if kind == "rate" else "", psi,
                   stats.feature_status(psi, test and test.p_value), test and test.test,
                   test and test.statistic, test and test.p_value, summary_b, summary_c)


def drift_report(*, project: Project, baseline: Window, current: Window) -> DriftReport:
    b = window_sample(project=project, window=baseline, embeddings=REFERENCE_SAMPLE)
    c = window_sample(project=project, window=current, embeddings=EMBEDDING_SAMPLE)
    features = [_numeric_feature(name, label, unit, group, b.numeric[name], c.numeric[name])
                for name, label, unit, group in NUMERIC_FEATURES]
    for name, label, group in (("model", "Model", "release"), ("prompt", "Prompt version", "release"),
                               ("environment", "Environment", "release")):
        features.append(_categorical_feature(name, label, group, "categorical", b.categorical[name],
                                             c.categorical[name]))
    for key in metadata_keys(b, c):
        features.append(_categorical_feature(key, key, "metadata", "categorical",
                                             b.categorical.get(key, Counter()), c.categorical.get(key, Counter())))
    for name, label, _, meaning in SCORE_FEATURES:
        features.append(_categorical_feature(name, label, "quality", "rate", b.categorical[name],
                                             c.categorical[name], yes=_YES_NO[meaning][0]))
    embedding, topics = _inputs_by_meaning(project=project, baseline=baseline, ref=b.embeddings, cur=c.embeddings)
    return DriftReport(baseline, current, b.traces, c.traces, b.sampled, c.sampled, features, embedding, topics)


def _examples(members: list[int], sample: EmbeddingSample) -> list[dict]:
    """Up to EXAMPLES traces of a topic, most central first, one per distinct input (a
    question asked 40 times is one example, not five)."""
    seen, out = set(), []
    for i in members:
        key = sample.texts[i].strip().lower()
        if key not in seen:
            seen.add(key)
            out.append({"trace_id": sample.trace_ids[i], "input": sample.texts[i]})
            if len(out) == stats.EXAMPLES:
                break
    return out


def _inputs_by_meaning(*, project: Project, baseline: Window, ref: EmbeddingSample,
                       cur: EmbeddingSample) -> tuple[stats.EmbeddingDrift, list[TopicReport]]:
    embedding = stats.embedding_drift(ref.vectors, cur.vectors)
    if len(ref.trace_ids) == 0 or len(cur.trace_ids) < stats.MIN_TOPIC_SIZE:
        return embedding, []
    distances = stats.nearest_distances(cur.vectors, ref.vectors)
    topics = []
    for topic in stats.far_clusters(cur.vectors, distances):
        confirmed = nearest_baseline_distance(project=project, window=baseline, vector=cur.vectors[topic.members[0]])
        if confirmed is not None and confirmed <= stats.FAR_DISTANCE:
            continue  # the sample missed baseline traces like these: not a new topic
        topics.append((topic, confirmed))
    if not topics:
        return embedding, []
    baseline_texts = ref.texts[:EMBEDDING_SAMPLE]
    terms = stats.topic_terms([[cur.texts[i] for i in t.members] for t, _ in topics], baseline_texts)
    reports = []
    for (topic, confirmed), words in zip(topics, terms, strict=True):
        topic.terms = words
        reports.append(TopicReport(
            label=topic.label, terms=words, size=len(topic.members), share=topic.share,
            mean_distance=topic.mean_distance, nearest_baseline_distance=confirmed,
            examples=_examples(topic.members, cur),
        ))
    return embedding, reports
