"""What tracing announces to the apps above it.

Ingest must not import what reacts to new traces (evaluators, implicit signals, the LLM
judge all sit above tracing), so it announces instead: `traces_changed` is sent for
every set of stored or changed traces, in a worker, never inside the ingest request.
Each app connects its receiver in its AppConfig.ready(); a new reaction is a new
receiver, not an edit to ingest.

Arguments: project_id (int), trace_pks (list[int], row ids of tracing_trace, one
project), reason (one of REASONS).
"""

from __future__ import annotations

from django.dispatch import Signal

# Why the traces are announced; receivers may treat them differently.
INGEST = "ingest"  # new spans were stored
SWEEP = "sweep"  # the scoring sweep found traces whose announcement was lost
RESCORE = "rescore"  # an admin asked to re-score a period (bulk: must not delay fresh traffic)
BACKFILL = "backfill"  # `score_backfill` already ran the evaluators in-process
REASONS = (INGEST, SWEEP, RESCORE, BACKFILL)

traces_changed = Signal()
