"""Datetimes in query strings: one parser (config/datetimes.py) behind every endpoint.

`GET /api/v1/traces?to=2026-01-01T00:00:00-20:13` was a 500 (PostgreSQL refuses offsets
beyond ±15:59 in a literal) and `to=0001-01-01` a 500 on every endpoint that derives a
default window from it (OverflowError). Every endpoint now converts any offset to UTC
and answers a time out of range with a 400 naming the parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from django.test import Client

from config.datetimes import EARLIEST, parse_user_datetime
from tests.helpers import ingest_trace, key_client

FAR_WEST = timezone(-timedelta(hours=20, minutes=13))  # RFC 3339 allows it, PostgreSQL does not
FAR_EAST = timezone(timedelta(hours=23, minutes=59))


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-01-01T00:00:00-20:13", datetime(2026, 1, 1, 20, 13, tzinfo=UTC)),
    ("2026-01-01T00:00:00+23:59", datetime(2025, 12, 31, 0, 1, tzinfo=UTC)),
    ("2026-01-01T10:00:00 02:00", datetime(2026, 1, 1, 8, tzinfo=UTC)),  # '+' lost in an unencoded URL
    ("2026-01-01T10:00", datetime(2026, 1, 1, 10, tzinfo=UTC)),  # the browser's datetime-local
    ("2026-01-01 10:00:00Z", datetime(2026, 1, 1, 10, tzinfo=UTC)),
    ("2026-01-01", datetime(2026, 1, 1, tzinfo=UTC)),
    ("1900-01-01T00:00:00Z", EARLIEST),
])
def test_any_offset_is_converted_to_utc(text, expected):
    parsed = parse_user_datetime(text)
    assert parsed == expected and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(("text", "problem"), [
    ("0001-01-01T00:00:00+05:00", "out of range"),  # before year 1 once in UTC: OverflowError
    ("9999-12-31T23:59:59-05:00", "out of range"),  # after year 9999 once in UTC
    ("1899-12-31T23:59:59Z", "out of range"),
    ("9000-01-01", "out of range"),
    ("2026-13-01", "not an ISO-8601 datetime"),
    ("yesterday", "not an ISO-8601 datetime"),
    ("2026-01-01T00:00:00+24:00", "not an ISO-8601 datetime"),
    ("2" * 10_000, "not an ISO-8601 datetime"),
])
def test_unusable_times_say_why(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_user_datetime(text)


# Every API endpoint that takes datetimes, with the parameters it needs besides them.
API = [
    ("/api/v1/traces", {}, ("from", "to")),
    ("/api/v1/scores", {}, ("from", "to")),
    ("/api/v1/metrics", {"measure": "traces", "agg": "count"}, ("from", "to")),
    ("/api/v1/metrics", {"measure": "traces", "agg": "count", "interval": "day"}, ("from", "to")),
    ("/api/v1/metrics/dimensions", {}, ("from", "to")),
    ("/api/v1/slices", {"dimension": "model"}, ("from", "to")),
    ("/api/v1/drift", {}, ("from", "to", "baseline_from", "baseline_to")),
]
# Pages (and the CSV export) reading the same parameters; {slug} is the project.
PAGES = [
    ("/p/{slug}/traces/", {}, ("from", "to")),
    ("/p/{slug}/overview/", {}, ("from", "to")),
    ("/p/{slug}/cost/", {}, ("from", "to")),
    ("/p/{slug}/dashboards/data.csv", {"measure": "traces", "agg": "count"}, ("from", "to")),
    ("/p/{slug}/slices/", {"dimension": "model"}, ("from", "to")),
    ("/p/{slug}/drift/", {}, ("from", "to", "baseline_from", "baseline_to")),
]
OUT_OF_RANGE = ["0001-01-01", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "9999-12-31"]
FAR_OFFSETS = ["2026-01-01T00:00:00-20:13", "2026-01-01T00:00:00+23:59"]


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "base", "params"), API, ids=[f"{p}{'+' + b['interval'] if 'interval' in b else ''}"
                                                                for p, b, _ in API])
def test_api_answers_far_offsets_and_names_out_of_range_parameters(world, path, base, params):
    api = key_client(world.key.secret_key)
    for param in params:
        for value in FAR_OFFSETS:
            response = api.get(path, {**base, param: value})
            # 400 only for a window the endpoint refuses on its own terms (from after to),
            # never for the offset itself; never a 500.
            assert response.status_code in (200, 400), (param, value, response.content[:300])
            if response.status_code == 400:
                assert "offset" not in response.content.decode() and "out of range" not in response.content.decode()
        for value in OUT_OF_RANGE:
            response = api.get(path, {**base, param: value})
            assert response.status_code == 400, (param, value, response.content[:300])
            error = response.json()["error"]
            assert param in error["detail"], error
            assert "out of range" in " ".join(error["detail"][param]), error


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "base", "params"), PAGES, ids=[p.split("}/")[1] for p, _, _ in PAGES])
def test_pages_and_exports_name_out_of_range_parameters(world, path, base, params):
    client = Client()
    client.force_login(world.owner)
    url = path.format(slug=world.project.slug)
    for param in params:
        for value in FAR_OFFSETS:
            response = client.get(url, {**base, param: value})
            assert response.status_code in (200, 400), (param, value)
        for value in OUT_OF_RANGE:
            response = client.get(url, {**base, param: value})
            assert response.status_code in (200, 400), (param, value)  # the explorer shows its errors in a 200
            text = response.content.decode()
            assert "out of range" in text and f"{param}" in text, (param, value, response.status_code)


def _at(when: datetime, zone: timezone) -> str:
    return when.astimezone(zone).isoformat()


@pytest.mark.django_db
def test_a_far_offset_selects_the_same_traces_as_its_utc_equivalent(world):
    """Not only "no 500": the instant is the right one (the offset is not dropped)."""
    api = key_client(world.key.secret_key)
    started = datetime(2026, 1, 1, 20, 0, tzinfo=UTC)
    trace = ingest_trace(world.project, start_ns=int(started.timestamp()) * 10**9)

    def listed(**params: str) -> list[str]:
        response = api.get("/api/v1/traces?" + urlencode(params))
        assert response.status_code == 200, response.content
        return [item["trace_id"] for item in response.json()["data"]]

    assert listed(to="2026-01-01T00:00:00-20:13") == [trace.trace_id]  # 20:13 UTC, after the start
    assert listed(to="2026-01-01T00:00:00-19:47") == []  # 19:47 UTC, before it
    assert listed(**{"from": _at(started, FAR_EAST)}) == [trace.trace_id]
    assert listed(**{"from": _at(started + timedelta(seconds=1), FAR_EAST)}) == []

    window = {"measure": "traces", "agg": "count"}
    counted = api.get("/api/v1/metrics", {**window, "from": _at(started - timedelta(hours=1), FAR_WEST),
                                          "to": _at(started + timedelta(hours=1), FAR_EAST)})
    assert counted.status_code == 200 and counted.json()["data"][0]["value"] == 1
    assert counted.json()["query"]["from"] == (started - timedelta(hours=1)).isoformat()


@pytest.mark.django_db
def test_scores_window_honours_the_offset(world, trace):
    api = key_client(world.key.secret_key)
    assert api.post("/api/v1/scores", {"trace_id": trace.trace_id, "name": "helpfulness", "value": 1},
                    format="json").status_code in (200, 201)
    now = datetime.now(UTC)

    def count(**params: str) -> int:
        response = api.get("/api/v1/scores", params)
        assert response.status_code == 200, response.content
        return len(response.json()["data"])

    assert count(**{"from": _at(now - timedelta(hours=1), FAR_WEST)}) == 1
    assert count(**{"from": _at(now + timedelta(hours=1), FAR_WEST)}) == 0
    assert count(to=_at(now - timedelta(hours=1), FAR_EAST)) == 0
