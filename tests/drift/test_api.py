"""GET /api/v1/drift and the /p/<slug>/drift/ page: shape, roles, bad input, OpenAPI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.test import Client
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from drift import selectors, windows
from tests.drift.conftest import BASELINE, CURRENT, PARAMS
from tests.helpers import session_client

URL = "/api/v1/drift"


def page_url(world) -> str:
    return f"/p/{world.project.slug}/drift/"


def assert_invalid(response, field: str, words: str) -> None:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["detail"], error
    assert words in " ".join(error["detail"][field]), error
    assert f"{field}: " in error["message"]


def test_report_has_windows_features_embedding_and_topics(planted, api):
    response = api.get(URL, PARAMS)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["baseline"] == {"from": BASELINE.start.isoformat(), "to": BASELINE.end.isoformat(),
                                "traces": 120, "sampled": 120}
    assert body["current"]["traces"] == 120
    found = {f["name"]: f for f in body["features"]}
    assert {"input_chars", "output_chars", "input_tokens", "output_tokens", "latency_ms", "cost_usd", "model",
            "prompt", "environment", "metadata.plan", "hallucination_rate", "toxicity_rate",
            "thumbs_up_rate"} <= set(found)
    assert found["model"]["status"] == "alert" and found["model"]["test"] == "chi2"
    assert found["latency_ms"]["status"] == "alert" and found["latency_ms"]["test"] == "ks"
    assert found["hallucination_rate"]["current"]["rate"] == pytest.approx(0.3)
    assert body["embedding"]["status"] == "drift" and body["embedding"]["threshold"] == 0.55
    assert body["embedding"]["auc"] > 0.55
    [topic] = body["topics"]
    assert "gpu" in topic["terms"] and topic["size"] == 40
    assert topic["examples"][0]["trace_id"] in {t.trace_id for t in planted.topic}


def test_defaults_are_the_last_7_days_against_the_28_before(world, api):
    now = datetime(2026, 1, 29, 12, 0, tzinfo=UTC)
    with mock.patch("drift.api.timezone.now", return_value=now):
        body = api.get(URL).json()
    assert body["current"]["from"] == (now - timedelta(days=7)).isoformat()
    assert body["current"]["to"] == now.isoformat()
    assert body["baseline"] == {"from": (now - timedelta(days=35)).isoformat(),
                                "to": (now - timedelta(days=7)).isoformat(), "traces": 0, "sampled": 0}
    assert body["embedding"]["status"] == "insufficient" and body["topics"] == []
    assert {f["status"] for f in body["features"]} == {"insufficient"}


def test_windows_default_from_the_parameters_given():
    now = datetime(2026, 1, 29, tzinfo=UTC)
    baseline, current = windows.parse_windows({"from": "2026-01-10"}, now=now)
    assert current == selectors.Window(datetime(2026, 1, 10, tzinfo=UTC), now)
    assert baseline == selectors.Window(datetime(2025, 12, 13, tzinfo=UTC), datetime(2026, 1, 10, tzinfo=UTC))


@pytest.mark.parametrize(("params", "field", "words"), [
    ({"from": "yesterday"}, "from", "ISO-8601"),
    ({"baseline_to": "2025-13-01"}, "baseline_to", "ISO-8601"),
    ({"from": "2025-03-02", "to": "2025-03-01"}, "from", "before to"),
    ({"from": "2025-03-01", "to": "2025-03-01"}, "from", "before to"),
    ({"baseline_from": "2025-03-01", "baseline_to": "2025-02-01", "from": "2025-03-05"}, "baseline_from",
     "before baseline_to"),
    ({"baseline_to": "2025-03-03", "from": "2025-03-02", "to": "2025-03-04"}, "baseline_to",
     "before the current window"),
    ({"from": "2020-01-01", "to": "2025-01-01"}, "from", "366 days"),
    ({"window": "7d"}, "window", "unknown query parameter"),
])
def test_bad_input_is_400_naming_the_parameter(api, params, field, words):
    assert_invalid(api.get(URL, params), field, words)


def test_parameter_given_twice_is_400(api):
    assert_invalid(api.get(URL + "?from=2025-03-01&from=2025-03-02"), "from", "once")


def test_roles_viewer_reads_outsider_and_anonymous_do_not(world):
    slug = {"project": world.project.slug}
    for user in (world.viewer, world.reviewer, world.member, world.owner):
        assert session_client(user).get(URL, slug).status_code == 200
    assert session_client(world.outsider).get(URL, slug).status_code == 404
    assert APIClient().get(URL, slug).status_code in (401, 403)


def test_a_key_reads_only_its_own_project(planted, world):
    from tests.helpers import key_client

    body = key_client(world.other_key.secret_key).get(URL, {**PARAMS, "project": world.project.slug}).json()
    assert body["current"]["traces"] == 0


def test_openapi_documents_the_endpoint(world):
    client = session_client(world.owner)
    response = client.get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    operation = schema["paths"]["/api/v1/drift"]["get"]
    assert operation["operationId"] == "drift_report"
    assert {p["name"] for p in operation["parameters"]} >= {"baseline_from", "baseline_to", "from", "to"}
    assert "400" in operation["responses"]


# --- the page -----------------------------------------------------------------------------------


def test_page_shows_flagged_features_embedding_and_the_new_topic(planted, world):
    client = Client()
    client.force_login(world.viewer)
    response = client.get(page_url(world), PARAMS)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-feature="model"' in html and "status-alert" in html
    assert "AUC" in html and "status-drift" in html
    assert "gpu" in html
    assert any(f"/p/{world.project.slug}/traces/{t.trace_id}/" in html for t in planted.topic)
    assert 'id="drift-figure"' in html and "drift/charts.js" in html
    assert "<script>" not in html  # CSP: no inline script (json_script is type=application/json)


def test_page_roles(world):
    for user, status in ((world.viewer, 200), (world.outsider, 404)):
        client = Client()
        client.force_login(user)
        assert client.get(page_url(world)).status_code == status
    assert Client().get(page_url(world)).status_code == 302  # to the login page


def test_page_bad_input_is_a_form_error_naming_the_field(world):
    client = Client()
    client.force_login(world.viewer)
    response = client.get(page_url(world), {"from": "2025-03-02T00:00", "to": "2025-03-01T00:00"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="e-from"' in html and "Current from: must be before to" in html
    assert 'aria-invalid="true"' in html


def test_page_uses_the_same_windows_as_the_api(unchanged, world):
    client = Client()
    client.force_login(world.viewer)
    html = client.get(page_url(world), PARAMS).content.decode()
    assert f'value="{CURRENT.start.strftime("%Y-%m-%dT%H:%M:%S")}"' in html
    assert "No new topic" in html
