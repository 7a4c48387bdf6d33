import json as jsonlib

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from config.errors import DomainError
from projects.services import project_create


class Command(BaseCommand):
    help = "Create a project owned by USERNAME (admin) and print its first API key pair."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--owner", required=True, help="username of the project's first admin")
        parser.add_argument("--slug", help="URL slug (default: derived from the name)")
        parser.add_argument("--json", action="store_true", help="print {project, public_key, secret_key} as JSON")

    def handle(self, *args, name, owner, slug, json: bool, **options):
        user = get_user_model().objects.filter(username=owner).first()
        if user is None:
            raise CommandError(f"No user named {owner!r}; create it first (manage.py createsuperuser).")
        try:
            project, issued = project_create(name=name, owner=user, slug=slug)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        payload = {"project": project.slug, "public_key": issued.public_key, "secret_key": issued.secret_key}
        if json:
            self.stdout.write(jsonlib.dumps(payload))
        else:
            self.stdout.write(f"Project {project.name} ({project.slug})")
            self.stdout.write(f"  public key: {issued.public_key}")
            self.stdout.write(f"  secret key: {issued.secret_key}   (shown once; store it now)")
