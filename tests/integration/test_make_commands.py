"""The management commands that `make run` and the README rely on, run as real processes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from projects.models import ApiKey, Project
from tests.integration.payloads import llm_span_request, new_trace_id
from tests.integration.support import manage, post_otlp
from tracing.models import Span

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]



def test_create_project_json_prints_a_working_key(integration_env, live_server_url):
    get_user_model().objects.create_user(username="cli-owner", password="pw")
    result = manage("create_project", "CLI Project", "--owner", "cli-owner", "--json", env=integration_env)
    payload = json.loads(result.stdout)  # the whole stdout is one JSON document
    assert set(payload) == {"project", "public_key", "secret_key"}
    project = Project.objects.get(slug=payload["project"])
    assert project.name == "CLI Project"
    assert ApiKey.objects.filter(project=project, public_key=payload["public_key"], revoked_at=None).exists()

    trace_id = new_trace_id()
    response = post_otlp(live_server_url, llm_span_request(trace_id=trace_id), key=payload["secret_key"])
    assert response.status == 200, response.body
    assert Span.objects.filter(project=project, trace_id=trace_id).count() == 1


def test_create_project_for_unknown_owner_fails_clearly(integration_env):
    with pytest.raises(RuntimeError, match="No user named 'nobody'"):
        manage("create_project", "X", "--owner", "nobody", "--json", env=integration_env)


@pytest.fixture
def demo_data_dir(integration_env, tmp_path) -> Iterator[tuple[dict[str, str], Path]]:
    """bootstrap_demo keeps the demo key pair in SPYGLASS_DATA_DIR; use a private one so
    the developer's own .data/demo-keys.json is never touched. The database and broker
    come from DATABASE_URL / REDIS_URL, so the data dir holds nothing else here."""
    yield {**integration_env, "SPYGLASS_DATA_DIR": str(tmp_path)}, tmp_path / "demo-keys.json"


def _printed_keys(stdout: str) -> tuple[str, str]:
    public = re.search(r"public key\s+(\S+)", stdout)
    secret = re.search(r"secret key\s+(\S+)", stdout)
    assert public and secret, stdout
    return public.group(1), secret.group(1)


def test_bootstrap_demo_is_idempotent(live_server_url, demo_data_dir):
    env, keys_file = demo_data_dir
    first = manage("bootstrap_demo", env=env).stdout
    second = manage("bootstrap_demo", env=env).stdout
    assert _printed_keys(first) == _printed_keys(second)
    assert Project.objects.filter(slug="demo").count() == 1
    assert get_user_model().objects.filter(username="admin", is_superuser=True).count() == 1
    demo = Project.objects.get(slug="demo")
    assert ApiKey.objects.filter(project=demo).count() == 1
    public_key, secret_key = _printed_keys(second)
    assert json.loads(keys_file.read_text()) == {"public_key": public_key, "secret_key": secret_key}
    assert keys_file.stat().st_mode & 0o777 == 0o600

    trace_id = new_trace_id()
    response = post_otlp(live_server_url, llm_span_request(trace_id=trace_id), key=secret_key)
    assert response.status == 200, response.body
    assert Span.objects.filter(project=demo, trace_id=trace_id).count() == 1
