import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from projects.auth import api_key_from_authorization
from projects.models import Membership, Project, Role


def test_create_project_json_prints_slug_and_working_keys(world):
    out = StringIO()
    call_command("create_project", "Checkout Assistant", "--owner", "owner", "--json", stdout=out)
    payload = json.loads(out.getvalue())
    assert set(payload) == {"project", "public_key", "secret_key"}
    project = Project.objects.get(slug=payload["project"])
    assert project.name == "Checkout Assistant"
    assert Membership.objects.get(project=project, user=world.owner).role == Role.ADMIN
    assert api_key_from_authorization(f"Bearer {payload['secret_key']}").project == project


def test_create_project_with_unknown_owner_fails_clearly(db):
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("create_project", "X", "--owner", "ghost", "--json")


def test_create_project_slugs_stay_unique(world):
    out1, out2 = StringIO(), StringIO()
    call_command("create_project", "Same Name", "--owner", "owner", "--json", stdout=out1)
    call_command("create_project", "Same Name", "--owner", "owner", "--json", stdout=out2)
    assert json.loads(out1.getvalue())["project"] != json.loads(out2.getvalue())["project"]


def test_bootstrap_demo_is_idempotent_and_prints_working_keys(db, monkeypatch, tmp_path):
    from config import embedded

    monkeypatch.setattr(embedded, "DATA_DIR", tmp_path)
    first, second = StringIO(), StringIO()
    call_command("bootstrap_demo", stdout=first)
    call_command("bootstrap_demo", stdout=second)
    assert first.getvalue() == second.getvalue()
    secret = next(line.split()[-1] for line in second.getvalue().splitlines() if "secret key" in line)
    assert api_key_from_authorization(f"Bearer {secret}").project.slug == "demo"
    assert Project.objects.filter(slug="demo").count() == 1
    assert (tmp_path / "demo-keys.json").stat().st_mode & 0o777 == 0o600
