from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from prompts.models import PromptVersion
from tests.prompts.conftest import add_version

URL = "/api/v1/prompts"


def test_create_then_fetch_round_trip(world, key_client):
    created = key_client.post(
        f"{URL}/support-answer/versions",
        {
            "template": [{"role": "system", "content": "You help {{company}}."}, {"role": "user", "content": "{{q}}"}],
            "config": {"model": "gpt-4o-mini", "temperature": 0.2},
            "commit_message": "first",
            "labels": ["production"],
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = key_client.get(f"{URL}/support-answer").json()
    assert body["type"] == "chat" and body["version"] == 1
    assert body["variables"] == ["company", "q"]
    assert body["labels"] == ["latest", "production"]
    assert body["config"] == {"model": "gpt-4o-mini", "temperature": 0.2}
    assert body["author"] == f"api-key:{world.key.public_key}"


def test_fetch_by_label_version_and_default(world, key_client):
    add_version(world.project, "p", "one")
    add_version(world.project, "p", "two", labels=["staging"])
    assert key_client.get(f"{URL}/p").json()["version"] == 2  # no production label yet: latest
    key_client.post(f"{URL}/p/labels", {"label": "production", "version": 1}, format="json")
    assert key_client.get(f"{URL}/p").json()["version"] == 1
    assert key_client.get(f"{URL}/p?label=staging").json()["template"] == "two"
    assert key_client.get(f"{URL}/p?label=latest").json()["version"] == 2
    assert key_client.get(f"{URL}/p?version=1").json()["labels"] == ["production"]


def test_fetch_errors_use_the_error_shape(world, key_client):
    add_version(world.project, "p", "one")
    missing_label = key_client.get(f"{URL}/p?label=canary")
    assert missing_label.status_code == 404
    assert missing_label.json()["error"]["code"] == "not_found"
    assert "no label 'canary'" in missing_label.json()["error"]["message"]
    assert key_client.get(f"{URL}/p?version=9").status_code == 404
    both = key_client.get(f"{URL}/p?version=1&label=production")
    assert both.status_code == 400 and "either label or version" in both.json()["error"]["message"]
    assert key_client.get(f"{URL}/p?lable=production").status_code == 400


def test_etag_gives_304_until_a_label_moves(world, key_client):
    add_version(world.project, "p", "one", labels=["production"])
    add_version(world.project, "p", "two")
    first = key_client.get(f"{URL}/p")
    etag = first["ETag"]
    assert etag and first["Cache-Control"] == "private, no-cache"
    again = key_client.get(f"{URL}/p", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b"" and again["ETag"] == etag
    assert key_client.get(f"{URL}/p", HTTP_IF_NONE_MATCH=f'W/{etag}, "other"').status_code == 304
    key_client.post(f"{URL}/p/labels", {"label": "production", "version": 2}, format="json")
    moved = key_client.get(f"{URL}/p", HTTP_IF_NONE_MATCH=etag)
    assert moved.status_code == 200 and moved.json()["version"] == 2 and moved["ETag"] != etag


def test_a_bad_template_is_a_400_naming_the_problem(world, key_client):
    response = key_client.post(f"{URL}/p/versions", {"template": "Hi {{name"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "bad_template",
        "message": "template: '{{' at line 1, column 4 is never closed with '}}'.",
        "detail": None,
    }
    assert not PromptVersion.objects.exists()


def test_stale_base_version_is_409(world, key_client):
    add_version(world.project, "p", "one")
    add_version(world.project, "p", "two")
    response = key_client.post(f"{URL}/p/versions", {"template": "mine", "base_version": 1}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "stale_version"
    assert response.json()["error"]["detail"] == {"base_version": 1, "latest_version": 2}
    ok = key_client.post(f"{URL}/p/versions", {"template": "mine", "base_version": 2}, format="json")
    assert ok.status_code == 201 and ok.json()["version"] == 3


def test_label_move_reports_previous_version(world, key_client):
    add_version(world.project, "p", "one", labels=["production"])
    add_version(world.project, "p", "two")
    moved = key_client.post(f"{URL}/p/labels", {"label": "production", "version": 2}, format="json").json()
    assert moved == {"label": "production", "version": 2, "previous_version": 1, "moved": True}
    again = key_client.post(f"{URL}/p/labels", {"label": "production", "version": 2}, format="json").json()
    assert again["moved"] is False
    latest = key_client.post(f"{URL}/p/labels", {"label": "latest", "version": 1}, format="json")
    assert latest.status_code == 400 and "cannot be moved" in latest.json()["error"]["message"]


def test_list_pages_by_name_with_labels(world, key_client, django_assert_max_num_queries):
    for name in ("c", "a", "b"):
        add_version(world.project, name, "x", labels=["production"])
    add_version(world.other_project, "secret", "theirs")
    with django_assert_max_num_queries(8):
        first = key_client.get(f"{URL}?limit=2").json()
    assert [r["name"] for r in first["results"]] == ["a", "b"]
    assert first["results"][0]["labels"] == {"production": 1}
    rest = key_client.get(f"{URL}?limit=2&cursor={first['next_cursor']}").json()
    assert [r["name"] for r in rest["results"]] == ["c"] and rest["next_cursor"] is None


def test_another_projects_key_cannot_see_the_prompt(world):
    add_version(world.project, "p", "ours")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.other_key.secret_key}")
    assert client.get(f"{URL}/p").status_code == 404


# ------------------------------------------------------------------ role matrix (session auth)

READ = [("get", f"{URL}", None), ("get", f"{URL}/p", None)]
WRITE = [
    ("post", f"{URL}/p/versions", {"template": "new"}),
    ("post", f"{URL}/p/labels", {"label": "staging", "version": 1}),
]
EXPECTED = {
    # role: (read status, write status)
    "owner": (200, None),  # writes succeed: 201 for versions, 200 for labels
    "member": (200, None),
    "reviewer": (200, 403),
    "viewer": (200, 403),
    "outsider": (404, 404),  # a project you are not in does not exist for you
}


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize(("method", "url", "data"), READ + WRITE)
def test_role_matrix(world, role, method, url, data):
    add_version(world.project, "p", "one")
    client = APIClient()
    client.force_login(getattr(world, role))
    response = getattr(client, method)(f"{url}?project={world.project.slug}", data, format="json")
    read_status, write_status = EXPECTED[role]
    if method == "get":
        assert response.status_code == read_status
    elif write_status is None:
        assert response.status_code in (200, 201), response.json()
    else:
        assert response.status_code == write_status
        assert "error" in response.json()


def test_unauthenticated_is_401(world):
    assert APIClient().get(f"{URL}/p").status_code in (401, 403)
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer sk-sg-nope")
    assert bad.get(f"{URL}/p").status_code == 401
