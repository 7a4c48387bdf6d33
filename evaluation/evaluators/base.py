"""What evaluators take and give: plain data, no ORM, so each one is testable alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class TraceTexts:
    """The parts of one trace that evaluators read, gathered once by the runner.

    `context` is everything the answer may legitimately rest on: retrieved documents,
    system/context messages, tool results and earlier turns of the conversation.
    """

    trace_id: str
    input: str = ""
    output: str = ""
    context: list[str] = field(default_factory=list)
    # Filled by the runner when embeddings are computed anyway (they are reused by the
    # toxicity head instead of being computed twice): L2-normalised, shape (384,).
    input_vector: np.ndarray | None = None
    output_vector: np.ndarray | None = None
    # LLM calls inside the trace whose text differs from the trace's own input/output:
    # (span_id, "input" | "output", text), embedded beside the trace's two texts.
    span_texts: list[tuple[str, str, str]] = field(default_factory=list)
    span_vectors: list[np.ndarray] = field(default_factory=list)


@dataclass
class EvalScore:
    """One score an evaluator wants written (source=evaluator) with its evidence."""

    name: str
    value: float
    data_type: str = "numeric"  # "numeric" in [0, 1] or "boolean" (0/1)
    comment: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalResult:
    """An evaluator's outcome for one trace: scores, or a note of why there are none."""

    scores: list[EvalScore] = field(default_factory=list)
    # e.g. "no context": shown on the trace page instead of a number.
    note: str = ""
    # The evaluator's previous scores of this trace stay (another task will replace
    # them, e.g. groundedness queued for the grounding worker) instead of being removed
    # as scores a fresh run no longer gives.
    keep_previous: bool = False
