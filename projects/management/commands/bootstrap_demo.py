"""Make sure the demo admin user and demo project exist; print how to use them.

Idempotent: running it again changes nothing and prints the same keys. Secrets are
stored hashed, so the demo key pair is kept in .data/demo-keys.json (mode 0600) for
local development only; if that file is lost a new pair is issued.
"""

import json
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from config import embedded
from projects.models import ApiKey, Project, hash_secret
from projects.services import api_key_create, project_create

DEMO_SLUG = "demo"


class Command(BaseCommand):
    help = "Ensure the demo admin and demo project (with an API key) exist and print them."

    def add_arguments(self, parser):
        parser.add_argument("--url", default=None, help="base URL to print (default from HOST/PORT)")

    def handle(self, *args, url, **options):
        username = settings.SPYGLASS_DEMO_USER
        password = settings.SPYGLASS_DEMO_PASSWORD
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_superuser(username=username, password=password, email="")
        keys_file = embedded.DATA_DIR / "demo-keys.json"
        project = Project.objects.filter(slug=DEMO_SLUG).first()
        keys = self._read_keys(keys_file, project)
        if project is None:
            project, issued = project_create(name="Demo support bot", owner=user, slug=DEMO_SLUG)
            keys = {"public_key": issued.public_key, "secret_key": issued.secret_key}
        elif keys is None:
            issued = api_key_create(project=project, created_by=user, name="demo")
            keys = {"public_key": issued.public_key, "secret_key": issued.secret_key}
        self._write_keys(keys_file, keys)
        base = url or f"http://{settings.SPYGLASS_HOST}:{settings.SPYGLASS_PORT}"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"  Spyglass is starting at {base}/",
                    f"  Log in as {username} / {password if password == 'admin' else '(SPYGLASS_DEMO_PASSWORD)'}",
                    f"  Demo project '{project.slug}':",
                    f"    public key  {keys['public_key']}",
                    f"    secret key  {keys['secret_key']}",
                    f"  Send traces to {base}/v1/traces  (Authorization: Bearer <secret key>)",
                    "",
                ]
            )
        )

    @staticmethod
    def _read_keys(path: Path, project: Project | None) -> dict | None:
        if project is None or not path.exists():
            return None
        try:
            keys = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        active = ApiKey.objects.filter(
            project=project,
            public_key=keys.get("public_key"),
            secret_hash=hash_secret(str(keys.get("secret_key"))),
            revoked_at=None,
        )
        return keys if active.exists() else None

    @staticmethod
    def _write_keys(path: Path, keys: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(keys))
        path.chmod(0o600)
