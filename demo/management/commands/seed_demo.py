"""Fill a project with a realistic support-bot history (see demo/)."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from demo.seed import seed as seed_history
from projects.models import Project
from tracing.models import Trace


class Command(BaseCommand):
    help = "Create a realistic support-bot history through the SDK (traces, sessions, users, feedback)."

    def add_arguments(self, parser):
        parser.add_argument("--project", default="demo", help="project slug (default: demo)")
        parser.add_argument("--traces", type=int, default=1500, help="number of traces (default 1500)")
        parser.add_argument("--days", type=int, default=30, help="spread over the last D days (default 30)")
        parser.add_argument("--url", help="send to a running server over OTLP/HTTP instead of in-process")
        parser.add_argument("--secret-key", help="the project's secret key (required with --url)")
        parser.add_argument("--public-key", help="the project's public key (end-user feedback, with --url)")
        parser.add_argument("--if-empty", action="store_true", help="do nothing if the project has traces")
        parser.add_argument("--seed", type=int, default=7, help="random seed (same seed, same story)")

    def handle(self, *args, project, traces, days, url, secret_key, public_key, if_empty, seed, **options):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project with slug {project!r}.")
        if traces < 1 or days < 1:
            raise CommandError("--traces and --days must be at least 1.")
        if url and not (secret_key and public_key):
            raise CommandError("--url needs --secret-key and --public-key (the project's key pair).")
        if if_empty and Trace.objects.filter(project=target).exists():
            self.stdout.write(f"Project {target.slug} already has traces; not seeding.")
            return
        with tqdm(total=traces, desc=f"Seeding {target.slug}", unit="trace") as bar:
            made = seed_history(project=target, traces=traces, days=days, url=url, secret_key=secret_key,
                        public_key=public_key, seed_value=seed, progress=bar.update)
        self.stdout.write(self.style.SUCCESS(f"Seeded {len(made)} traces into {target.slug}."))
