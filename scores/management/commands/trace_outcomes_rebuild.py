"""Recompute scores_traceoutcome (what the slices page reads per trace) from the scores.

    manage.py trace_outcomes_rebuild                    every project, one at a time
    manage.py trace_outcomes_rebuild --project <slug>   one project

Triggers keep the table right on every write; this is for a database whose triggers were
bypassed (a restore with session_replication_role = replica, a trigger disabled by hand).
Score writes to the whole table wait while a project is rebuilt (seconds per million
scores), so run it off-peak.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from projects.models import Project
from scores.services import trace_outcomes_rebuild


class Command(BaseCommand):
    help = "Recompute each trace's score outcomes (the slices page's table) from the scores."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", help="project slug (default: every project)")

    def handle(self, *args, project: str | None, **options) -> None:
        projects = Project.objects.order_by("pk")
        if project is not None:
            projects = projects.filter(slug=project)
            if not projects.exists():
                raise CommandError(f"no project with slug {project!r}")
        found = list(projects)
        for i, each in enumerate(found, 1):
            written = trace_outcomes_rebuild(project=each)
            self.stdout.write(f"[{i}/{len(found)}] {each.slug}: {written:,} traces with outcomes")
