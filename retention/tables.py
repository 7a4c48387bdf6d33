"""What retention does to every table that belongs to a project: the decision, per model.

tests/retention/test_tables.py fails for a model with a `project` field that is missing
here, so a new table cannot grow for ever unnoticed: add it to one of the lists below.
README.md ("Retention") gives the same decisions in prose.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models

from alerts.models import AlertEvent, AlertRule
from annotation.models import AnnotationQueue, Comment, Correction, QueueItem, QueueReview
from dashboards.models import (
    ActorRollup,
    Chart,
    RollupConfig,
    RollupDirtyHour,
    SavedDashboard,
    ScoreRollup,
    TraceRollup,
)
from datasets.models import Dataset, DatasetItem, DatasetVersion
from evaluation.models import (
    BacklogPolicy,
    EvaluatorSettings,
    JudgeCall,
    JudgeSettings,
    ScoringQueueItem,
    ScoringTurn,
    TraceEmbedding,
    TraceScoring,
)
from experiments.models import Experiment, ExperimentResult
from feedback.models import InteractionEvent, SessionSignalState
from projects.models import ApiKey, Membership
from prompts.models import Prompt, PromptLabel, PromptLabelEvent, PromptVersion
from retention.models import RetentionPolicy, RetentionRun
from scores.models import Score, ScoreConfig, TraceOutcome
from tracing.models import IngestCounter, MaskingSettings, Span, SpanLogEvent, Trace


@dataclass(frozen=True)
class OwnClock:
    """Rows deleted by their own time column, not through a trace."""

    model: type[models.Model]
    column: str
    why: str


# Rows keyed by (project_id, trace_id) that describe one trace: deleted with it, in the
# same transaction, before the trace row itself.
BY_TRACE_ID: tuple[type[models.Model], ...] = (
    Span,  # the trace's spans (messages, documents, attributes live on the span row)
    SpanLogEvent,  # OTLP log records of its spans
    Score,  # every judgement of it: end user, annotation, evaluator, implicit, API
    TraceOutcome,  # its scores folded for the slices page (after Score: their delete trigger updates it)
    InteractionEvent,  # copy / regenerate / edit / dwell events on it
    TraceScoring,  # where the evaluators stand with it
    TraceEmbedding,  # its vectors (semantic search would otherwise find a trace that is gone)
    Comment,  # notes on it and their replies
    Correction,  # reviewers' corrected answers (a dataset item that took one keeps its copy)
)

# Annotation queue items whose trace (or pairwise partner) is deleted go too, their
# reviews first: a reviewer could not open the trace, and the verdicts (Scores) are gone.
QUEUE_ITEMS: tuple[type[models.Model], ...] = (QueueReview, QueueItem)

# The fair scoring queue refers to traces by primary key.
BY_TRACE_PK: tuple[type[models.Model], ...] = (ScoringQueueItem,)

OWN_CLOCK: tuple[OwnClock, ...] = (
    OwnClock(JudgeCall, "created_at", "one row per judged trace (the judge's spend ledger); kept by its own time "
             "so today's budget never changes"),
    OwnClock(SessionSignalState, "last_activity_at", "a session whose last activity is outside the window has no "
             "trace left"),
)

# Kept whatever their age, and why.
KEPT: dict[type[models.Model], str] = {
    Membership: "configuration", ApiKey: "configuration", MaskingSettings: "configuration",
    ScoreConfig: "configuration", JudgeSettings: "configuration", EvaluatorSettings: "configuration",
    ScoringTurn: "configuration (one row per project)", RollupConfig: "configuration",
    SavedDashboard: "configuration", Chart: "configuration", AlertRule: "configuration",
    AnnotationQueue: "configuration (its items of deleted traces go)",
    Prompt: "content people wrote, not traffic", PromptVersion: "content people wrote, not traffic",
    PromptLabel: "content people wrote, not traffic", PromptLabelEvent: "content people wrote, not traffic",
    Dataset: "curated; keeps its copied inputs", DatasetVersion: "curated; immutable history",
    DatasetItem: "curated: the item carries a copy of the input and output, its source_trace_id link then finds "
                 "no trace",
    Experiment: "a run's record over a pinned dataset version",
    ExperimentResult: "kept with its experiment: it carries its own copy of the output, latency, cost and "
                      "evaluator results; its trace_id link then finds no trace",
    AlertEvent: "state changes only (grows with incidents, not with traffic); alert history",
    TraceRollup: "rebuilt from what remains: deleting traces marks their hours dirty (triggers of "
                 "dashboards migration 0001) and the rollups task re-aggregates them",
    ScoreRollup: "rebuilt from what remains, as TraceRollup",
    ActorRollup: "rebuilt from what remains, as TraceRollup",
    RollupDirtyHour: "a work list the rollups task empties every run (retention adds to it)",
    BacklogPolicy: "configuration",
    IngestCounter: "two running totals per project (Prometheus counters must never go down)",
    RetentionPolicy: "configuration", RetentionRun: "the last run's report (one row per project)",
}


def decided_models() -> set[type[models.Model]]:
    """Every model this module has a decision for (Trace itself is the driver)."""
    return {Trace, *BY_TRACE_ID, *QUEUE_ITEMS, *BY_TRACE_PK, *(o.model for o in OWN_CLOCK), *KEPT}
