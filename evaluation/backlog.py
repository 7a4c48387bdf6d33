"""The backlog policy: what a project's cheap scoring does while too many of its traces wait.

The fair queue (evaluation/fair_queue.py) keeps one project's flood from starving the
others, but the flooding project's own traces still wait for ever longer. Above the
project's `threshold` of waiting traces its BacklogPolicy decides:

- `all` (default): every trace is scored, however late;
- `sample`: a deterministic share of traces (`sample_rate`, by a hash of the trace id,
  the same hash the judge and groundedness sample with), the others are skipped;
- `newest_first` / `oldest_first`: traces are taken in that order, and the queue keeps
  at most `cap` of them: those beyond the cap (the oldest, resp. the newest) are skipped.

Never skipped, whatever the mode: traces with negative end-user feedback (thumbs down,
1–2 stars), traces with an error, traces in an annotation queue. A trace that becomes one
of those after it was skipped (a late thumbs-down, added to a queue) is put back at the
head of its project's queue: by `traces_rescue` (called by feedback and annotation as
they write) and by the scoring sweep (`traces_skipped_protected`), which catches the rest.

A skipped trace says why on the trace page (TraceScoring status `skipped`, a note under
"backlog"); the settings page and /metrics count them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q

from config.errors import ValidationFailed
from evaluation.models import BacklogMode, BacklogPolicy, ScoringStatus, ScoringTurn, TraceScoring
from evaluation.sampling import trace_sampled
from scores import names
from scores.models import Score, Source
from tracing.models import Status, Trace

NOTE_KEY = "backlog"
MAX_COUNT = 10_000_000
ORDERED = (BacklogMode.NEWEST_FIRST, BacklogMode.OLDEST_FIRST)
# A rating at or below this many stars counts as negative feedback (of 1–5).
NEGATIVE_RATING_MAX = 2


@dataclass(frozen=True)
class Policy:
    mode: str = BacklogMode.ALL
    threshold: int = 1000
    sample_rate: float = 0.1
    cap: int = 1000

    def applies(self, waiting: int) -> bool:
        """Whether `waiting` traces are a backlog this policy acts on."""
        return self.mode != BacklogMode.ALL and waiting > self.threshold

    def describe(self) -> str:
        if self.mode == BacklogMode.SAMPLE:
            return f"above {self.threshold} waiting traces, a {self.sample_rate:.0%} sample is scored"
        if self.mode in ORDERED:
            order = "newest" if self.mode == BacklogMode.NEWEST_FIRST else "oldest"
            return f"above {self.threshold} waiting traces, the {order} {self.cap} are kept"
        return "every trace is scored"


def policy_for(project_id: int) -> Policy:
    row = BacklogPolicy.objects.filter(project_id=project_id).first()
    if row is None:
        return Policy()
    return Policy(mode=row.mode, threshold=row.threshold, sample_rate=row.sample_rate, cap=row.cap)


def backlog_policy_save(*, project, user, mode: str, threshold: int, sample_rate: float, cap: int) -> BacklogPolicy:
    """Set the project's policy (the settings page); bad values raise ValidationFailed naming the field."""
    if mode not in BacklogMode.values:
        raise ValidationFailed(f"mode: {mode!r} is not one of {', '.join(BacklogMode.values)}.",
                               detail={"mode": "invalid"})
    if not 0 <= threshold <= MAX_COUNT:
        raise ValidationFailed(f"threshold: must be between 0 and {MAX_COUNT}.", detail={"threshold": "invalid"})
    if not 1 <= cap <= MAX_COUNT:
        raise ValidationFailed(f"cap: must be between 1 and {MAX_COUNT}.", detail={"cap": "invalid"})
    # `not (0 <= x <= 1)` also refuses NaN, which would sample nothing without a word.
    if not 0 <= sample_rate <= 1:
        raise ValidationFailed("sample_rate: must be between 0 and 1.", detail={"sample_rate": "invalid"})
    row, _ = BacklogPolicy.objects.update_or_create(project=project, defaults={
        "mode": mode, "threshold": threshold, "sample_rate": sample_rate, "cap": cap, "updated_by": user})
    return row


# --- what is never dropped ------------------------------------------------------------------

# Apps above evaluation add conditions of their own (annotation: "in a queue"): each is a
# function of the outer query's project id and trace id references, returning an Exists.
Protector = Callable[[OuterRef, OuterRef], Exists]
_PROTECTORS: dict[str, Protector] = {}


def protector_register(name: str, protector: Protector) -> None:
    """Called from an AppConfig.ready(); registering a name again replaces it."""
    _PROTECTORS[name] = protector


def _negative_feedback(project: OuterRef, trace_id: OuterRef) -> Exists:
    negative = (Q(name=names.USER_THUMBS.name, value__lte=0)
                | Q(name=names.USER_RATING.name, value__lte=NEGATIVE_RATING_MAX))
    return Exists(Score.objects.filter(project_id=project, trace_id=trace_id, source=Source.END_USER)
                  .filter(negative))


def _errored(project: OuterRef, trace_id: OuterRef) -> Exists:
    return Exists(Trace.objects.filter(project_id=project, trace_id=trace_id, status=Status.ERROR))


def protected_condition(project_field: str, trace_id_field: str) -> Q:
    """A filter on the outer query: the trace must be scored whatever the policy."""
    project, trace_id = OuterRef(project_field), OuterRef(trace_id_field)
    condition = Q(_negative_feedback(project, trace_id)) | Q(_errored(project, trace_id))
    for protector in _PROTECTORS.values():
        condition |= Q(protector(project, trace_id))
    return condition


@dataclass(frozen=True)
class Candidate:
    pk: int
    trace_id: str
    protected: bool


def candidates_load(pks: Iterable[int]) -> list[Candidate]:
    """The traces behind these row ids (one query), each with whether it is protected;
    in the order given, gone ones left out."""
    pks = list(pks)
    if not pks:
        return []
    rows = {
        pk: Candidate(pk, trace_id, protected)
        for pk, trace_id, protected in Trace.objects.filter(pk__in=pks)
        .annotate(protected=protected_condition("project_id", "trace_id"))
        .values_list("pk", "trace_id", "protected")
    }
    return [rows[pk] for pk in pks if pk in rows]


# --- the decision ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    score: list[int]  # row ids to score now
    skip: dict[int, str]  # row id -> why it is not scored


def decide(policy: Policy, *, waiting: int, taken: list[Candidate]) -> Decision:
    """Which of a turn's traces are scored. `waiting`: the project's queue when the turn
    began. Only `sample` skips here; the ordered modes skip at the cap (`overflow_decide`)."""
    if not policy.applies(waiting) or policy.mode != BacklogMode.SAMPLE:
        return Decision(score=[c.pk for c in taken], skip={})
    note = (f"skipped: {waiting} traces were waiting for scores; backlog policy 'sample' scores "
            f"{policy.sample_rate:.0%} of traces above {policy.threshold}")
    score, skip = [], {}
    for c in taken:
        if c.protected or trace_sampled(c.trace_id, policy.sample_rate):
            score.append(c.pk)
        else:
            skip[c.pk] = note
    return Decision(score=score, skip=skip)


def overflow_decide(policy: Policy, *, waiting: int, overflow: list[Candidate]) -> Decision:
    """The traces cut from beyond the cap: protected ones go back to the head of the queue
    (`score`), the others are skipped."""
    order = "newest" if policy.mode == BacklogMode.NEWEST_FIRST else "oldest"
    note = (f"skipped: {waiting} traces were waiting for scores; backlog policy '{policy.mode}' "
            f"keeps the {order} {policy.cap}")
    return Decision(score=[c.pk for c in overflow if c.protected],
                    skip={c.pk: note for c in overflow if not c.protected})


# --- writes ------------------------------------------------------------------------------------


@transaction.atomic
def traces_skip(*, project_id: int, notes: dict[int, str]) -> int:
    """Record that these traces (row ids) were not scored, and why. Their status row says
    `skipped` for the trace's current version, so the sweep leaves them alone until they
    change (more spans re-announce them) or become protected (rescued)."""
    if not notes:
        return 0
    now = datetime.now(UTC)
    traces = list(Trace.objects.filter(project_id=project_id, pk__in=list(notes))
                  .values_list("pk", "trace_id", "updated_at"))
    TraceScoring.objects.bulk_create(
        [TraceScoring(project_id=project_id, trace_id=trace_id, status=ScoringStatus.SKIPPED, error="",
                      trace_updated_at=updated_at, scored_at=now, notes={NOTE_KEY: notes[pk]})
         for pk, trace_id, updated_at in traces],
        update_conflicts=True, unique_fields=["project", "trace_id"],
        update_fields=["status", "error", "trace_updated_at", "scored_at", "notes"],
    )
    ScoringTurn.objects.filter(project_id=project_id).update(skipped_total=F("skipped_total") + len(traces))
    return len(traces)


def traces_rescue(*, project_id: int, trace_ids: Iterable[str]) -> int:
    """Put skipped traces that are now protected back at the head of their project's
    queue (after a thumbs-down, or when added to an annotation queue). Call after the
    write that protects them has committed. Returns how many were put back."""
    from evaluation.fair_queue import traces_enqueue
    from evaluation.tasks import scoring_drain

    skipped = TraceScoring.objects.filter(project_id=OuterRef("project_id"), trace_id=OuterRef("trace_id"),
                                          status=ScoringStatus.SKIPPED)
    pks = list(Trace.objects.filter(project_id=project_id, trace_id__in=list(trace_ids))
               .filter(Exists(skipped)).filter(protected_condition("project_id", "trace_id"))
               .values_list("pk", flat=True))
    if pks:
        traces_enqueue(project_id=project_id, trace_pks=pks, priority=True)
        scoring_drain.delay()
    return len(pks)


def turn_run(turn) -> int:
    """Score a fair-queue turn (evaluation.fair_queue.Turn) as its project's policy says,
    and record the skipped traces. Returns the traces handled (scored or skipped)."""
    from evaluation.runner import traces_score_batch

    decision = Decision(score=turn.trace_pks, skip={})
    if turn.policy.applies(turn.waiting) and turn.policy.mode == BacklogMode.SAMPLE:
        decision = decide(turn.policy, waiting=turn.waiting, taken=candidates_load(turn.trace_pks))
    scored = traces_score_batch(decision.score, defer=True) if decision.score else 0
    return scored + traces_skip(project_id=turn.project_id, notes={**turn.skipped, **decision.skip})


LOOKBACK = timedelta(days=2)
SWEEP_LIMIT = 5000


def traces_skipped_protected(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> dict[int, list[int]]:
    """For the sweep: skipped traces of the last LOOKBACK that are protected now, by
    project (a rescue its caller missed, or a protection this module has no hook for)."""
    now = now or datetime.now(UTC)
    rows = (TraceScoring.objects.filter(status=ScoringStatus.SKIPPED, scored_at__gte=now - LOOKBACK)
            .filter(protected_condition("project_id", "trace_id"))
            .values_list("project_id", "trace_id")[:limit])
    by_project: dict[int, list[str]] = {}
    for project_id, trace_id in rows:
        by_project.setdefault(project_id, []).append(trace_id)
    return {
        project_id: list(Trace.objects.filter(project_id=project_id, trace_id__in=trace_ids)
                         .values_list("pk", flat=True))
        for project_id, trace_ids in by_project.items()
    }
