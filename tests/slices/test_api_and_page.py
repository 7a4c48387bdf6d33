"""GET /api/v1/slices and the /p/<slug>/slices/ page: shape, roles, 400s naming the
parameter, CSV export, the OpenAPI schema."""

from __future__ import annotations

import csv
import io
import json

import pytest
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from tests.helpers import session_client
from tests.slices.conftest import WINDOW

URL = "/api/v1/slices"


def test_api_answers_the_issue_shape(world, api, planted):
    response = api.get(URL, {"dimension": "metadata.locale", **WINDOW})

    assert response.status_code == 200, response.content
    body = response.json()
    ja = next(s for s in body["slices"] if s["slice"] == {"metadata.locale": "ja-JP"})
    assert ja["n"] == 200 and ja["share"] == pytest.approx(200 / 812)
    cell = ja["metrics"]["hallucination_rate"]
    assert set(cell) == {"value", "ci", "n", "rest", "p_value", "test", "p_adjusted", "ratio_to_best", "flagged"}
    assert cell["value"] == pytest.approx(0.3) and cell["flagged"] is True and cell["n"] == 200
    assert ja["explorer"].startswith(f"/p/{world.project.slug}/traces/?from=")
    assert "metadata.locale=ja-JP" in ja["explorer"]
    assert any(f.startswith("locale ja-JP: hallucination rate 30.0%") for f in body["findings"])
    assert body["satisfaction"]["raw"]["n"] == 203
    assert body["query"]["dimensions"] == ["metadata.locale"]
    # Prompt versions over time: answer@1 is the even i, answer@2 the odd ones, and only
    # even i ever vote (i % 4 == 0), so only answer@1 has praised answers to judge.
    by_prompt = body["trends"]["praised_unsupported_by_prompt"]
    assert {p["prompt"] for p in by_prompt} == {"answer@1"}
    ja_ups = [i for i in range(200) if i % 4 == 0 and i % 16 != 0]
    en_ups = [i for i in range(400) if i % 4 == 0 and i % 16 != 0]
    assert sum(p["n"] for p in by_prompt) == 2 * len(ja_ups) + len(en_ups) + 2  # + it-IT's 2
    assert body["trends"]["interval"] == "day"
    assert sum(p["n"] for p in body["trends"]["slices"] if p["slice"] == "locale ja-JP"
               and p["metric"] == "hallucination_rate") == 200


@pytest.mark.parametrize(("params", "field"), [
    ({}, "dimension"),
    ({"dimension": "country"}, "dimension"),
    ({"dimension": "model", "dimension2": "nope"}, "dimension2"),
    ({"dimension": "model", "top": "500"}, "top"),
    ({"dimension": "model", "score": "hallucination>>1"}, "score"),
    ({"dimension": "model", "to": "2025-13-45"}, "to"),
])
def test_api_bad_input_is_a_400_naming_the_parameter(world, api, params, field):
    response = api.get(URL, params)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in error["detail"] and field in error["message"]


@pytest.mark.parametrize(("who", "status"), [("viewer", 200), ("reviewer", 200), ("owner", 200), ("outsider", 404)])
def test_api_roles(world, planted, who, status):
    client = session_client(getattr(world, who))
    response = client.get(URL, {"dimension": "metadata.locale", "project": world.project.slug, **WINDOW})
    assert response.status_code == status, response.content


def test_api_needs_a_login(world):
    assert APIClient().get(URL, {"dimension": "model"}).status_code in (401, 403)


def test_schema_documents_the_slices_endpoint(db):
    schema = json.loads(APIClient().get("/api/v1/schema/", {"format": "json"}).content)
    validate_schema(schema)
    op = schema["paths"]["/api/v1/slices"]["get"]
    params = {p["name"] for p in op["parameters"]}
    assert {"dimension", "dimension2", "from", "to", "top", "min_n", "model"} <= params
    assert "four-fifths" in op["description"]


def page_url(world):
    return f"/p/{world.project.slug}/slices/"


def test_page_highlights_the_planted_cell_and_explains_it(world, planted, client):
    client.force_login(world.viewer)
    response = client.get(page_url(world), {"dimension": "metadata.locale", **WINDOW})

    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="num cell flagged" data-metric="hallucination_rate"' in html
    assert "locale ja-JP: hallucination rate 30.0%" in html
    assert 'id="slices-figure"' in html and "slices/slices.js" in html
    assert "<script>" not in html  # CSP: no inline script
    assert f'href="/p/{world.project.slug}/traces/?from=' in html


def test_page_bad_input_is_a_form_error_naming_the_field(world, client):
    client.force_login(world.viewer)
    response = client.get(page_url(world), {"dimension": "colour"})
    assert response.status_code == 400
    assert "<strong>dimension</strong>" in response.content.decode()


@pytest.mark.parametrize(("who", "status"), [("viewer", 200), ("member", 200), ("outsider", 404)])
def test_page_roles(world, client, who, status):
    client.force_login(getattr(world, who))
    assert client.get(page_url(world)).status_code == status


def test_page_needs_a_login(world, client):
    response = client.get(page_url(world))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_csv_export_has_one_line_per_slice_and_metric(world, planted, client):
    client.force_login(world.viewer)
    response = client.get(page_url(world), {"dimension": "metadata.locale", "format": "csv", **WINDOW})

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 4 * 14
    ja = next(r for r in rows if r["metadata.locale"] == "ja-JP" and r["metric"] == "hallucination_rate")
    assert ja["value"] == "0.3" and ja["flagged"] == "yes" and ja["n"] == "200"
