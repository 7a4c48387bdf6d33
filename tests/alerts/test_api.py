"""GET /api/v1/alerts/rules and /api/v1/alerts/events (alerts/api.py): shapes, roles,
bad parameters as 400s naming them, no secrets, the OpenAPI schema."""

from __future__ import annotations

import json

import pytest
from drf_spectacular.validation import validate_schema

from alerts.evaluation import rule_evaluate
from alerts.services import channel_add
from tests.alerts.conftest import NOW, at, rule, trace
from tests.helpers import key_client, session_client

RULES = "/api/v1/alerts/rules"
EVENTS = "/api/v1/alerts/events"


@pytest.fixture
def fired(world):
    p = world.project
    for m in (-1, -2, -3):
        trace(p, m, user="u1")
    r = rule(p, name="busy", group_by="user_id", min_observations=1, cooldown_seconds=0)
    channel_add(rule=r, kind="slack", target="https://hooks.slack.com/services/T1/B2/secret-token")
    rule_evaluate(r, now=NOW)
    rule_evaluate(r, now=at(10))  # the traces left the window: no data
    return r


def test_rules_with_states_and_hinted_secrets(world, api, fired):
    response = api.get(RULES)

    assert response.status_code == 200, response.content
    [body] = response.json()["rules"]
    assert (body["name"], body["measure"], body["agg"], body["group_by"], body["window_seconds"]) == (
        "busy", "traces", "count", "user_id", 300)
    assert body["state"] == "no_data"
    assert body["states"] == [{"group": {"user_id": "u1"}, "state": "no_data", "value": 0.0, "n": 0,
                               "since": at(10).isoformat(), "evaluated_at": at(10).isoformat()}]
    assert body["channels"] == [{"kind": "slack", "target_hint": "https://hooks.slack.com/service…"}]
    raw = response.content.decode()
    assert fired.secret not in raw and "secret-token" not in raw and body["secret_hint"] == fired.secret_hint


def test_events_newest_first_with_a_keyset(world, api, fired):
    body = api.get(EVENTS).json()
    assert [(e["previous_state"], e["state"], e["group"]) for e in body["events"]] == [
        ("alert", "no_data", {"user_id": "u1"}), ("ok", "alert", {"user_id": "u1"})]
    assert body["events"][1]["value"] == 3.0 and body["events"][1]["notified_at"] == NOW.isoformat()
    assert body["next_before"] is None

    first = api.get(EVENTS, {"limit": 1}).json()
    assert len(first["events"]) == 1 and first["next_before"] == first["events"][0]["id"]
    rest = api.get(EVENTS, {"limit": 1, "before": first["next_before"]}).json()
    assert rest["events"][0]["state"] == "alert"
    assert api.get(EVENTS, {"rule": fired.pk + 1000}).json()["events"] == []


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"limit": "x"}, "limit"),
    ({"before": "-1"}, "before"), ({"rule": "abc"}, "rule"), ({"state": "alert"}, "state"),
])
def test_bad_parameters_are_400_naming_them(world, api, params, field):
    response = api.get(EVENTS, params)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["detail"]


def test_roles_viewer_reads_outsider_sees_nothing(world, fired):
    viewer = session_client(world.viewer)
    assert viewer.get(RULES, {"project": world.project.slug}).status_code == 200
    assert viewer.get(EVENTS, {"project": world.project.slug}).status_code == 200
    outsider = session_client(world.outsider)
    assert outsider.get(RULES, {"project": world.project.slug}).status_code == 404
    assert outsider.get(EVENTS, {"project": world.project.slug}).status_code == 404
    # Another project's key sees its own (empty) alerts, never ours.
    other = key_client(world.other_key.secret_key)
    assert other.get(RULES).json() == {"rules": []}
    assert other.get(EVENTS).json() == {"events": [], "next_before": None}
    assert key_client("sk-sg-nope").get(RULES).status_code == 401


def test_query_count_does_not_grow_with_rules(world, api, django_assert_max_num_queries):
    for i in range(10):
        r = rule(world.project, name=f"r{i}")
        channel_add(rule=r, kind="email", target=f"r{i}@example.com")
    with django_assert_max_num_queries(10):
        assert len(api.get(RULES).json()["rules"]) == 10


def test_openapi_documents_both_endpoints(world, api):
    schema = json.loads(api.get("/api/v1/schema/", {"format": "json"}).content)
    validate_schema(schema)
    assert schema["paths"]["/api/v1/alerts/rules"]["get"]["operationId"] == "alert_rules_list"
    params = {p["name"] for p in schema["paths"]["/api/v1/alerts/events"]["get"]["parameters"]}
    assert {"rule", "before", "limit"} <= params
