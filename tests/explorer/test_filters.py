"""The one trace filter language (explorer/filters.py): parsing, errors, writing back,
and the same filter meaning the same traces on the page, in the API and in a queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.http import QueryDict
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from explorer.filters import RANGES, FilterError, ScoreCondition, TraceFilter, parse_datetime
from scores.models import Source
from scores.services import score_upsert
from tests.helpers import ingest_trace
from tests.otlp_payloads import BASE_NS


def parse(query: str, **kwargs) -> TraceFilter:
    return TraceFilter.parse(QueryDict(query), **kwargs)


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("hallucination>0.5", ScoreCondition("hallucination", ">", 0.5)),
    ("user_thumbs = 0", ScoreCondition("user_thumbs", "=", 0.0)),
    ("user_thumbs=false", ScoreCondition("user_thumbs", "=", 0.0)),
    ("toxicity_output>=.7", ScoreCondition("toxicity_output", ">=", 0.7)),
    ("edit<-1e3", ScoreCondition("edit", "<", -1000.0)),
    ("preferred=A", ScoreCondition("preferred", "=", "A")),
    ("preferred!=tie", ScoreCondition("preferred", "!=", "tie")),
    ("helpfulness", ScoreCondition("helpfulness")),
])
def test_score_conditions_parse(text, expected):
    assert ScoreCondition.parse(text) == expected


@pytest.mark.parametrize(("text", "needle"), [("helpfulness>high", "needs a number"), ("=1", "not a score condition"),
                                              ("", "not a score condition")])
def test_bad_score_conditions_say_why(text, needle):
    with pytest.raises(ValueError, match=needle):
        ScoreCondition.parse(text)


def test_every_problem_is_reported_at_once_naming_its_parameter():
    with pytest.raises(FilterError) as caught:
        parse("from=yesterday&status=fine&colour=red&score=x>y&range=3w&feedback=maybe&metadata.=1")
    assert set(caught.value.errors) == {"from", "status", "colour", "score", "range", "feedback", "metadata."}
    assert "unknown query parameter" in caught.value.errors["colour"][0]


def test_parameters_the_caller_reads_itself_are_allowed_and_nothing_else():
    assert parse("limit=5&cursor=abc&model=m", allow={"limit", "cursor"}).model == "m"
    with pytest.raises(FilterError, match="limit"):
        parse("limit=5")


def test_an_api_client_may_not_send_empty_values_but_a_page_may():
    with pytest.raises(FilterError, match="must not be empty"):
        parse("user_id=")
    assert parse("user_id=&score=&tag=", aliases=True) == TraceFilter()


def test_page_aliases_meta_and_comma_tags():
    parsed = parse("meta=plan=pro&meta=&tag=a, b&tag=c", aliases=True)
    assert parsed.metadata == (("plan", "pro"),) and parsed.tags == ("a", "b", "c")


@pytest.mark.parametrize(("text", "utc"), [("2026-01-01T00:00:00-20:13", datetime(2026, 1, 1, 20, 13, tzinfo=UTC)),
                                           ("2026-01-01T00:00:00+23:59", datetime(2025, 12, 31, 0, 1, tzinfo=UTC))])
def test_utc_offsets_postgres_cannot_hold_are_converted_not_a_500(text, utc):
    # RFC 3339 allows any offset up to ±23:59; PostgreSQL only ±15:59 (config/datetimes.py).
    assert parse_datetime(text) == utc


def test_times_are_converted_to_utc():
    assert parse_datetime("2026-01-01T10:00:00+02:00") == datetime(2026, 1, 1, 8, tzinfo=UTC)
    assert parse_datetime("2026-01-01T10:00:00 02:00") == datetime(2026, 1, 1, 8, tzinfo=UTC)  # '+' lost in a URL
    assert parse_datetime("2026-01-01") == datetime(2026, 1, 1, tzinfo=UTC)


def test_a_relative_range_is_resolved_when_used():
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert parse("range=24h").window(now) == (now - timedelta(hours=24), None)
    with pytest.raises(FilterError, match="either range or from/to"):
        parse("range=24h&from=2026-01-01")


# --- writing back: parse(to_query(f)) == f ------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20).filter(
    lambda s: s.strip() == s and s)
_name = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
_number = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
_condition = st.one_of(
    st.builds(ScoreCondition, _name),
    st.builds(ScoreCondition, _name, st.sampled_from(ScoreCondition.OPS), _number),
    st.builds(ScoreCondition, _name, st.sampled_from(["=", "!="]),
              st.from_regex(r"[A-Za-z][A-Za-z ]{0,8}[A-Za-z]", fullmatch=True)),
)
_when = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@st.composite
def filters(draw) -> TraceFilter:
    use_range = draw(st.booleans())
    start = end = None
    if not use_range:
        start, end = draw(st.none() | _when), draw(st.none() | _when)
        if start and end and start > end:
            start, end = end, start
    return TraceFilter(
        start_from=start, start_to=end,
        range=draw(st.sampled_from(list(RANGES))) if use_range else None,
        name=draw(st.none() | _text), user_id=draw(st.none() | _text), session_id=draw(st.none() | _text),
        model=draw(st.none() | _text), environment=draw(st.none() | _text), release=draw(st.none() | _text),
        status=draw(st.none() | st.sampled_from(["ok", "error", "unset"])),
        prompt=draw(st.none() | _text), prompt_version=draw(st.none() | st.from_regex(r"[0-9]{1,3}", fullmatch=True)),
        tags=tuple(sorted(set(draw(st.lists(_text.filter(lambda t: "," not in t), max_size=3))))),
        metadata=tuple(sorted(draw(st.dictionaries(_name, _text, max_size=3)).items())),
        search=draw(st.none() | _text),
        search_mode=draw(st.sampled_from(["text", "semantic"])),
        scores=tuple(sorted(set(draw(st.lists(_condition, max_size=3))), key=str)),
        has_feedback=draw(st.none() | st.booleans()),
    )


@settings(max_examples=300, deadline=None)
@given(filters())
def test_parse_of_the_written_query_is_the_same_filter(original):
    written = urlencode(original.to_query())
    assert parse(written) == original
    assert parse(written, aliases=True) == original


# --- one meaning everywhere ------------------------------------------------------------------


def test_the_same_query_selects_the_same_traces_on_the_page_in_the_api_and_in_a_queue(world):
    from annotation import selectors as annotation_selectors

    flagged = ingest_trace(world.project, start_ns=BASE_NS, attributes={"metadata": '{"plan": "pro"}'})
    ingest_trace(world.project, start_ns=BASE_NS + 10**9, attributes={"metadata": '{"plan": "pro"}'})
    ingest_trace(world.project, start_ns=BASE_NS + 2 * 10**9)
    score_upsert(project=world.project, trace_id=flagged.trace_id, name="hallucination", value=0.8,
                 source=Source.EVALUATOR)
    query = "metadata.plan=pro&score=hallucination>0.5&from=2025-01-01"

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {world.key.secret_key}")
    from_api = [t["trace_id"] for t in api.get(f"/api/v1/traces?{query}").json()["data"]]
    page = APIClient()
    page.force_login(world.viewer)
    html = page.get(f"/p/{world.project.slug}/traces/?{query}").content.decode()
    from_queue = annotation_selectors.queue_candidates(project=world.project, filters=parse(query))

    assert from_api == from_queue == [flagged.trace_id]
    assert flagged.trace_id in html and html.count("/traces/") >= 1
