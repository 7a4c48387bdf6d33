"""GET /api/v1/traces and GET /api/v1/traces/<trace_id> (tracing/api.py, selectors, serializers)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from explorer.selectors import TraceCursor
from projects.models import Role
from projects.services import api_key_revoke, membership_set
from tests.factories import SpanFactory, TraceFactory
from tracing.models import Trace

LIST = "/api/v1/traces"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def detail_url(trace_id: str) -> str:
    return f"{LIST}/{trace_id}"


def key_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def session_client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def api(world) -> APIClient:
    """Authenticated with the project's own secret key."""
    return key_client(world.key.secret_key)


def listed_ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["trace_id"] for item in response.json()["data"]]


def assert_invalid(response, field: str) -> dict:
    """A 400 in the project's error shape whose message and detail name `field`."""
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "invalid"
    assert body["error"]["message"].startswith(f"{field}: ") or f"; {field}: " in body["error"]["message"]
    assert field in body["error"]["detail"]
    return body["error"]


# --- listing ----------------------------------------------------------------------------


def test_list_returns_only_own_project_traces_newest_first(world, api):
    old = TraceFactory(project=world.project, start_time=T0)
    new = TraceFactory(project=world.project, start_time=T0 + timedelta(minutes=5))
    TraceFactory(project=world.other_project, start_time=T0 + timedelta(minutes=1))

    response = api.get(LIST)

    assert listed_ids(response) == [new.trace_id, old.trace_id]
    assert response.json()["next_cursor"] is None


def test_empty_project_lists_no_traces(api):
    assert api.get(LIST).json() == {"data": [], "next_cursor": None}


def test_list_item_has_trace_fields_and_no_spans(world, api):
    TraceFactory(
        project=world.project,
        start_time=T0,
        session_id="s-1",
        user_id="u-1",
        environment="production",
        release="1.4.2",
        service_name="support-bot",
        tags=["beta", "eu"],
        metadata={"tier": "gold"},
        unpriced_spans=1,
        prompt_name="answer",
        prompt_version="7",
        spans=3,
    )

    item = api.get(LIST).json()["data"][0]

    expected = {
        "trace_id", "name", "session_id", "user_id", "environment", "release", "service_name",
        "tags", "metadata", "start_time", "end_time", "latency_ms", "status", "span_count",
        "error_count", "input", "output", "input_tokens", "output_tokens", "total_tokens",
        "cost_usd", "unpriced_spans", "model", "prompt", "input_truncated", "output_truncated",
    }  # fmt: skip
    assert set(item) == expected
    assert item["session_id"] == "s-1"
    assert item["tags"] == ["beta", "eu"]
    assert item["metadata"] == {"tier": "gold"}
    assert item["start_time"] == "2025-03-01T12:00:00Z"
    assert item["span_count"] == 3
    assert item["unpriced_spans"] == 1
    assert item["prompt"] == {"name": "answer", "version": "7"}


def test_list_cuts_input_and_output_to_a_500_character_preview(world, api):
    TraceFactory(project=world.project, input="é" * 2000, output="short")

    item = api.get(LIST).json()["data"][0]

    assert item["input"] == "é" * 500
    assert item["input_truncated"] is True
    assert item["output"] == "short"
    assert item["output_truncated"] is False


def test_preview_of_exactly_500_characters_is_not_marked_truncated(world, api):
    TraceFactory(project=world.project, input="x" * 500, output=None)

    item = api.get(LIST).json()["data"][0]

    assert item["input"] == "x" * 500
    assert item["input_truncated"] is False
    assert item["output"] is None
    assert item["output_truncated"] is False


def test_cost_is_a_json_number_or_null(world, api):
    priced = TraceFactory(project=world.project, start_time=T0, cost_usd=Decimal("0.0123456789"))
    unpriced = TraceFactory(project=world.project, start_time=T0 - timedelta(seconds=1), cost_usd=None)

    data = {item["trace_id"]: item for item in api.get(LIST).json()["data"]}

    assert isinstance(data[priced.trace_id]["cost_usd"], float)
    assert data[priced.trace_id]["cost_usd"] == pytest.approx(0.0123456789)
    assert data[unpriced.trace_id]["cost_usd"] is None


def test_prompt_is_null_without_a_linked_prompt(world, api):
    TraceFactory(project=world.project, prompt_name=None)

    assert api.get(LIST).json()["data"][0]["prompt"] is None


# --- filters ----------------------------------------------------------------------------

EXACT_FILTERS = [
    ("session_id", "sess-42", "sess-43"),
    ("user_id", "user-7", "user-8"),
    ("model", "gpt-4o", "claude-sonnet-4"),
    ("environment", "production", "staging"),
    ("name", "checkout-assistant", "chat"),
    ("status", "error", "ok"),
]


@pytest.mark.parametrize(("param", "wanted", "other"), EXACT_FILTERS)
def test_exact_filter_returns_only_matching_traces(world, api, param, wanted, other):
    match = TraceFactory(project=world.project, **{param: wanted})
    TraceFactory(project=world.project, **{param: other})
    TraceFactory(project=world.other_project, **{param: wanted})

    assert listed_ids(api.get(LIST, {param: wanted})) == [match.trace_id]


@pytest.mark.parametrize(("param", "wanted", "other"), EXACT_FILTERS)
def test_exact_filter_with_no_match_returns_nothing(world, api, param, wanted, other):
    TraceFactory(project=world.project, **{param: other})

    assert listed_ids(api.get(LIST, {param: wanted})) == []


def test_exact_filter_is_case_sensitive(world, api):
    TraceFactory(project=world.project, user_id="Alice")

    assert listed_ids(api.get(LIST, {"user_id": "alice"})) == []


def test_status_unset_is_a_valid_filter(world, api):
    unset = TraceFactory(project=world.project, status="unset")
    TraceFactory(project=world.project, status="ok")

    assert listed_ids(api.get(LIST, {"status": "unset"})) == [unset.trace_id]


def test_from_is_inclusive_and_to_is_exclusive(world, api):
    before = TraceFactory(project=world.project, start_time=T0 - timedelta(microseconds=1))
    at_from = TraceFactory(project=world.project, start_time=T0)
    inside = TraceFactory(project=world.project, start_time=T0 + timedelta(minutes=30))
    at_to = TraceFactory(project=world.project, start_time=T0 + timedelta(hours=1))

    ids = listed_ids(api.get(LIST, {"from": "2025-03-01T12:00:00Z", "to": "2025-03-01T13:00:00Z"}))

    assert ids == [inside.trace_id, at_from.trace_id]
    assert before.trace_id not in ids and at_to.trace_id not in ids


def test_from_alone_and_to_alone_bound_one_side(world, api):
    early = TraceFactory(project=world.project, start_time=T0)
    late = TraceFactory(project=world.project, start_time=T0 + timedelta(days=1))

    assert listed_ids(api.get(LIST, {"from": "2025-03-01T18:00:00Z"})) == [late.trace_id]
    assert listed_ids(api.get(LIST, {"to": "2025-03-01T18:00:00Z"})) == [early.trace_id]


def test_naive_datetime_is_taken_as_utc(world, api):
    TraceFactory(project=world.project, start_time=T0 - timedelta(seconds=1))
    at_noon_utc = TraceFactory(project=world.project, start_time=T0)

    assert listed_ids(api.get(LIST, {"from": "2025-03-01T12:00:00"})) == [at_noon_utc.trace_id]


def test_datetime_with_offset_is_converted(world, api):
    TraceFactory(project=world.project, start_time=T0 - timedelta(seconds=1))
    at_noon_utc = TraceFactory(project=world.project, start_time=T0)

    # 14:00 at +02:00 is 12:00 UTC.
    assert listed_ids(api.get(LIST, {"from": "2025-03-01T14:00:00+02:00"})) == [at_noon_utc.trace_id]


def test_unencoded_plus_of_an_offset_is_understood(world, api):
    TraceFactory(project=world.project, start_time=T0 - timedelta(seconds=1))
    at_noon_utc = TraceFactory(project=world.project, start_time=T0)

    # A hand-typed URL: "+" decodes to a space.
    response = api.get(f"{LIST}?from=2025-03-01T14:00:00+02:00")

    assert listed_ids(response) == [at_noon_utc.trace_id]


def test_date_only_means_midnight_utc(world, api):
    TraceFactory(project=world.project, start_time=datetime(2025, 2, 28, 23, 59, tzinfo=UTC))
    march = TraceFactory(project=world.project, start_time=datetime(2025, 3, 1, 0, 0, tzinfo=UTC))

    assert listed_ids(api.get(LIST, {"from": "2025-03-01"})) == [march.trace_id]


def test_tag_filter_requires_every_given_tag(world, api):
    both = TraceFactory(project=world.project, tags=["beta", "eu", "mobile"], start_time=T0)
    only_beta = TraceFactory(project=world.project, tags=["beta"], start_time=T0 - timedelta(seconds=1))
    TraceFactory(project=world.project, tags=[], start_time=T0 - timedelta(seconds=2))

    assert listed_ids(api.get(LIST, {"tag": "beta"})) == [both.trace_id, only_beta.trace_id]
    assert listed_ids(api.get(LIST, {"tag": ["beta", "eu"]})) == [both.trace_id]
    assert listed_ids(api.get(LIST, {"tag": ["beta", "us"]})) == []


def test_metadata_filter_matches_string_value(world, api):
    gold = TraceFactory(project=world.project, metadata={"tier": "gold", "region": "eu"})
    TraceFactory(project=world.project, metadata={"tier": "silver"})
    TraceFactory(project=world.project, metadata={})

    assert listed_ids(api.get(LIST, {"metadata.tier": "gold"})) == [gold.trace_id]
    assert listed_ids(api.get(LIST, {"metadata.tier": "platinum"})) == []


def test_metadata_number_matches_json_number_and_string(world, api):
    as_int = TraceFactory(project=world.project, metadata={"retries": 3}, start_time=T0)
    as_float = TraceFactory(project=world.project, metadata={"retries": 3.0}, start_time=T0 - timedelta(seconds=1))
    as_text = TraceFactory(project=world.project, metadata={"retries": "3"}, start_time=T0 - timedelta(seconds=2))
    TraceFactory(project=world.project, metadata={"retries": 4}, start_time=T0 - timedelta(seconds=3))
    TraceFactory(project=world.project, metadata={"retries": "3.0"}, start_time=T0 - timedelta(seconds=4))

    expected = [as_int.trace_id, as_float.trace_id, as_text.trace_id]
    assert listed_ids(api.get(LIST, {"metadata.retries": "3"})) == expected


def test_metadata_decimal_and_negative_numbers_match(world, api):
    neg = TraceFactory(project=world.project, metadata={"delta": -0.5})

    assert listed_ids(api.get(LIST, {"metadata.delta": "-0.5"})) == [neg.trace_id]
    assert listed_ids(api.get(LIST, {"metadata.delta": "-5e-1"})) == [neg.trace_id]


def test_metadata_non_json_number_spellings_match_only_as_strings(world, api):
    TraceFactory(project=world.project, metadata={"n": 1000})

    for spelling in ["1_000", "01000", " 1000", "+1000"]:
        assert listed_ids(api.get(LIST, {"metadata.n": spelling})) == [], spelling


def test_metadata_true_false_match_booleans_and_strings(world, api):
    flag = TraceFactory(project=world.project, metadata={"beta": True}, start_time=T0)
    text = TraceFactory(project=world.project, metadata={"beta": "true"}, start_time=T0 - timedelta(seconds=1))
    off = TraceFactory(project=world.project, metadata={"beta": False}, start_time=T0 - timedelta(seconds=2))

    assert listed_ids(api.get(LIST, {"metadata.beta": "true"})) == [flag.trace_id, text.trace_id]
    assert listed_ids(api.get(LIST, {"metadata.beta": "false"})) == [off.trace_id]
    # Only the lowercase JSON spellings are booleans.
    assert listed_ids(api.get(LIST, {"metadata.beta": "True"})) == []


def test_metadata_null_matches_only_the_string_null(world, api):
    TraceFactory(project=world.project, metadata={"parent": None})
    text = TraceFactory(project=world.project, metadata={"parent": "null"})

    assert listed_ids(api.get(LIST, {"metadata.parent": "null"})) == [text.trace_id]


def test_several_metadata_filters_must_all_match(world, api):
    both = TraceFactory(project=world.project, metadata={"tier": "gold", "region": "eu"})
    TraceFactory(project=world.project, metadata={"tier": "gold", "region": "us"})

    response = api.get(LIST, {"metadata.tier": "gold", "metadata.region": "eu"})

    assert listed_ids(response) == [both.trace_id]


def test_metadata_key_with_dots_is_one_top_level_key(world, api):
    flat = TraceFactory(project=world.project, metadata={"app.version": "2"})
    TraceFactory(project=world.project, metadata={"app": {"version": "2"}})

    assert listed_ids(api.get(LIST, {"metadata.app.version": "2"})) == [flat.trace_id]


def test_metadata_filter_does_not_match_nested_values_of_other_keys(world, api):
    TraceFactory(project=world.project, metadata={"customer": {"tier": "gold"}})

    assert listed_ids(api.get(LIST, {"metadata.tier": "gold"})) == []


def test_filters_combine_with_and(world, api):
    hit = TraceFactory(project=world.project, user_id="u1", tags=["beta"], environment="production")
    TraceFactory(project=world.project, user_id="u1", tags=["beta"], environment="staging")
    TraceFactory(project=world.project, user_id="u2", tags=["beta"], environment="production")

    response = api.get(LIST, {"user_id": "u1", "tag": "beta", "environment": "production"})

    assert listed_ids(response) == [hit.trace_id]


def test_tag_and_metadata_filters_use_the_indexed_containment_operator(world, api):
    # The GIN indexes (trace_tags_gin, jsonb_path_ops trace_metadata_gin) serve `@>` only.
    with CaptureQueriesContext(connection) as queries:
        api.get(LIST, {"tag": "beta", "metadata.tier": "gold"})

    data_query = next(q["sql"] for q in queries.captured_queries if '"tracing_trace"' in q["sql"])
    assert '"tracing_trace"."tags" @>' in data_query
    assert '"tracing_trace"."metadata" @>' in data_query
    assert "->>" not in data_query


# --- pagination -------------------------------------------------------------------------


def test_pages_cover_every_trace_once_when_many_share_a_start_time(world, api):
    # 3 instants with 20 traces each plus 7 singles: ties must be broken by id, or a
    # page boundary inside a tie would repeat or skip rows.
    for i in range(3):
        for _ in range(20):
            TraceFactory(project=world.project, start_time=T0 + timedelta(seconds=i))
    for i in range(7):
        TraceFactory(project=world.project, start_time=T0 + timedelta(minutes=10 + i))
    expected = list(
        Trace.objects.filter(project=world.project).order_by("-start_time", "-id").values_list("trace_id", flat=True)
    )

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 7} | ({"cursor": cursor} if cursor else {})
        body = api.get(LIST, params).json()
        seen += [item["trace_id"] for item in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(body["data"]) == 7

    assert seen == expected
    assert len(set(seen)) == 67
    assert pages == 10


def test_page_that_exactly_fills_the_limit_is_the_last_one(world, api):
    for i in range(4):
        TraceFactory(project=world.project, start_time=T0 + timedelta(seconds=i))

    first = api.get(LIST, {"limit": 2}).json()
    second = api.get(LIST, {"limit": 2, "cursor": first["next_cursor"]}).json()

    assert len(first["data"]) == 2 and first["next_cursor"]
    assert len(second["data"]) == 2 and second["next_cursor"] is None


def test_pagination_keeps_applying_filters(world, api):
    wanted = [TraceFactory(project=world.project, user_id="u1", start_time=T0 + timedelta(seconds=i)) for i in range(5)]
    for i in range(5):
        TraceFactory(project=world.project, user_id="u2", start_time=T0 + timedelta(seconds=i))

    first = api.get(LIST, {"user_id": "u1", "limit": 3}).json()
    second = api.get(LIST, {"user_id": "u1", "limit": 3, "cursor": first["next_cursor"]}).json()

    ids = [t["trace_id"] for t in first["data"] + second["data"]]
    assert ids == [t.trace_id for t in reversed(wanted)]
    assert second["next_cursor"] is None


def test_cursor_still_works_after_the_last_seen_trace_is_deleted(world, api):
    traces = [TraceFactory(project=world.project, start_time=T0 + timedelta(seconds=i)) for i in range(4)]

    first = api.get(LIST, {"limit": 2}).json()
    Trace.objects.filter(trace_id=first["data"][-1]["trace_id"]).delete()
    second = api.get(LIST, {"limit": 2, "cursor": first["next_cursor"]}).json()

    assert [t["trace_id"] for t in second["data"]] == [traces[1].trace_id, traces[0].trace_id]


def test_limit_defaults_to_50(world, api):
    for i in range(51):
        TraceFactory(project=world.project, start_time=T0 + timedelta(seconds=i))

    body = api.get(LIST).json()

    assert len(body["data"]) == 50
    assert body["next_cursor"] is not None


def test_limit_500_is_accepted(world, api):
    TraceFactory(project=world.project)

    assert len(listed_ids(api.get(LIST, {"limit": 500}))) == 1


def test_cursor_is_opaque_urlsafe_text():
    cursor = TraceCursor(start_time=T0 + timedelta(microseconds=123), id=987654321)

    token = cursor.encode()

    assert TraceCursor.decode(token) == cursor
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


# --- invalid input ----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["from", "to"])
@pytest.mark.parametrize("value", ["yesterday", "2025-13-01", "2025-03-01T25:00:00Z", "1700000000"])
def test_bad_datetime_is_400_naming_the_field(api, field, value):
    error = assert_invalid(api.get(LIST, {field: value}), field)

    assert "not an ISO-8601 datetime" in error["message"]
    assert value in error["message"]


def test_from_after_to_is_400(api):
    error = assert_invalid(api.get(LIST, {"from": "2025-03-02T00:00:00Z", "to": "2025-03-01T00:00:00Z"}), "from")

    assert "after to" in error["message"]


def test_bad_status_is_400_listing_the_choices(api):
    error = assert_invalid(api.get(LIST, {"status": "failed"}), "status")

    assert "'failed'" in error["message"]
    assert "ok, error, unset" in error["message"] or all(s in error["message"] for s in ("ok", "error", "unset"))


@pytest.mark.parametrize("value", ["0", "-1", "501", "ten", "2.5"])
def test_bad_limit_is_400(api, value):
    error = assert_invalid(api.get(LIST, {"limit": value}), "limit")

    assert "between 1 and 500" in error["message"]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    ["not a cursor", "%%%", _b64("12:abc"), _b64("12"), _b64("x:1"), _b64("99999999999999999999:1")],
)
def test_bad_cursor_is_400(api, cursor):
    assert_invalid(api.get(LIST, {"cursor": cursor}), "cursor")


def test_unknown_query_parameter_is_400_instead_of_being_ignored(world, api):
    TraceFactory(project=world.project, session_id="a")

    error = assert_invalid(api.get(LIST, {"sesion_id": "b"}), "sesion_id")

    assert "unknown query parameter" in error["message"]
    assert "session_id" in error["message"]  # the list of valid names helps spot the typo


@pytest.mark.parametrize("param", ["user_id", "status", "from", "limit", "cursor", "metadata.tier"])
def test_single_value_parameter_given_twice_is_400(api, param):
    value = {"status": "ok", "from": "2025-03-01", "limit": "5", "cursor": TraceCursor(T0, 1).encode()}.get(param, "x")

    error = assert_invalid(api.get(LIST, {param: [value, value]}), param)

    assert "more than once" in error["message"]


@pytest.mark.parametrize(
    "param", ["session_id", "user_id", "model", "environment", "name", "tag", "status", "from", "to", "limit", "cursor"]
)
def test_empty_parameter_value_is_400_rather_than_no_filter(api, param):
    error = assert_invalid(api.get(LIST, {param: ""}), param)

    assert "must not be empty" in error["message"]


def test_empty_metadata_value_matches_the_empty_string(world, api):
    empty = TraceFactory(project=world.project, metadata={"note": ""})
    TraceFactory(project=world.project, metadata={"note": "x"})

    assert listed_ids(api.get(LIST, {"metadata.note": ""})) == [empty.trace_id]


def test_metadata_without_a_key_is_400(api):
    error = assert_invalid(api.get(LIST, {"metadata.": "gold"}), "metadata.")

    assert "metadata.<key>=<value>" in error["message"]


def test_all_invalid_parameters_are_reported_in_one_response(api):
    response = api.get(LIST, {"from": "soon", "status": "bad", "colour": "red"})

    error = assert_invalid(response, "from")
    assert set(error["detail"]) == {"from", "status", "colour"}


@pytest.mark.parametrize(
    "trace_id",
    [
        "abc",
        "0af7651916cd43dd8448eb211c80319",  # 31
        "0af7651916cd43dd8448eb211c80319c0",  # 33
        "0af7651916cd43dd8448eb211c80319g",  # not hex
        "0af76519-16cd-43dd-8448-eb211c80319c",  # a UUID is not an OTel id
    ],
)
def test_malformed_trace_id_is_400(api, trace_id):
    error = assert_invalid(api.get(detail_url(trace_id)), "trace_id")

    assert "32 hex characters" in error["message"]


# --- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize("path", [LIST, detail_url("0af7651916cd43dd8448eb211c80319c")])
def test_request_without_credentials_is_401(world, path):
    response = APIClient().get(path)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", [LIST, detail_url("0af7651916cd43dd8448eb211c80319c")])
def test_unknown_secret_key_is_401(world, path):
    response = key_client("sk-sg-not-a-real-key").get(path)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_revoked_key_is_401(world):
    trace = TraceFactory(project=world.project)
    api_key_revoke(project=world.project, key_id=world.key.key.pk)
    client = key_client(world.key.secret_key)

    for path in (LIST, detail_url(trace.trace_id)):
        response = client.get(path)
        assert response.status_code == 401
        assert "revoked" in response.json()["error"]["message"]


def test_basic_auth_with_public_and_secret_key_reads_traces(world):
    trace = TraceFactory(project=world.project)
    client = APIClient()
    credentials = base64.b64encode(f"{world.key.public_key}:{world.key.secret_key}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {credentials}")

    assert listed_ids(client.get(LIST)) == [trace.trace_id]


def test_basic_auth_with_another_projects_public_key_is_401(world):
    client = APIClient()
    credentials = base64.b64encode(f"{world.other_key.public_key}:{world.key.secret_key}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {credentials}")

    assert client.get(LIST).status_code == 401


# --- project isolation ------------------------------------------------------------------


def test_other_projects_key_cannot_see_the_trace(world):
    trace = TraceFactory(project=world.project)
    other = key_client(world.other_key.secret_key)

    assert listed_ids(other.get(LIST)) == []
    response = other.get(detail_url(trace.trace_id))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_same_trace_id_in_two_projects_is_read_per_project(world, api):
    mine = TraceFactory(project=world.project, name="mine")
    SpanFactory(trace=mine, name="my span")
    theirs = TraceFactory(project=world.other_project, trace_id=mine.trace_id, name="theirs")
    SpanFactory(trace=theirs, name="their span")

    body = api.get(detail_url(mine.trace_id)).json()
    other_body = key_client(world.other_key.secret_key).get(detail_url(mine.trace_id)).json()

    assert body["name"] == "mine" and [s["name"] for s in body["spans"]] == ["my span"]
    assert other_body["name"] == "theirs" and [s["name"] for s in other_body["spans"]] == ["their span"]


def test_secret_key_reads_its_own_project_whatever_project_param_says(world, api):
    mine = TraceFactory(project=world.project)
    TraceFactory(project=world.other_project)

    assert listed_ids(api.get(LIST, {"project": world.other_project.slug})) == [mine.trace_id]


def test_outsider_session_cannot_see_the_project(world):
    trace = TraceFactory(project=world.project)
    outsider = session_client(world.outsider)

    # Without ?project the outsider's only project is used: none of ours in it.
    assert listed_ids(outsider.get(LIST)) == []
    assert outsider.get(detail_url(trace.trace_id)).status_code == 404
    # Naming our project is "not found", not "forbidden": its existence doesn't leak.
    response = outsider.get(LIST, {"project": world.project.slug})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert outsider.get(detail_url(trace.trace_id), {"project": world.project.slug}).status_code == 404


def test_member_naming_a_project_they_are_not_in_gets_404(world):
    TraceFactory(project=world.other_project)

    response = session_client(world.owner).get(LIST, {"project": world.other_project.slug})

    assert response.status_code == 404


def test_unknown_trace_id_is_404(api):
    response = api.get(detail_url("0af7651916cd43dd8448eb211c80319c"))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- session auth and roles -------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "member", "reviewer", "viewer"])
def test_every_role_can_read_traces_with_a_session(world, role):
    trace = TraceFactory(project=world.project, spans=2)
    client = session_client(getattr(world, role))

    assert listed_ids(client.get(LIST)) == [trace.trace_id]
    assert listed_ids(client.get(LIST, {"project": world.project.slug})) == [trace.trace_id]
    response = client.get(detail_url(trace.trace_id))
    assert response.status_code == 200
    assert len(response.json()["spans"]) == 2


def test_session_user_in_several_projects_must_name_one(world):
    membership_set(project=world.other_project, user=world.viewer, role=Role.VIEWER)
    mine = TraceFactory(project=world.project)
    theirs = TraceFactory(project=world.other_project)
    client = session_client(world.viewer)

    response = client.get(LIST)
    assert response.status_code == 404
    assert "?project=" in response.json()["error"]["message"]
    assert listed_ids(client.get(LIST, {"project": world.project.slug})) == [mine.trace_id]
    assert listed_ids(client.get(LIST, {"project": world.other_project.slug})) == [theirs.trace_id]


# --- detail -----------------------------------------------------------------------------


def test_detail_returns_trace_with_flat_spans_in_start_order(world, api):
    trace = TraceFactory(project=world.project, start_time=T0, duration=timedelta(seconds=4))
    root = SpanFactory(trace=trace, name="agent", kind="agent", start_time=T0, end_time=T0 + timedelta(seconds=4))
    # Created out of order, as ingest may store them.
    second = SpanFactory(
        trace=trace, name="llm-2", parent_span_id=root.span_id, start_time=T0 + timedelta(seconds=2)
    )
    first = SpanFactory(
        trace=trace, name="tool", kind="tool", parent_span_id=root.span_id, start_time=T0 + timedelta(seconds=1)
    )

    body = api.get(detail_url(trace.trace_id)).json()

    assert body["trace_id"] == trace.trace_id
    assert [s["span_id"] for s in body["spans"]] == [root.span_id, first.span_id, second.span_id]
    assert [s["parent_span_id"] for s in body["spans"]] == [None, root.span_id, root.span_id]
    assert body["scores"] == []


def test_parent_span_precedes_child_that_starts_at_the_same_instant(world, api):
    trace = TraceFactory(project=world.project, start_time=T0)
    child = SpanFactory(trace=trace, start_time=T0, end_time=T0 + timedelta(milliseconds=10), span_id="0" * 15 + "1")
    parent = SpanFactory(trace=trace, start_time=T0, end_time=T0 + timedelta(seconds=1), span_id="f" * 16)
    child.parent_span_id = parent.span_id
    child.save()

    spans = api.get(detail_url(trace.trace_id)).json()["spans"]

    assert [s["span_id"] for s in spans] == [parent.span_id, child.span_id]


def test_detail_has_every_trace_and_span_field(world, api):
    trace = TraceFactory(project=world.project, prompt_name="answer", prompt_version="3")
    SpanFactory(
        trace=trace,
        cached_tokens=4,
        reasoning_tokens=2,
        documents=[{"id": "d1", "content": "Refunds: 30 days", "score": 0.9, "metadata": {}}],
        attributes={"gen_ai.system": "openai"},
        resource={"service.name": "support-bot"},
        events=[{"name": "exception", "time": "2025-03-01T12:00:00Z", "attributes": {}}],
        status="error",
        status_message="rate limited",
    )

    body = api.get(detail_url(trace.trace_id)).json()

    trace_fields = {
        "trace_id", "name", "session_id", "user_id", "environment", "release", "tags", "metadata",
        "start_time", "end_time", "latency_ms", "status", "input", "output", "input_tokens",
        "output_tokens", "total_tokens", "cost_usd", "model", "prompt", "span_count", "error_count",
        "unpriced_spans", "service_name", "spans", "scores",
    }  # fmt: skip
    span_fields = {
        "span_id", "parent_span_id", "name", "kind", "start_time", "end_time", "latency_ms", "status",
        "status_message", "provider", "model", "input_tokens", "output_tokens", "cached_tokens",
        "reasoning_tokens", "total_tokens", "cost_usd", "input", "output", "messages", "documents",
        "params", "finish_reason", "attributes", "resource", "events",
    }  # fmt: skip
    assert trace_fields <= set(body)
    span = body["spans"][0]
    assert span_fields <= set(span)
    assert body["prompt"] == {"name": "answer", "version": "3"}
    assert span["cached_tokens"] == 4 and span["reasoning_tokens"] == 2
    assert span["documents"][0]["id"] == "d1"
    assert span["attributes"] == {"gen_ai.system": "openai"}
    assert span["status_message"] == "rate limited"
    assert isinstance(span["cost_usd"], float)
    assert span["messages"][0]["role"] == "user"


def test_detail_returns_full_input_and_output(world, api):
    trace = TraceFactory(project=world.project, input="q" * 5000, output="a" * 3000)

    body = api.get(detail_url(trace.trace_id)).json()

    assert body["input"] == "q" * 5000
    assert body["output"] == "a" * 3000


def test_detail_accepts_uppercase_trace_id(world, api):
    trace = TraceFactory(project=world.project)

    response = api.get(detail_url(trace.trace_id.upper()))

    assert response.status_code == 200
    assert response.json()["trace_id"] == trace.trace_id


def test_trace_without_spans_has_empty_span_list(world, api):
    trace = TraceFactory(project=world.project)

    assert api.get(detail_url(trace.trace_id)).json()["spans"] == []


# --- query counts -----------------------------------------------------------------------


def _warm(client: APIClient) -> None:
    # The first key use writes last_used_at (at most once a minute); keep it out of counts.
    client.get(LIST)


def test_list_is_one_data_query_plus_key_lookup(world, api, django_assert_max_num_queries):
    for i in range(60):
        TraceFactory(project=world.project, start_time=T0 + timedelta(seconds=i), spans=2)
    _warm(api)

    with django_assert_max_num_queries(2):  # key lookup + data
        response = api.get(LIST, {"limit": 500, "tag": "x", "metadata.k": "v", "from": "2025-01-01"})
    assert response.status_code == 200
    with django_assert_max_num_queries(2):
        assert len(api.get(LIST, {"limit": 500}).json()["data"]) == 60


def test_list_with_session_is_one_data_query_plus_auth(world, django_assert_max_num_queries):
    for i in range(30):
        TraceFactory(project=world.project, start_time=T0 + timedelta(seconds=i))
    client = session_client(world.viewer)

    with django_assert_max_num_queries(4):  # session + user + membership + data
        assert len(client.get(LIST).json()["data"]) == 30


def test_detail_is_trace_plus_spans_queries(world, api, django_assert_max_num_queries):
    trace = TraceFactory(project=world.project, spans=40)
    _warm(api)

    with django_assert_max_num_queries(4):  # key lookup + trace + spans + scores (with authors)
        body = api.get(detail_url(trace.trace_id)).json()
    assert len(body["spans"]) == 40


# --- OpenAPI schema and docs ------------------------------------------------------------


def test_schema_is_valid_openapi_and_documents_the_trace_endpoints(db):
    response = APIClient().get("/api/v1/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)
    list_op = schema["paths"]["/api/v1/traces"]["get"]
    detail_op = schema["paths"]["/api/v1/traces/{trace_id}"]["get"]
    params = {p["name"] for p in list_op["parameters"]}
    assert {"from", "to", "session_id", "user_id", "model", "environment", "status", "name", "tag"} <= params
    assert {"limit", "cursor", "project"} <= params
    assert "metadata.<key>=<value>" in list_op["description"]
    assert {"200", "400", "401", "404"} <= set(list_op["responses"])
    assert {"200", "400", "401", "404"} <= set(detail_op["responses"])
    assert "trace_id" in {p["name"] for p in detail_op["parameters"]}


def test_docs_page_loads_swagger_ui_from_local_static_files(db):
    client = APIClient()

    page = client.get("/api/v1/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    bundle = "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
    assert bundle in html
    assert "cdn." not in html and "unpkg.com" not in html
    assert client.get(bundle).status_code == 200
