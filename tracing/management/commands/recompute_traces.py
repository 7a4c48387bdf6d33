"""Rebuild trace rows from their stored spans, with progress.

    python manage.py recompute_traces [--project SLUG] [--since 2026-01-01T00:00:00Z]

Ingest folds each batch into its trace row (tracing/aggregates.py). This command is the
repair path: after spans were changed or deleted by hand, or to give rows written before
incremental folding their fold state at once rather than on their next batch. It is
idempotent, and safe while ingest runs (it takes ingest's per-trace locks).
"""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from projects.models import Project
from tracing.models import Trace
from tracing.services import traces_recompute_stored

# Traces per transaction: short transactions, so ingest waits on a lock for a moment only.
BATCH = 200


class Command(BaseCommand):
    help = "Recompute trace aggregates (latency, tokens, cost, name, ...) from the stored spans."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", help="only this project (slug)")
        parser.add_argument("--since", help="only traces that started at or after this ISO time")

    def handle(self, *args, **options) -> None:
        traces = Trace.objects.all()
        if options["project"]:
            project = Project.objects.filter(slug=options["project"]).first()
            if project is None:
                raise CommandError(f"--project: no project with slug {options['project']!r}.")
            traces = traces.filter(project=project)
        if options["since"]:
            try:
                since = datetime.fromisoformat(options["since"].replace("Z", "+00:00"))
            except ValueError as exc:
                raise CommandError(f"--since: {options['since']!r} is not an ISO date/time.") from exc
            if since.tzinfo is None:
                raise CommandError("--since: give a timezone (e.g. 2026-01-01T00:00:00Z).")
            traces = traces.filter(start_time__gte=since)
        rows = list(traces.order_by("project_id", "trace_id").values_list("project_id", "trace_id"))
        with tqdm(total=len(rows), unit="trace", desc="recomputing", file=self.stderr) as bar:
            for start in range(0, len(rows), BATCH):
                chunk = rows[start : start + BATCH]
                for project_id in sorted({p for p, _ in chunk}):
                    traces_recompute_stored(project_id=project_id, trace_ids=[t for p, t in chunk if p == project_id])
                bar.update(len(chunk))
        self.stdout.write(f"recomputed {len(rows)} trace{'s' if len(rows) != 1 else ''}")
