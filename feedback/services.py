"""Writes for end users' feedback and events, and the implicit-feedback signals
derived from them.

Every public function owns its transaction. Explicit feedback becomes a Score through
scores.services (validated against the score config of its name); events become
InteractionEvents.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, ValidationFailed
from evaluation.backlog import traces_rescue
from feedback import implicit
from feedback.models import InteractionEvent, SessionSignalState
from projects.models import Project
from scores import names
from scores.models import Score, Source
from scores.services import as_number, score_upsert
from tracing.masking import project_masker

logger = logging.getLogger(__name__)

MAX_EVENT_TEXT_CHARS = 50_000


# Names the browser snippet and SDK users reach for first, mapped to the default configs.
THUMBS, RATING = names.USER_THUMBS.name, names.USER_RATING.name
FEEDBACK_ALIASES = {"thumbs": THUMBS, "thumb": THUMBS, "stars": RATING, "rating": RATING}


# --- end-user feedback ----------------------------------------------------------------


@dataclass(frozen=True)
class FeedbackWrite:
    row: Score | InteractionEvent
    created: bool  # False: an earlier row was updated (same thumbs target, or a retried id)


@transaction.atomic
def feedback_record(
    *,
    project: Project,
    trace_id: str,
    kind: str,
    name: str,
    value: Any = None,
    comment: str = "",
    span_id: str | None = None,
    tags: Iterable[str] = (),
    text: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    client_id: uuid.UUID | None = None,
) -> FeedbackWrite:
    """Store what an end user said (kind=feedback → Score) or did (kind=event → InteractionEvent).

    The trace need not exist yet: rows are keyed by the trace id, so feedback that
    beats its spans to the server shows up once they land. Thumbs and events feed the
    implicit signals, so once stored, the trace's session is recomputed (a late event on
    a session that was already closed counts too).

    Feedback is one score per (trace, span, name), latest wins: a trace belongs to one
    end user (its user_id), so a second thumbs on it is that user changing their mind,
    and counting both would inflate the rates. Events are a log: each one is a row
    (a client id only makes a retried request count once).
    """
    transaction.on_commit(lambda: _signals_after_feedback(project.pk, trace_id))
    meta = dict(metadata or {})
    tags = [str(t)[:100] for t in tags]
    if kind == "feedback":
        name = FEEDBACK_ALIASES.get(name, name)
        if tags:
            meta["tags"] = tags
        if value is None and not comment and not tags:
            raise ValidationFailed("value: feedback needs a value, a comment or tags.", detail={"value": "required"})
        if name in (THUMBS, RATING):
            # A thumbs-down on a trace the backlog policy skipped: it is scored after all.
            transaction.on_commit(lambda: traces_rescue(project_id=project.pk, trace_ids=[trace_id]))
        written = score_upsert(
            project=project,
            trace_id=trace_id,
            span_id=span_id,
            name=name,
            value=value,
            comment=comment,
            source=Source.END_USER,
            score_id=client_id,
            metadata=meta,
        )
        return FeedbackWrite(written.score, created=written.created)
    if kind != "event":
        raise ValidationFailed(f"kind: {kind!r} is not one of feedback, event.", detail={"kind": "invalid"})

    number: float | None = None
    if name == "edit":
        # The edited text is the point of an edit event; accept it in `text` or `value`.
        if text is None and isinstance(value, str):
            text, value = value, None
        if not text:
            raise ValidationFailed("text: an edit event needs the edited text.", detail={"text": "required"})
    if name == "dwell_ms":
        number = as_number(value, "dwell_ms")
        if number < 0:
            raise ValidationFailed("value: dwell_ms must not be negative.", detail={"value": "invalid"})
    elif isinstance(value, bool):
        number = 1.0 if value else 0.0
    elif isinstance(value, int | float):
        number = as_number(value, f"event {name!r}")
    elif isinstance(value, str):
        text = text if text is not None else value
    elif isinstance(value, dict):
        meta.update(value)
    elif value is not None:
        raise ValidationFailed("value: must be a number, boolean, string or object.", detail={"value": "invalid"})
    if text is not None and len(text) > MAX_EVENT_TEXT_CHARS:
        raise ValidationFailed(f"text: at most {MAX_EVENT_TEXT_CHARS} characters.", detail={"text": "too_long"})
    if tags:
        meta["tags"] = tags
    if comment:
        meta["comment"] = comment
    masker = project_masker(project.pk)
    if masker:  # an edit event carries the end user's own words: the ingest rules apply
        text, meta = (masker.text(text) if text else text), masker.value(meta)
    event_fields = {
        "trace_id": trace_id,
        "span_id": span_id,
        "name": name,
        "value": number,
        "text": text,
        "metadata": meta,
    }
    if client_id is not None:
        # A retried request (network blip, page unload) records the event once.
        event, created = InteractionEvent.objects.get_or_create(
            pk=client_id, defaults={"project": project, **event_fields}
        )
        if not created and (event.project_id != project.pk or event.trace_id != trace_id):
            raise Conflict(f"Event id {client_id} already belongs to another trace.", detail={"id": "taken"})
        return FeedbackWrite(event, created=created)
    return FeedbackWrite(InteractionEvent.objects.create(project=project, **event_fields), created=True)


# --- implicit-feedback signals ------------------------------------------------------------


def traces_changed_received(sender, *, project_id: int, trace_pks: list[int], **kwargs) -> None:
    """tracing.signals.traces_changed: recompute the implicit signals of the sessions
    these traces belong to (one message per batch; traces without a session have none)."""
    from tracing.models import Trace

    sessions = sorted(
        Trace.objects.filter(project_id=project_id, pk__in=trace_pks, session_id__isnull=False)
        .values_list("session_id", flat=True)
        .distinct()
    )
    if sessions:
        _sessions_signals_enqueue(project_id, sessions)


def _signals_after_feedback(project_id: int, trace_id: str) -> None:
    from tracing.models import Trace

    session_id = (
        Trace.objects.filter(project_id=project_id, trace_id=trace_id).values_list("session_id", flat=True).first()
    )
    if session_id:
        _sessions_signals_enqueue(project_id, [session_id])


def _sessions_signals_enqueue(project_id: int, session_ids: list[str]) -> None:
    from feedback.tasks import sessions_signals

    try:
        sessions_signals.delay(project_id, session_ids)
    except Exception:  # noqa: BLE001 - any broker failure; logged, never raised
        # The feedback is stored; the idle-session sweep recomputes the session later.
        logger.warning("could not enqueue signals for %d sessions of project %s", len(session_ids), project_id)


def signal_score_id(project: Project, trace_id: str, name: str) -> uuid.UUID:
    # Deterministic per (trace, signal): recomputing a session updates the same rows,
    # and a stale signal can be deleted by id without touching implicit scores that
    # clients posted themselves through the API.
    return uuid.uuid5(uuid.NAMESPACE_URL, f"spyglass:{project.pk}:{trace_id}:implicit:{name}")


def _default_embedder(texts: list[str]) -> Any:
    from evaluation.embeddings import embed_texts

    return embed_texts(texts)


def signals_params() -> implicit.SignalParams:
    from django.conf import settings

    minutes = settings.SPYGLASS_SIGNALS_ABANDON_MINUTES
    return implicit.SignalParams(abandon_after=timedelta(minutes=minutes))


@dataclass(frozen=True)
class SessionSignalsResult:
    session_id: str
    signals: list[implicit.Signal]
    removed: int
    closed: bool


@transaction.atomic
def session_signals_compute(
    *,
    project: Project,
    session_id: str,
    now: Any = None,
    embed: implicit.Embedder | None = None,
    params: implicit.SignalParams | None = None,
) -> SessionSignalsResult:
    """Recompute one session's implicit signals and store them as `source=implicit` scores.

    Idempotent: the same data gives the same rows (deterministic ids, upserts), and a
    signal that no longer holds — the user copied the answer after all, a late turn
    makes the old last turn no longer the last — is deleted.
    """
    from django.db import connection

    from tracing.models import Trace

    now = now or timezone.now()
    params = params or signals_params()
    # Serialise work on one session: two workers (an ingest batch and the abandon sweep)
    # computing it at once could otherwise interleave, and the one that read older data
    # could commit last. The lock is held only for this transaction.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"signals:{project.pk}:{session_id}"])
    rows = list(
        Trace.objects.filter(project=project, session_id=session_id)
        .order_by("start_time", "id")
        .values("trace_id", "start_time", "end_time", "input", "output")
    )
    trace_ids = [r["trace_id"] for r in rows]
    turns = [
        implicit.Turn(
            trace_id=r["trace_id"],
            start_time=r["start_time"],
            end_time=r["end_time"],
            user_message=implicit.user_message_of(r["input"]),
            answer=r["output"] or "",
        )
        for r in rows
    ]
    events = [
        implicit.Event(trace_id=e.trace_id, name=e.name, created_at=e.created_at, value=e.value, text=e.text)
        for e in InteractionEvent.objects.filter(project=project, trace_id__in=trace_ids)
    ]
    positive = frozenset(
        trace_id
        for trace_id, name, value in Score.objects.filter(
            project=project, trace_id__in=trace_ids, source=Source.END_USER, name__in=(THUMBS, RATING)
        ).values_list("trace_id", "name", "value")
        if value is not None and ((name == THUMBS and value >= 0.5) or (name == RATING and value >= 4))
    )
    computed = implicit.session_signals(
        turns, events, embed=embed or _default_embedder, now=now, params=params, positive_trace_ids=positive
    )
    kept = set()
    for signal in computed:
        score_id = signal_score_id(project, signal.trace_id, signal.name)
        kept.add(score_id)
        score_upsert(
            project=project,
            trace_id=signal.trace_id,
            name=signal.name,
            value=signal.value,
            source=Source.IMPLICIT,
            score_id=score_id,
            metadata={"signal": signal.name, "session_id": session_id, **signal.evidence},
        )
    possible = {signal_score_id(project, t, name) for t in trace_ids for name in implicit.SIGNAL_NAMES}
    removed, _ = Score.objects.filter(project=project, pk__in=possible - kept).delete()

    last_activity = implicit.last_activity(turns, events)
    closed = last_activity is not None and now - last_activity >= params.abandon_after
    if last_activity is not None:
        SessionSignalState.objects.update_or_create(
            project=project,
            session_id=session_id,
            defaults={"last_activity_at": last_activity, "computed_at": now, "closed": closed},
        )
    return SessionSignalsResult(session_id=session_id, signals=computed, removed=removed, closed=closed)


def sessions_due_for_close(*, now: Any = None, limit: int = 1000) -> list[tuple[int, str]]:
    """(project id, session id) of open sessions idle past the abandon threshold."""
    now = now or timezone.now()
    cutoff = now - signals_params().abandon_after
    return list(
        SessionSignalState.objects.filter(closed=False, last_activity_at__lte=cutoff)
        .order_by("last_activity_at")
        .values_list("project_id", "session_id")[:limit]
    )
