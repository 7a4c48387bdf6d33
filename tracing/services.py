"""Writes for traces and spans: the OTLP ingest path.

One request = one transaction: spans are bulk-copied, deduplicated on
(project, trace_id, span_id), and only the spans this request actually stored are
folded into their trace rows (tracing/aggregates.py). Folding only what was inserted is
what keeps aggregates right when spans arrive in several batches, in any order, or
twice, at a cost per batch that does not grow with the spans already stored.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.db import DatabaseError, DataError, connection, transaction

from projects.models import Project
from tracing import signals
from tracing.aggregates import traces_fold, traces_recompute
from tracing.cost import span_cost
from tracing.limits import Bounds
from tracing.masking import project_masker
from tracing.models import MaskingSettings
from tracing.otlp.mapping import messages_from_log_events, normalize_span
from tracing.otlp.types import NormalizedSpan, RawLogRecord, RawSpan

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUS = {0: "unset", 1: "ok", 2: "error"}
_INT64_MAX = 2**63 - 1

# Column order of the staging COPY; must match _span_row().
SPAN_COLUMNS = (
    "project_id", "trace_id", "span_id", "parent_span_id", "name", "kind", "otel_kind",
    "start_time", "end_time", "latency_ms", "status", "status_message", "provider", "model",
    "input_tokens", "output_tokens", "cached_tokens", "cache_creation_tokens", "reasoning_tokens",
    "total_tokens", "cost_usd", "cost_source", "input", "output", "messages", "documents", "params",
    "finish_reason", "session_id", "user_id", "tags", "metadata", "trace_name", "prompt_name",
    "prompt_version", "environment", "release", "service_name", "attributes", "resource", "events",
    "created_at",
)  # fmt: skip


@dataclass(frozen=True)
class IngestResult:
    accepted: int  # spans in the request that are now stored (new or already there)
    stored: int  # spans newly written by this request
    traces: list[int]  # trace row ids whose aggregates changed
    notes: list[str] = field(default_factory=list)  # values truncated, attributes dropped (Bounds.notes)


def _ts(ns: int) -> datetime:
    # Integer arithmetic: a float of ns/1e9 loses microseconds at current epochs.
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _clean_text(value: str | None) -> str | None:
    # Postgres text cannot hold NUL; a span with one must still be stored.
    if value is not None and "\x00" in value:
        return value.replace("\x00", "")
    return value


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_nul(v) for v in value]
    return value


def _json(value: Any) -> str:
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    # jsonb rejects \u0000; re-dump cleaned data only in that (rare) case.
    if "\\u0000" in text:
        text = orjson.dumps(_strip_nul(value), option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    return text


def _int64(value: int | None) -> int | None:
    if value is None or -_INT64_MAX <= value <= _INT64_MAX:
        return value
    return None


def _events_json(raw: RawSpan) -> list[dict[str, Any]]:
    return [{"name": e.name, "time": _ts(e.time_ns).isoformat(), "attributes": e.attributes} for e in raw.events]


def _span_row(project_id: int, raw: RawSpan, norm: NormalizedSpan, now: datetime) -> tuple:
    start, end = _ts(raw.start_ns), _ts(raw.end_ns)
    cost, cost_source = norm.cost_usd, "span" if norm.cost_usd is not None else None
    if cost is None and norm.model and (norm.input_tokens or norm.output_tokens):
        cost = span_cost(
            provider=norm.provider,
            model=norm.model,
            input_tokens=norm.input_tokens,
            output_tokens=norm.output_tokens,
            cached_tokens=norm.cached_tokens,
            cache_creation_tokens=norm.cache_creation_tokens,
            at=start,
        )
        cost_source = "computed" if cost is not None else None
    return (
        project_id,
        raw.trace_id,
        raw.span_id,
        raw.parent_span_id,
        _clean_text(raw.name[:512]),
        norm.kind,
        raw.otel_kind,
        start,
        end,
        (raw.end_ns - raw.start_ns) / 1e6,
        _STATUS.get(raw.status_code, "unset"),
        _clean_text(raw.status_message),
        _clean_text(norm.provider and norm.provider[:128]),
        _clean_text(norm.model and norm.model[:256]),
        _int64(norm.input_tokens),
        _int64(norm.output_tokens),
        _int64(norm.cached_tokens),
        _int64(norm.cache_creation_tokens),
        _int64(norm.reasoning_tokens),
        _int64(norm.total_tokens),
        cost,
        cost_source,
        _clean_text(norm.input),
        _clean_text(norm.output),
        _json(norm.messages),
        _json(norm.documents),
        _json(norm.params),
        _clean_text(norm.finish_reason and norm.finish_reason[:64]),
        _clean_text(norm.session_id and norm.session_id[:256]),
        _clean_text(norm.user_id and norm.user_id[:256]),
        [_clean_text(t[:200]) for t in norm.tags],
        _json(norm.metadata),
        _clean_text(norm.trace_name and norm.trace_name[:512]),
        _clean_text(norm.prompt_name and norm.prompt_name[:256]),
        _clean_text(norm.prompt_version and norm.prompt_version[:64]),
        _clean_text(norm.environment and norm.environment[:128]),
        _clean_text(norm.release and norm.release[:128]),
        _clean_text(norm.service_name and norm.service_name[:256]),
        _json(raw.attributes),
        _json(raw.resource),
        _json(_events_json(raw)),
        now,
    )


def _ensure_stage(cursor) -> None:
    # One temp table per database connection (connections are reused), emptied at every
    # commit: no catalog churn per request, and COPY cannot collide with another session.
    raw = connection.connection
    if getattr(connection, "_span_stage_for", None) is raw:
        return
    # Same column types as tracing_span, but no constraints: it only feeds an INSERT.
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS span_stage ON COMMIT DELETE ROWS AS "
        f"SELECT {', '.join(SPAN_COLUMNS)} FROM tracing_span WITH NO DATA"
    )
    # The CREATE is transactional: if this ingest rolls back (e.g. the DataError that
    # spans_ingest_salvaging retries span by span), the table is gone again. Remember it
    # only once committed, or every later batch on this connection fails on a missing table.
    transaction.on_commit(lambda: setattr(connection, "_span_stage_for", raw))


def _lock_traces(cursor, project_id: int, trace_ids: Iterable[str]) -> None:
    """Take a transaction-scoped advisory lock per touched trace.

    The lock serialises concurrent batches of the same trace, so each one's fold starts
    from the row the other committed. Advisory locks write nothing (a row lock would
    need the trace row to exist first, costing an extra insert and update per new
    trace), and taking them in the order of the lock key rules out deadlocks.
    """
    cursor.execute(
        "SELECT pg_advisory_xact_lock(%s, k.key) FROM "
        "(SELECT DISTINCT hashtext(t) AS key FROM unnest(%s::varchar[]) AS t ORDER BY 1) AS k",
        [project_id, sorted(set(trace_ids))],
    )


def _insert_spans(cursor, project_id: int, rows: list[tuple]) -> list[tuple[str, str, bool]]:
    """COPY into the stage, then move the new rows; returns their (trace_id, span_id,
    whether log records for the span are already stored)."""
    columns = ", ".join(SPAN_COLUMNS)
    # cursor.copy is psycopg's own API, outside Django's error translation: without the
    # wrapper a refused value raises psycopg.DataError, which spans_ingest_salvaging (and
    # the receiver's 503 mapping) never catch, so the whole batch would fail with a 500.
    with connection.wrap_database_errors, cursor.copy(f"COPY span_stage ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    # The pending-log check rides on the INSERT: one round trip less per batch, which is
    # most of a small streamed batch's cost. It runs after the trace lock was taken, so
    # it sees every log record whose ingest committed first; a later one waits for the
    # lock and then finds these spans itself (log_records_ingest).
    cursor.execute(
        f"WITH ins AS (INSERT INTO tracing_span ({columns}) SELECT {columns} FROM span_stage "
        "ON CONFLICT (project_id, trace_id, span_id) DO NOTHING RETURNING trace_id, span_id) "
        "SELECT ins.trace_id, ins.span_id, EXISTS (SELECT 1 FROM tracing_spanlogevent e "
        "WHERE e.project_id = %s AND e.trace_id = ins.trace_id AND e.span_id = ins.span_id) FROM ins",
        [project_id],
    )
    return cursor.fetchall()


def traces_recompute_stored(*, project_id: int, trace_ids: list[str]) -> list[int]:
    """Rebuild trace rows from all their stored spans (repair; `manage.py recompute_traces`).

    Takes the same per-trace locks as ingest, so a batch arriving meanwhile folds into
    the rebuilt row rather than being overwritten by it."""
    with transaction.atomic(), connection.cursor() as cursor:
        _lock_traces(cursor, project_id, trace_ids)
        return traces_recompute(cursor, project_id=project_id, trace_ids=trace_ids)


def _spans_sanitize(project_id: int, spans: list[RawSpan]) -> list[str]:
    """Mask the project's secrets, then bound sizes, before anything is derived or stored.
    Both steps are idempotent. Returns what bounding changed, for the client."""
    masker = project_masker(project_id)
    bounds = Bounds()
    for raw in spans:
        if masker:
            masker.span(raw)
        bounds.span(raw)
    return bounds.notes()


def spans_ingest(*, project: Project, spans: list[RawSpan]) -> IngestResult:
    """Store a batch of decoded spans durably; returns only after commit."""
    if not spans:
        return IngestResult(accepted=0, stored=0, traces=[])
    notes = _spans_sanitize(project.pk, spans)
    return _spans_store(project=project, spans=spans, notes=notes)


def _spans_store(*, project: Project, spans: list[RawSpan], notes: list[str]) -> IngestResult:
    now = datetime.now(UTC)
    rows = [_span_row(project.pk, raw, normalize_span(raw), now) for raw in spans]

    with transaction.atomic():
        with connection.cursor() as cursor:
            _ensure_stage(cursor)
            _lock_traces(cursor, project.pk, {raw.trace_id for raw in spans})
            stored = _insert_spans(cursor, project.pk, rows)
            inserted = [(trace_id, span_id) for trace_id, span_id, _ in stored]
            pending = [(trace_id, span_id) for trace_id, span_id, has_logs in stored if has_logs]
            if pending:
                # Log records that came first give these new spans their messages, before the fold reads them.
                _rebuild_span_messages(cursor, project.pk, pending)
            changed = traces_fold(cursor, project_id=project.pk, spans=inserted) if inserted else []
        if changed:
            transaction.on_commit(lambda: _enqueue_pipeline(project.pk, changed))
        if inserted:
            transaction.on_commit(lambda: _ingest_count(project.pk, spans=len(inserted), traces=len(changed)))
    return IngestResult(accepted=len(spans), stored=len(inserted), traces=changed, notes=notes)


@dataclass(frozen=True)
class SalvagedIngest:
    problems: list[str]  # one per span that could not be stored
    notes: list[str]  # what was stored differently from how it arrived (truncated, dropped)


def spans_ingest_salvaging(*, project: Project, spans: list[RawSpan]) -> SalvagedIngest:
    """Ingest a batch; if the database rejects its data, store span by span.

    A value Postgres refuses (a DataError) must not cost the batch's valid spans, nor
    make the client retry the same poison batch forever. The batch is sanitised once,
    before the first attempt, so the retries neither mask nor bound again.
    """
    if not spans:
        return SalvagedIngest(problems=[], notes=[])
    notes = _spans_sanitize(project.pk, spans)
    try:
        _spans_store(project=project, spans=spans, notes=notes)
        return SalvagedIngest(problems=[], notes=notes)
    except DataError:
        logger.warning("batch refused by the database; storing %d spans one by one", len(spans))
    problems = []
    for raw in spans:
        try:
            _spans_store(project=project, spans=[raw], notes=[])
        except DataError as exc:
            problems.append(f"span {raw.span_id}: the database refused a value: {str(exc).splitlines()[0]}")
    return SalvagedIngest(problems=problems, notes=notes)


def _ingest_count(project_id: int, *, spans: int, traces: int) -> None:
    """Add a committed batch to the project's ingest counters (/metrics). After the commit,
    in a statement of its own: inside the ingest transaction the counter row's lock would
    serialise a project's concurrent batches for their whole length."""
    try:
        _ingest_count_add(project_id, spans, traces)
    except DatabaseError:  # the spans are committed: a lost count must not fail the request
        logger.warning("could not count %d ingested spans of project %s", spans, project_id)


def _ingest_count_add(project_id: int, spans: int, traces: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tracing_ingestcounter (project_id, spans, trace_updates) VALUES (%s, %s, %s) "
            "ON CONFLICT (project_id) DO UPDATE SET spans = tracing_ingestcounter.spans + EXCLUDED.spans, "
            "trace_updates = tracing_ingestcounter.trace_updates + EXCLUDED.trace_updates",
            [project_id, spans, traces],
        )


def _enqueue_pipeline(project_id: int, trace_pks: list[int]) -> None:
    from tracing.tasks import traces_changed

    try:
        traces_changed.delay(project_id, trace_pks)
    except Exception:  # noqa: BLE001 - any broker failure; logged, never raised
        # The spans are committed; a broker outage must not turn that into an error.
        # The periodic scoring sweep announces traces that were never scored.
        logger.warning("could not announce %d stored traces; the sweep will catch up", len(trace_pks))


def traces_changed_announce(*, project_id: int, trace_pks: list[int], reason: str) -> None:
    """Tell every app that reacts to new or changed traces (tracing.signals): scoring,
    implicit signals, the LLM judge. Receivers only enqueue their own tasks.

    The one entry point after ingest, the scoring sweep, re-score and score_backfill,
    so a trace recovered by the sweep gets every follow-up a fresh one gets."""
    if reason not in signals.REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    if trace_pks:
        signals.traces_changed.send(sender=reason, project_id=project_id, trace_pks=list(trace_pks), reason=reason)


# ---------------------------------------------------------------- log events


def _fingerprint(record: RawLogRecord) -> str:
    payload = orjson.dumps(
        [record.time_ns, record.event_name, record.body, record.attributes],
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
        default=str,
    )
    return hashlib.sha256(payload).hexdigest()


def _rebuild_span_messages(cursor, project_id: int, targets: list[tuple[str, str]]) -> list[str]:
    """Set messages (and empty input/output) of spans from their log events.

    Returns the trace ids of spans that changed. Spans whose own attributes already
    carry messages keep them: attributes are the richer source when both exist.
    """
    cursor.execute(
        "SELECT e.trace_id, e.span_id, e.event_name, e.body, e.attributes FROM tracing_spanlogevent e "
        "JOIN unnest(%s::varchar[], %s::varchar[]) AS w(trace_id, span_id) "
        "ON e.trace_id = w.trace_id AND e.span_id = w.span_id "
        "WHERE e.project_id = %s ORDER BY e.trace_id, e.span_id, e.time, e.id",
        [[t for t, _ in targets], [s for _, s in targets], project_id],
    )
    grouped: dict[tuple[str, str], list[tuple[str, Any, dict]]] = {}
    for trace_id, span_id, name, body, attributes in cursor.fetchall():
        # Django's psycopg setup returns jsonb from a raw cursor as text, not parsed.
        body = orjson.loads(body) if isinstance(body, str) else body
        attributes = orjson.loads(attributes) if isinstance(attributes, str) else attributes
        grouped.setdefault((trace_id, span_id), []).append((name, body, attributes))
    changed: list[str] = []
    for (trace_id, span_id), events in grouped.items():
        messages = messages_from_log_events(events)
        if not messages:
            continue
        first_input = next((m.get("content") for m in reversed(messages)
                            if m.get("source") == "input" and m.get("role") == "user"), None)
        first_output = next((m.get("content") for m in messages if m.get("source") == "output"), None)
        cursor.execute(
            "UPDATE tracing_span SET messages = %s::jsonb, "
            "input = coalesce(input, %s), output = coalesce(output, %s) "
            "WHERE project_id = %s AND trace_id = %s AND span_id = %s AND messages = '[]'::jsonb",
            [_json(messages), _clean_text(first_input), _clean_text(first_output), project_id, trace_id, span_id],
        )
        if cursor.rowcount:
            changed.append(trace_id)
    return changed


def log_records_ingest(*, project: Project, records: list[RawLogRecord]) -> list[str]:
    """Store log records that belong to a span; attach them to spans already stored.

    Records without trace/span ids carry nothing we can place on a trace, so they are
    counted as accepted and dropped (the OTLP client must not retry them).
    Returns what bounding changed (Bounds.notes), for the client.
    """
    linked = [r for r in records if r.trace_id and r.span_id]
    if not linked:
        return []
    masker, bounds = project_masker(project.pk), Bounds()
    for record in linked:
        if masker:
            masker.log_record(record)
        bounds.log_record(record)
    now = datetime.now(UTC)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO tracing_spanlogevent
                    (project_id, trace_id, span_id, event_name, time, body, attributes, fingerprint)
                SELECT %s, r.trace_id, r.span_id, r.event_name, r.time, r.body::jsonb, r.attributes::jsonb,
                    r.fingerprint
                FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], %s::timestamptz[], %s::text[],
                            %s::text[], %s::varchar[])
                    AS r(trace_id, span_id, event_name, time, body, attributes, fingerprint)
                ON CONFLICT (project_id, trace_id, span_id, fingerprint) DO NOTHING
                """,
                [
                    project.pk,
                    [r.trace_id for r in linked],
                    [r.span_id for r in linked],
                    [_clean_text(r.event_name or "")[:256] for r in linked],
                    [_ts(r.time_ns) if r.time_ns else now for r in linked],
                    [_json(r.body) for r in linked],
                    [_json(r.attributes) for r in linked],
                    [_fingerprint(r) for r in linked],
                ],
            )
            targets = sorted({(r.trace_id, r.span_id) for r in linked})
            # Events are inserted before the lock and spans read after it: whichever of
            # this and a concurrent span batch locks second sees the other's rows.
            _lock_traces(cursor, project.pk, {t for t, _ in targets})
            changed = _rebuild_span_messages(cursor, project.pk, targets)
            if changed:
                # Log events rewrite spans already folded: rebuild those traces from all their spans.
                traces_recompute(cursor, project_id=project.pk, trace_ids=changed)
    return bounds.notes()



def masking_settings_save(*, project: Project, kinds: list[str], custom: list[dict[str, str]]) -> MaskingSettings:
    """Replace what a project masks at ingest. Applies to data received from now on:
    what is already stored was stored as received, and the page says so."""
    from config.errors import ValidationFailed
    from tracing.masking import DETECTOR_KINDS, MAX_CUSTOM_PATTERNS, PatternError, custom_pattern_check

    unknown = sorted(set(kinds) - set(DETECTOR_KINDS))
    if unknown:
        raise ValidationFailed(f"unknown detector(s) {', '.join(unknown)}; known: {', '.join(DETECTOR_KINDS)}")
    if len(custom) > MAX_CUSTOM_PATTERNS:
        raise ValidationFailed(f"at most {MAX_CUSTOM_PATTERNS} custom rules")
    names = [rule.get("name", "") for rule in custom]
    if len(set(names)) != len(names):
        raise ValidationFailed("custom rule names must be distinct")
    for rule in custom:
        try:
            custom_pattern_check(rule.get("name", ""), rule.get("pattern", ""))
        except PatternError as exc:
            raise ValidationFailed(str(exc)) from None
    ordered = [kind for kind in DETECTOR_KINDS if kind in set(kinds)]
    rules = [{"name": rule["name"], "pattern": rule["pattern"]} for rule in custom]
    saved, _ = MaskingSettings.objects.update_or_create(project=project, defaults={"kinds": ordered, "custom": rules})
    return saved
