"""Deterministic per-trace sampling, shared by the LLM judge and offline groundedness."""

from __future__ import annotations

import hashlib


def trace_sampled(trace_id: str, rate: float) -> bool:
    """Whether `trace_id` falls inside a sample of `rate` (0–1) of all traces.

    Deterministic by trace id: a re-run (or a redelivered task) picks the same traces,
    and raising the rate only adds traces to the sample. Hex case does not matter.
    """
    if rate <= 0:
        return False
    bucket = int.from_bytes(hashlib.sha256(trace_id.lower().encode()).digest()[:8], "big") / 2**64
    return bucket < rate
