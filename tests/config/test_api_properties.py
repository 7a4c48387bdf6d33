"""Property tests over the write and query APIs that take free-form input: feedback,
scores, prompts and metrics. For any request: never a 5xx, and every refusal is the
one error shape with a message saying what is wrong. Example counts are bounded (a
request each), so the file takes seconds, not minutes."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from tests.helpers import ingest_trace, key_client

pytestmark = pytest.mark.django_db

API = settings(max_examples=40, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Text with what databases and parsers trip on: NUL, lone surrogates are not sendable as
# JSON by the client, but control characters, long runs and non-BMP are.
texts = st.one_of(st.text(max_size=20), st.just("\x00"), st.just("a\x00b"), st.just("x" * 20_000),
                  st.just("🙂" * 10), st.just(""), st.just(" "))
numbers = st.one_of(st.integers(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False),
                    st.just(1e308), st.just(-0.0))
any_json = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, texts),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


def _maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(strategy, any_json)


def check(response, sent: object = None) -> None:
    assert response.status_code < 500, (response.status_code, sent, response.content[:500])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"].strip(), body


def post_json(client: APIClient, url: str, body: object):
    # Sent as text: the test client would refuse some values itself (e.g. dict keys that are not strings).
    return client.post(url, json.dumps(body), content_type="application/json")


@pytest.fixture
def trace_id(world) -> str:
    return ingest_trace(world.project).trace_id


@API
@given(body=st.fixed_dictionaries({}, optional={
    "trace_id": _maybe(st.sampled_from(["TRACE", "0" * 32, "zz", "ab" * 40])),
    "kind": _maybe(st.sampled_from(["feedback", "event"])),
    "name": _maybe(st.sampled_from(["thumbs", "stars", "copy", "a b", "x" * 101])),
    "value": any_json, "comment": any_json, "span_id": any_json, "tags": any_json, "text": any_json,
    "metadata": any_json, "id": _maybe(st.uuids().map(str)),
}))
def test_feedback_never_fails_with_a_server_error(world, settings, trace_id, body):
    settings.SPYGLASS_FEEDBACK_IP_PER_MINUTE = settings.SPYGLASS_FEEDBACK_KEY_PER_MINUTE = 100_000
    if body.get("trace_id") == "TRACE":
        body["trace_id"] = trace_id
    client = APIClient()
    client.credentials(HTTP_X_SPYGLASS_PUBLIC_KEY=world.key.public_key)
    check(post_json(client, "/api/v1/feedback", body), body)


@API
@given(body=st.fixed_dictionaries({}, optional={
    "trace_id": _maybe(st.sampled_from(["TRACE", "0" * 32, "nope"])),
    "name": _maybe(st.sampled_from(["helpfulness", "user_thumbs", "hallucination", "preferred", ""])),
    "value": any_json, "data_type": _maybe(st.sampled_from(["numeric", "categorical", "boolean", "text"])),
    "comment": any_json, "source": _maybe(st.sampled_from(["api", "evaluator", "end_user", "annotation"])),
    "metadata": any_json, "span_id": any_json, "id": _maybe(st.uuids().map(str)),
}))
def test_scores_never_fail_with_a_server_error(world, trace_id, body):
    if body.get("trace_id") == "TRACE":
        body["trace_id"] = trace_id
    check(post_json(key_client(world.key.secret_key), "/api/v1/scores", body), body)


@API
@given(params=st.dictionaries(st.sampled_from(["trace_id", "span_id", "name", "source", "author", "queue_id",
                                               "from", "to", "limit", "cursor", "junk"]), texts, max_size=4))
def test_score_queries_never_fail_with_a_server_error(world, params):
    check(key_client(world.key.secret_key).get("/api/v1/scores", params), params)


prompt_names = st.one_of(st.sampled_from(["greeting", "a/b", "x" * 300, "%00", " "]),
                         st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=20))


@API
@given(name=prompt_names, body=st.fixed_dictionaries({}, optional={
    "type": _maybe(st.sampled_from(["text", "chat"])),
    "template": _maybe(st.one_of(texts, st.just([{"role": "user", "content": "Hi {{name}}"}]))),
    "config": any_json, "commit_message": any_json, "labels": any_json, "base_version": any_json,
    "description": any_json, "tags": any_json,
}), label=st.fixed_dictionaries({}, optional={"label": any_json, "version": any_json}),
       fetch=st.dictionaries(st.sampled_from(["label", "version", "junk"]), texts, max_size=2))
def test_prompts_never_fail_with_a_server_error(world, name, body, label, fetch):
    from urllib.parse import quote

    api = key_client(world.key.secret_key)
    path = f"/api/v1/prompts/{quote(name, safe='')}"
    check(post_json(api, f"{path}/versions", body), body)
    check(post_json(api, f"{path}/labels", label), label)
    check(api.get(path, fetch), fetch)
    check(api.get("/api/v1/prompts", {"limit": fetch.get("version", "5")}))


@API
@given(params=st.dictionaries(
    st.sampled_from(["measure", "agg", "group_by", "top", "interval", "from", "to", "range", "score",
                     "metadata.plan", "tag", "q", "mode", "status", "junk"]),
    st.one_of(texts, st.sampled_from(["traces", "latency_ms", "score:helpfulness", "count", "p95", "rate", "day",
                                      "hour", "model", "tag", "metadata.plan", "7d", "all", "2026-01-01",
                                      "hallucination>0.5"])),
    max_size=6))
def test_metrics_queries_never_fail_with_a_server_error(world, params):
    api = key_client(world.key.secret_key)
    check(api.get("/api/v1/metrics", params), params)
    check(api.get("/api/v1/metrics/dimensions", {k: v for k, v in params.items() if k in ("from", "to", "range")}))


def test_a_uuid_already_used_by_another_projects_score_is_refused_not_a_500(world, trace_id):
    """Shape of a case worth keeping apart from the random ones: client ids are global."""
    other = ingest_trace(world.other_project).trace_id
    score_id = str(uuid.uuid4())
    first = post_json(key_client(world.other_key.secret_key), "/api/v1/scores",
                      {"id": score_id, "trace_id": other, "name": "helpfulness", "value": 1})
    assert first.status_code == 201
    second = post_json(key_client(world.key.secret_key), "/api/v1/scores",
                       {"id": score_id, "trace_id": trace_id, "name": "helpfulness", "value": 1})
    check(second)
    assert second.status_code == 409


@pytest.mark.parametrize("path", ["/api/v1/prompts/a%2Fb/versions", "/api/v1/nothing-here", "/api/v2/traces"])
def test_an_api_url_that_matches_no_route_is_a_json_404(world, path):
    """Found by the prompts property: a name with '/' (which names cannot have) reached
    no route and got Django's HTML page, which an API client cannot parse."""
    response = key_client(world.key.secret_key).get(path)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"
    page = APIClient().get("/p/nope/traces/")  # pages keep the HTML page
    assert page.status_code in (302, 404) and not page["Content-Type"].startswith("application/json")
