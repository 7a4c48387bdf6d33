"""Apply retention now, with progress.

    python manage.py apply_retention [--project SLUG] [--dry-run] [--batch N]

The same deletion as the beat task (retention/services.py), without its time budget:
runs until every project's old traces are gone. --dry-run counts what would go.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from projects.models import Project
from retention.models import RetentionPolicy
from retention.selectors import effective_days
from retention.services import retention_apply_project
from tracing.models import Trace


class Command(BaseCommand):
    help = "Delete traces (and all that hangs off them) older than each project's retention window."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", help="only this project (slug)")
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
        parser.add_argument("--batch", type=int,
                            help="traces per transaction (default: SPYGLASS_RETENTION_BATCH_TRACES)")

    def handle(self, *args, **options) -> None:
        if options["batch"] is not None and options["batch"] < 1:
            raise CommandError(f"--batch: expected 1 or more, got {options['batch']}.")
        projects = Project.objects.order_by("pk")
        if options["project"]:
            projects = projects.filter(slug=options["project"])
            if not projects.exists():
                raise CommandError(f"--project: no project with slug {options['project']!r}.")
        policies = {p.project_id: p for p in RetentionPolicy.objects.filter(project__in=projects)}
        for project in projects:
            days = effective_days(policies.get(project.pk))
            if days is None:
                self.stdout.write(f"{project.slug}: kept forever; nothing to do")
                continue
            if options["dry_run"]:
                result = retention_apply_project(project=project, days=days, dry_run=True)
            else:
                old = Trace.objects.filter(project=project,
                                           start_time__lt=timezone.now() - timedelta(days=days)).count()
                with tqdm(total=old, unit="trace", desc=project.slug, file=self.stderr) as bar:
                    result = retention_apply_project(project=project, days=days, batch=options["batch"],
                                                     on_batch=bar.update)
            self.stdout.write(result.log_line())
