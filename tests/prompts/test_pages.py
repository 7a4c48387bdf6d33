from __future__ import annotations

import pytest
from django.test import Client

from prompts.models import PromptVersion
from tests.prompts.conftest import add_version, ingest_trace


def _client(world, role: str) -> Client:
    client = Client()
    client.force_login(getattr(world, role))
    return client


def _base(world) -> str:
    return f"/p/{world.project.slug}/prompts/"


READ_PAGES = ["", "p/", "p/versions/1/", "p/diff/?a=1&b=2", "p/compare/?a=1&b=2"]
WRITE_PAGES = ["new/", "p/versions/new/"]
CAN_READ = {"owner": 200, "member": 200, "reviewer": 200, "viewer": 200, "outsider": 404}
CAN_WRITE = {"owner": 200, "member": 200, "reviewer": 403, "viewer": 403, "outsider": 404}


@pytest.mark.parametrize("role", list(CAN_READ))
@pytest.mark.parametrize("page", READ_PAGES + WRITE_PAGES)
def test_page_role_matrix(world, role, page):
    add_version(world.project, "p", "one {{x}}")
    add_version(world.project, "p", "two {{x}}")
    expected = (CAN_WRITE if page in WRITE_PAGES else CAN_READ)[role]
    assert _client(world, role).get(_base(world) + page).status_code == expected


@pytest.mark.parametrize("role", list(CAN_WRITE))
def test_label_move_post_role_matrix(world, role):
    add_version(world.project, "p", "one")
    response = _client(world, role).post(_base(world) + "p/labels", {"label": "production", "version": 1})
    assert response.status_code == {"owner": 302, "member": 302}.get(role, CAN_WRITE[role])


@pytest.mark.parametrize("role", list(CAN_READ))
def test_preview_is_a_read(world, role):
    add_version(world.project, "p", "Hello {{name}}")
    response = _client(world, role).post(_base(world) + "p/versions/1/preview", {"var:name": "Ada"})
    assert response.status_code == CAN_READ[role]
    if response.status_code == 200:
        assert "Hello Ada" in response.content.decode()


def test_anonymous_is_sent_to_login(world):
    response = Client().get(_base(world))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_list_shows_labels_and_traffic(world, django_assert_max_num_queries):
    add_version(world.project, "support-answer", "x", labels=["production"])
    ingest_trace(world.project, prompt=("support-answer", 1))
    client = _client(world, "viewer")
    with django_assert_max_num_queries(10):
        html = client.get(_base(world)).content.decode()
    assert "support-answer" in html and "production → v1" in html
    assert "New prompt" not in html  # viewers read only


def test_new_version_form_refuses_a_stale_base_with_a_message(world):
    add_version(world.project, "p", "one")
    add_version(world.project, "p", "two")
    response = _client(world, "member").post(
        _base(world) + "p/versions/new/", {"template": "mine", "base_version": 1, "config": ""}
    )
    assert response.status_code == 409
    assert "based on v1, but &#x27;p&#x27; is now at v2" in response.content.decode()
    assert PromptVersion.objects.filter(prompt__name="p").count() == 2


def test_new_version_form_saves_and_moves_labels(world):
    add_version(world.project, "p", "one")
    response = _client(world, "member").post(
        _base(world) + "p/versions/new/",
        {"template": "two {{y}}", "base_version": 1, "config": '{"model": "gpt-4o"}', "labels": "staging"},
    )
    assert response.status_code == 302
    v2 = PromptVersion.objects.get(prompt__name="p", version=2)
    assert (v2.config, v2.variables, v2.author_name) == ({"model": "gpt-4o"}, ["y"], "member")


def test_new_prompt_form_shows_template_errors(world):
    response = _client(world, "member").post(
        _base(world) + "new/",
        {"name": "chatty", "type": "chat", "template": "[not json", "base_version": 0},
    )
    assert response.status_code == 400
    assert "The chat template is not valid JSON" in response.content.decode()


def test_diff_shows_changed_lines_side_by_side(world):
    add_version(world.project, "p", "line one\nline two", config={"temperature": 0.2})
    add_version(world.project, "p", "line one\nline 2\nline three", config={"temperature": 0.7})
    html = _client(world, "viewer").get(_base(world) + "p/diff/?a=1&b=2").content.decode()
    assert 'class="d-replace"' in html and 'class="d-insert"' in html
    assert "&quot;temperature&quot;: 0.7" in html or '"temperature": 0.7' in html


def test_prompt_and_compare_pages_embed_local_plotly(world):
    add_version(world.project, "p", "one")
    add_version(world.project, "p", "two")
    ingest_trace(world.project, prompt=("p", 1))
    ingest_trace(world.project, prompt=("p", 2))
    client = _client(world, "viewer")
    for page in ("p/", "p/compare/?a=1&b=2&range=7d"):
        html = client.get(_base(world) + page).content.decode()
        assert "/static/vendor/plotly/plotly.min.js" in html and 'id="metrics-figure"' in html
        assert "cdn" not in html.lower()


def test_unknown_version_pages_are_404(world):
    add_version(world.project, "p", "one")
    client = _client(world, "viewer")
    assert client.get(_base(world) + "p/versions/9/").status_code == 404
    assert client.get(_base(world) + "p/diff/?a=1&b=9").status_code == 404
    assert client.get(_base(world) + "nope/").status_code == 404
