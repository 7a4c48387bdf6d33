"""Choose the metadata keys a project's dashboard rollups split by.

    manage.py rollup_keys <project-slug>                 show them
    manage.py rollup_keys <project-slug> customer tier   set them (the next refresh rebuilds)
    manage.py rollup_keys <project-slug> --none          roll up no metadata key
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from dashboards.models import RollupConfig
from dashboards.rollups import MAX_METADATA_KEYS, rollup_config_set
from projects.models import Project


class Command(BaseCommand):
    help = "Show or set the metadata keys rolled up hourly for a project's dashboards."

    def add_arguments(self, parser) -> None:
        parser.add_argument("project", help="project slug")
        parser.add_argument("keys", nargs="*", help="metadata keys (replaces the current ones)")
        parser.add_argument("--none", action="store_true", help="roll up no metadata key")

    def handle(self, *args, project: str, keys: list[str], none: bool, **options) -> None:
        found = Project.objects.filter(slug=project).first()
        if found is None:
            raise CommandError(f"no project with slug {project!r}")
        if keys or none:
            if len(keys) > MAX_METADATA_KEYS:
                raise CommandError(f"at most {MAX_METADATA_KEYS} keys: each one adds a copy of the rollups")
            config = rollup_config_set(project=found, metadata_keys=[] if none else keys)
            self.stdout.write(f"{found.slug}: {', '.join(config.metadata_keys) or '(none)'}; the rollup task "
                              "rebuilds the project's hours within a minute")
            return
        config = RollupConfig.objects.filter(project=found).first()
        wanted = config.metadata_keys if config else []
        built = config.built_keys if config else []
        pending = "" if sorted(wanted) == sorted(built) else f" (built so far: {', '.join(built) or 'none'})"
        self.stdout.write(f"{found.slug}: {', '.join(wanted) or '(none)'}{pending}")
