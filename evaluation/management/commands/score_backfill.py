"""Score existing traces with the offline evaluators, in this process, with progress.

    python manage.py score_backfill [--since 2025-01-01T00:00:00Z] [--evaluator toxicity] [--project demo]

Each scored batch is then announced (tracing.signals, reason "backfill"), so implicit
signals and the LLM judge follow through the workers, as for fresh traces.
"""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from evaluation.evaluators.registry import EVALUATORS
from evaluation.runner import traces_score_batch
from projects.models import Project
from tracing import signals
from tracing.models import Trace
from tracing.services import traces_changed_announce

BATCH = 64


class Command(BaseCommand):
    help = "Run the offline evaluators over stored traces (idempotent: re-running changes nothing)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--since", help="only traces that started at or after this ISO time")
        parser.add_argument(
            "--evaluator",
            action="append",
            choices=sorted(EVALUATORS),
            help="only this evaluator (repeatable); default: every enabled one",
        )
        parser.add_argument("--project", help="only this project (slug)")

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
                raise CommandError("--since: give a timezone (e.g. 2025-01-01T00:00:00Z).")
            traces = traces.filter(start_time__gte=since)
        rows = list(traces.order_by("pk").values_list("pk", "project_id"))
        pks = [pk for pk, _ in rows]
        project_of = dict(rows)
        only = set(options["evaluator"]) if options["evaluator"] else None
        with tqdm(total=len(pks), unit="trace", desc="scoring", file=self.stderr) as bar:
            for start in range(0, len(pks), BATCH):
                chunk = pks[start : start + BATCH]
                traces_score_batch(chunk, only=only)
                for project_id in {project_of[pk] for pk in chunk}:
                    traces_changed_announce(
                        project_id=project_id,
                        trace_pks=[pk for pk in chunk if project_of[pk] == project_id],
                        reason=signals.BACKFILL,
                    )
                bar.update(len(chunk))
        self.stdout.write(f"scored {len(pks)} traces")
