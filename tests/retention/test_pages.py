"""The retention page and API (admins change it, everyone in the project reads it, with
the last run's report), and `manage.py apply_retention`."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from retention.models import RetentionMode, RetentionPolicy
from retention.services import retention_apply_project, retention_policy_save
from tests.retention.conftest import FULL, GONE, census, trace_at


@pytest.mark.django_db
@pytest.mark.parametrize("who, get, post", [("owner", 200, 302), ("member", 200, 403), ("viewer", 200, 403),
                                            ("outsider", 404, 404)])
def test_everyone_in_the_project_reads_the_page_and_only_admins_change_it(world, who, get, post):
    client = Client()
    client.force_login(getattr(world, who))
    url = f"/p/{world.project.slug}/settings/retention"
    page = client.get(url)
    assert page.status_code == get
    if get == 200:
        html = page.content.decode()
        assert "traces are kept forever" in html
        # Only an admin's form can be submitted.
        assert ('class="btn">Save</button>' in html) == (who == "owner")
        assert ('disabled' in html) == (who != "owner")
    assert client.post(url, {"mode": "days", "days": "14"}).status_code == post
    assert RetentionPolicy.objects.filter(project=world.project, days=14).exists() == (post == 302)


@pytest.mark.django_db
def test_the_page_saves_days_and_names_bad_input(world):
    client = Client()
    client.force_login(world.owner)
    url = f"/p/{world.project.slug}/settings/retention"
    missing = client.post(url, {"mode": "days", "days": ""})
    assert missing.status_code == 400 and "Give the number of days" in missing.content.decode()
    zero = client.post(url, {"mode": "days", "days": "0"})
    assert zero.status_code == 400 and "greater than or equal to 1" in zero.content.decode()
    assert not RetentionPolicy.objects.exists()
    assert client.post(url, {"mode": "days", "days": "14"}).status_code == 302
    assert "traces are kept 14 days" in client.get(url).content.decode()
    # Keeping forever drops the number of days.
    assert client.post(url, {"mode": "forever", "days": "14"}).status_code == 302
    policy = RetentionPolicy.objects.get(project=world.project)
    assert (policy.mode, policy.days, policy.updated_by) == ("forever", None, world.owner)


@pytest.mark.django_db
def test_the_page_shows_the_last_run(world):
    trace_at(world.project, timezone.now() - timedelta(days=40))
    retention_policy_save(project=world.project, mode=RetentionMode.DAYS, days=30)
    retention_apply_project(project=world.project, days=30)
    client = Client()
    client.force_login(world.viewer)
    html = client.get(f"/p/{world.project.slug}/settings/retention").content.decode()
    assert "1 trace that started before" in html and "<code>tracing_span</code></td><td>3</td>" in html


@pytest.mark.django_db
def test_the_api_reads_for_viewers_and_keys_and_replaces_for_admins(world, settings):
    settings.SPYGLASS_RETENTION_DAYS = 90
    url = f"/api/v1/retention?project={world.project.slug}"
    admin = APIClient()
    admin.force_login(world.owner)
    assert admin.get(url).json() == {"mode": "default", "days": None, "effective_days": 90, "default_days": 90,
                                     "last_run": None}
    saved = admin.post(url, {"mode": "days", "days": 7}, format="json")
    assert saved.status_code == 200 and saved.json()["effective_days"] == 7
    bad = admin.post(url, {"mode": "days"}, format="json")
    assert bad.status_code == 400 and "days" in bad.json()["error"]["message"]
    wrong = admin.post(url, {"mode": "weekly"}, format="json")
    assert wrong.status_code == 400 and "weekly" in str(wrong.json()["error"])
    both = admin.post(url, {"mode": "forever", "days": 3}, format="json")
    assert both.status_code == 400 and "only with mode=days" in both.json()["error"]["message"]
    viewer = APIClient()
    viewer.force_login(world.viewer)
    assert viewer.get(url).json()["days"] == 7
    assert viewer.post(url, {"mode": "forever"}, format="json").status_code == 403
    key = APIClient(HTTP_AUTHORIZATION=f"Bearer {world.key.secret_key}")
    assert key.get("/api/v1/retention").json()["mode"] == "days"
    assert key.post("/api/v1/retention", {"mode": "forever"}, format="json").status_code == 403
    assert RetentionPolicy.objects.get(project=world.project).days == 7


@pytest.mark.django_db
def test_the_command_dry_runs_then_deletes_one_project(world):
    now = timezone.now()
    old = trace_at(world.project, now - timedelta(days=40), reviewer=world.reviewer)
    other = trace_at(world.other_project, now - timedelta(days=40), reviewer=world.outsider)
    for project in (world.project, world.other_project):
        retention_policy_save(project=project, mode=RetentionMode.DAYS, days=30)
    out = StringIO()
    call_command("apply_retention", "--project", world.project.slug, "--dry-run", stdout=out, stderr=StringIO())
    assert "(dry run)" in out.getvalue() and "traces=1" in out.getvalue()
    assert census(world.project, old.trace_id, old.pk) == FULL
    out = StringIO()
    call_command("apply_retention", "--project", world.project.slug, "--batch", "1", stdout=out, stderr=StringIO())
    assert "traces=1" in out.getvalue() and "tracing_span=3" in out.getvalue()
    assert census(world.project, old.trace_id, old.pk) == GONE
    assert census(world.other_project, other.trace_id, other.pk) == FULL
    with pytest.raises(CommandError, match="no project with slug 'nope'"):
        call_command("apply_retention", "--project", "nope")
    with pytest.raises(CommandError, match="--batch"):
        call_command("apply_retention", "--batch", "0")
