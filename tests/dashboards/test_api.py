"""GET /api/v1/metrics and GET /api/v1/metrics/dimensions (dashboards/api.py): shapes,
every bad input as a 400 naming its parameter, roles, the timeout, the OpenAPI schema."""

from __future__ import annotations

import json

import pytest
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from tests.dashboards.conftest import END, T0
from tests.helpers import key_client, session_client

METRICS = "/api/v1/metrics"
DIMENSIONS = "/api/v1/metrics/dimensions"
WINDOW = {"from": T0.isoformat(), "to": END.isoformat()}


def assert_invalid(response, field: str) -> dict:
    """A 400 in the project's error shape whose message and detail name `field`."""
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["detail"], error
    assert error["message"].startswith(f"{field}: ") or f"; {field}: " in error["message"]
    return error


def test_metrics_answer_has_points_unit_source_and_the_normalised_query(world, api, sample):
    response = api.get(METRICS, {"measure": "latency_ms", "agg": "p95", "group_by": "model", "top": "1", **WINDOW})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["unit"] == "ms" and body["source"] == "raw" and body["approximate"] is False
    assert body["data"] == [
        {"time": None, "group": {"model": "gpt-4o"}, "value": pytest.approx(920.0), "n": 3},
        {"time": None, "group": {"model": "other"}, "value": pytest.approx(580.0), "n": 3},
    ]
    assert body["query"] == {"measure": "latency_ms", "agg": "p95", "from": T0.isoformat(), "to": END.isoformat(),
                             "group_by": ["model"], "top": 1, "interval": None, "filter": {}}


def test_bucket_times_are_iso_utc_and_missing_values_are_null(world, api, sample):
    body = api.get(METRICS, {"measure": "cost_usd", "agg": "avg", "interval": "hour", "group_by": "prompt",
                             **WINDOW}).json()
    assert body["data"][0]["time"] == "2025-03-03T00:00:00+00:00"
    assert {"time": "2025-03-03T02:00:00+00:00", "group": {"prompt": None}, "value": None, "n": 0} in body["data"]


def test_filters_combine_with_group_and_interval(world, api, sample):
    body = api.get(METRICS, {"measure": "traces", "group_by": "metadata.locale", "tag": "a", "interval": "day",
                             **WINDOW}).json()
    assert [(p["group"]["metadata.locale"], p["n"]) for p in body["data"]] == [("de-DE", 3)]
    assert body["query"]["filter"] == {"tag": ["a"]}


def test_dimensions_lists_fixed_and_metadata_keys(world, api, sample):
    response = api.get(DIMENSIONS, WINDOW)

    assert response.status_code == 200, response.content
    dims = {d["name"]: d["distinct"] for d in response.json()["dimensions"]}
    assert dims["metadata.locale"] == 3 and dims["metadata.tier"] == 2 and dims["model"] == 3


def test_dimensions_default_to_the_last_7_days(world, api, sample):
    # The sample is in 2025; nothing is in the last 7 days.
    dims = {d["name"]: d["distinct"] for d in api.get(DIMENSIONS).json()["dimensions"]}
    assert dims["model"] == 0 and not any(name.startswith("metadata.") for name in dims)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "field", "words"), [
    ({}, "measure", "required"),
    ({"measure": "latency"}, "measure", "not a measure"),
    ({"measure": "score:"}, "measure", "score name"),
    ({"measure": "score:" + "x" * 101}, "measure", "at most 100"),
    ({"measure": "traces", "agg": "median"}, "agg", "not one of"),
    ({"measure": "traces", "agg": "p95"}, "agg", "does not fit traces"),
    ({"measure": "latency_ms", "agg": "rate"}, "agg", "does not fit latency_ms"),
    ({"measure": "users", "agg": "avg"}, "agg", "does not fit users"),
    ({"measure": "score:user_rating", "agg": "rate"}, "agg", "does not fit"),
    ({"measure": "score:preferred", "agg": "avg"}, "agg", "categorical"),
    ({"measure": "score:user_thumbs", "agg": "p95"}, "agg", "boolean"),
    ({"measure": "traces", "group_by": "model,environment,tag"}, "group_by", "at most 2"),
    ({"measure": "traces", "group_by": "country"}, "group_by", "not a dimension"),
    ({"measure": "traces", "group_by": "metadata."}, "group_by", "needs a key"),
    ({"measure": "traces", "group_by": "model,model"}, "group_by", "twice"),
    ({"measure": "traces", "group_by": "user_id", "top": "all"}, "group_by", "give top"),
    ({"measure": "traces", "top": "0"}, "top", "from 1 to 100"),
    ({"measure": "traces", "top": "101"}, "top", "from 1 to 100"),
    ({"measure": "traces", "top": "ten"}, "top", "from 1 to 100"),
    ({"measure": "traces", "interval": "minute"}, "interval", "not one of"),
    ({"measure": "traces", "interval": "hour", "range": "30d"}, "interval", "at most 14 days"),
    ({"measure": "traces", "interval": "hour", "from": "2025-01-01", "to": "2025-01-16"}, "interval", "14 days"),
    ({"measure": "traces", "from": "2025-03-02", "to": "2025-03-01"}, "from", "after"),
    ({"measure": "traces", "from": "2025-03-01", "to": "2025-03-01"}, "from", "before"),
    ({"measure": "traces", "from": "yesterday"}, "from", "ISO-8601"),
    ({"measure": "traces", "range": "all"}, "range", "bounded"),
    ({"measure": "traces", "range": "2d"}, "range", "not one of"),
    ({"measure": "traces", "mode": "semantic", "q": "refund"}, "mode", "semantic"),
    ({"measure": "traces", "status": "broken"}, "status", "not one of"),
    ({"measure": "traces", "score": "hallucination>>1"}, "score", "needs a number"),
    ({"measure": "traces", "colour": "red"}, "colour", "unknown query parameter"),
    ({"measure": "traces", "user_id": ""}, "user_id", "must not be empty"),
    ({"measure": ""}, "measure", "must not be empty"),
    ({"measure": "traces", "group_by": "model,tag", "top": "100", "interval": "hour", "range": "7d"}, "top",
     "points"),
])
def test_bad_input_is_400_naming_the_parameter(api, params, field, words):
    error = assert_invalid(api.get(METRICS, params), field)
    assert words in " ".join(error["detail"][field]), error


def test_single_value_parameter_given_twice_is_400(api):
    assert_invalid(api.get(METRICS + "?measure=traces&measure=users"), "measure")
    assert_invalid(api.get(METRICS + "?measure=traces&interval=day&interval=hour"), "interval")


def test_every_bad_parameter_is_reported_at_once(api):
    error = assert_invalid(api.get(METRICS, {"measure": "nope", "top": "0", "interval": "minute", "colour": "x"}),
                           "measure")
    assert set(error["detail"]) == {"measure", "top", "interval", "colour"}


def test_hourly_limit_is_a_setting(api, settings):
    settings.SPYGLASS_METRICS_MAX_HOURLY_DAYS = 40
    assert api.get(METRICS, {"measure": "traces", "interval": "hour", "range": "30d"}).status_code == 200


def test_dimensions_reject_filters_and_bad_windows(api):
    assert_invalid(api.get(DIMENSIONS, {"model": "gpt-4o"}), "model")
    assert_invalid(api.get(DIMENSIONS, {"from": "2025-03-02", "to": "2025-03-01"}), "from")
    assert_invalid(api.get(DIMENSIONS, {"range": "all"}), "range")


def test_a_query_past_the_statement_timeout_is_a_503(world, api, sample, settings, monkeypatch):
    settings.SPYGLASS_METRICS_STATEMENT_TIMEOUT_MS = 50
    monkeypatch.setattr("dashboards.metrics._raw_sql",
                        lambda **kw: ("SELECT NULL::timestamptz, pg_sleep(2)::text, 0", []))

    response = api.get(METRICS, {"measure": "traces", **WINDOW})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "query_timeout"
    assert "limit" in response.json()["error"]["message"]


# --- roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "member", "reviewer", "viewer"])
def test_every_member_role_reads_metrics(world, sample, role):
    client = session_client(getattr(world, role))
    for path, params in ((METRICS, {"measure": "traces", **WINDOW}), (DIMENSIONS, WINDOW)):
        response = client.get(path, {**params, "project": world.project.slug})
        assert response.status_code == 200, (role, path, response.content)
    body = client.get(METRICS, {"measure": "traces", "project": world.project.slug, **WINDOW}).json()
    assert body["data"][0]["n"] == 6


@pytest.mark.parametrize("path", [METRICS, DIMENSIONS])
def test_outsider_gets_404_for_another_project(world, sample, path):
    response = session_client(world.outsider).get(path, {"measure": "traces", "project": world.project.slug})
    assert response.status_code == 404


def test_a_key_reads_only_its_own_project(world, sample):
    body = key_client(world.other_key.secret_key).get(METRICS, {"measure": "latency_ms", "agg": "max",
                                                                **WINDOW}).json()
    assert body["data"] == [{"time": None, "group": {}, "value": 7000.0, "n": 1}]


@pytest.mark.parametrize("path", [METRICS, DIMENSIONS])
def test_request_without_credentials_is_401(world, path):
    assert APIClient().get(path, {"measure": "traces"}).status_code == 401


# --- OpenAPI ---------------------------------------------------------------------------------


def test_schema_documents_the_metrics_endpoints(db):
    response = APIClient().get("/api/v1/schema/", {"format": "json"})
    schema = json.loads(response.content)
    validate_schema(schema)
    op = schema["paths"]["/api/v1/metrics"]["get"]
    names = {p["name"] for p in op["parameters"]}
    assert {"measure", "agg", "group_by", "top", "interval", "from", "to", "range", "model", "tag", "score",
            "project"} <= names
    assert not {"limit", "cursor"} & names
    assert {"200", "400", "401", "404", "503"} <= set(op["responses"])
    dims = schema["paths"]["/api/v1/metrics/dimensions"]["get"]
    assert {"from", "to", "range"} <= {p["name"] for p in dims["parameters"]}

