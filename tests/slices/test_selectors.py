"""slices/selectors.py on the planted data (tests/slices/conftest.py): the numbers per
slice, the rest of the traffic, flags, intersections, filters."""

from __future__ import annotations

from datetime import timedelta

import pytest

from slices import stats
from slices.selectors import SliceError, SliceQuery, slices_report
from tests.slices.conftest import END, T0, WINDOW


def report(project, **params):
    return slices_report(project=project, query=SliceQuery.parse({**WINDOW, **params}, now=END))


def by_label(rep):
    return {s.label(rep.query.dimensions): s for s in rep.slices}


def test_counts_rates_and_rest_per_slice(world, planted):
    rep = report(world.project, dimension="metadata.locale")
    slices = by_label(rep)
    assert list(slices) == ["locale en-US", "locale de-DE", "locale ja-JP", "locale it-IT"]  # by traffic
    assert rep.total == 812
    ja = slices["locale ja-JP"]
    assert ja.n == 200 and ja.share == pytest.approx(200 / 812)
    hall = ja.cells["hallucination_rate"]
    assert (hall.value, hall.n) == (pytest.approx(0.30), 200)
    assert (hall.low, hall.high) == pytest.approx(stats.wilson(60, 200))
    assert hall.rest == pytest.approx(42 / 612) and hall.rest_n == 612
    assert hall.ratio_to_best == pytest.approx(0.05 / 0.30)  # best: en-US and de-DE at 5%
    thumbs = ja.cells["thumbs_up_rate"]
    assert (thumbs.value, thumbs.n) == (pytest.approx(37 / 50), 50)
    exposure = ja.cells["feedback_exposure"]
    assert exposure.value == pytest.approx(0.25) and exposure.p_value is None
    # praised but unsupported: thumbs-up traces (i%4==0, i%16!=0) that hallucinated (i%10<3):
    # i in {20, 40, 60, 100, 120, 140, 180}... worked out below.
    ups = [i for i in range(200) if i % 4 == 0 and i % 16 != 0]
    assert ja.cells["praised_unsupported"].n == len(ups)
    assert ja.cells["praised_unsupported"].value == pytest.approx(sum(i % 10 < 3 for i in ups) / len(ups))
    latency = ja.cells["latency_p50"]
    assert latency.value == pytest.approx(745.0)  # 500 + 10 * median of (i % 50) over 0..199 = 24.5
    assert latency.test == "Mann-Whitney U"
    assert ja.cells["cost_per_trace"].value == pytest.approx(0.001)
    assert ja.cells["rephrase_rate"].value is None  # no signal anywhere: no claim


def test_planted_locale_is_flagged_and_explained_the_others_are_not(world, planted):
    rep = report(world.project, dimension="metadata.locale")
    slices = by_label(rep)
    flagged = {(label, m) for label, s in slices.items() for m, c in s.cells.items() if c.flagged}
    assert ("locale ja-JP", "hallucination_rate") in flagged
    assert not any(label in ("locale en-US", "locale de-DE") for label, _ in flagged)
    assert not any(label == "locale it-IT" for label, _ in flagged)  # 12 traces: never flagged
    sentence = next(f for f in rep.findings if "hallucination rate" in f)
    p = slices["locale ja-JP"].cells["hallucination_rate"].p_adjusted
    assert sentence.startswith("locale ja-JP: hallucination rate 30.0% [")
    assert "vs 6.9% for others" in sentence and "ratio 0.17" in sentence
    assert ("p < 0.001" if p < 0.001 else f"p = {p:.3f}") in sentence


def test_intersection_gives_one_row_per_pair(world, planted):
    rep = report(world.project, dimension="metadata.locale", dimension2="metadata.plan")
    slices = by_label(rep)
    assert len(slices) == 8
    cell = slices["locale ja-JP × plan free"]
    assert cell.n == 100 and cell.as_dict(rep.query.dimensions) == {"metadata.locale": "ja-JP",
                                                                      "metadata.plan": "free"}
    # Even i only: i % 10 in {0, 2} among evens -> 40 of 100.
    assert cell.cells["hallucination_rate"].value == pytest.approx(0.40)
    assert cell.explorer_query[-2:] == [("metadata.locale", "ja-JP"), ("metadata.plan", "free")]


def test_top_folds_the_rest_into_other(world, planted):
    rep = report(world.project, dimension="metadata.locale", top="2")
    labels = [s.label(rep.query.dimensions) for s in rep.slices]
    assert labels == ["locale en-US", "locale de-DE", "locale (other)"] or \
        labels == ["locale en-US", "locale ja-JP", "locale (other)"]
    other = rep.slices[-1]
    assert other.n == 212 and other.explorer_query is None


def test_filters_and_fixed_dimensions(world, planted):
    rep = report(world.project, dimension="prompt", **{"metadata.locale": "ja-JP"})
    assert {s.key: s.n for s in rep.slices} == {("answer@1",): 100, ("answer@2",): 100}
    assert rep.slices[0].explorer_query[-2:] in ([("prompt", "answer"), ("prompt_version", "1")],
                                                  [("prompt", "answer"), ("prompt_version", "2")])


def test_missing_values_are_their_own_slice(world, planted):
    rep = report(world.project, dimension="metadata.channel")
    assert [(s.key, s.n) for s in rep.slices] == [((None,), 812)]
    assert rep.slices[0].explorer_query is None


def test_post_stratified_satisfaction_beside_the_raw(world, planted):
    rep = report(world.project, dimension="metadata.locale")
    assert rep.raw_satisfaction.value == pytest.approx((75 + 37 + 37 + 2) / 203)
    expected = stats.post_stratified_rate([(75, 100, 400), (37, 50, 200), (37, 50, 200), (2, 3, 12)])
    assert rep.weighted_satisfaction.value == pytest.approx(expected.value)


@pytest.mark.parametrize(("params", "field"), [
    ({}, "dimension"),
    ({"dimension": "locale"}, "dimension"),
    ({"dimension": "metadata."}, "dimension"),
    ({"dimension": "model", "dimension2": "model"}, "dimension2"),
    ({"dimension": "model", "top": "0"}, "top"),
    ({"dimension": "model", "min_n": "x"}, "min_n"),
    ({"dimension": "model", "from": "yesterday"}, "from"),
    ({"dimension": "model", "colour": "red"}, "colour"),
    ({"dimension": "model", "range": "all"}, "range"),
])
def test_bad_parameters_name_the_field(params, field):
    with pytest.raises(SliceError) as caught:
        SliceQuery.parse(params, now=END)
    assert field in caught.value.errors


def test_window_defaults_to_the_metrics_layer_default():
    query = SliceQuery.parse({"dimension": "model"}, now=END)
    assert (query.start, query.end) == (END - timedelta(days=7), END)


def test_user_cohort_is_the_week_of_the_users_first_trace(world, planted):
    from tracing.models import Trace

    Trace.objects.filter(project=world.project, metadata__locale="ja-JP").update(user_id="u-ja")
    # An earlier trace of the same user, outside the window, moves the whole cohort.
    early = planted.traces["de-DE"][0]
    Trace.objects.filter(pk=early.pk).update(user_id="u-de", start_time=T0 - timedelta(days=30))
    Trace.objects.filter(project=world.project, metadata__locale="de-DE").exclude(pk=early.pk).update(user_id="u-de")
    rep = report(world.project, dimension="user_cohort")
    # 2025-06-02 is a Monday of ISO week 23; 30 days earlier (2025-05-03) is in week 18.
    assert {s.key: s.n for s in rep.slices} == {("2025-W23",): 200, ("2025-W18",): 199, (None,): 412}


def test_latency_percentiles_and_sample_match_postgres(world, planted):
    """The percentiles and the Mann-Whitney sample are computed in numpy from the bucket
    rows' latencies (slices._slice_rows); they must equal what Postgres computes over the
    slice's traces: percentile_cont, and the LATENCY_SAMPLE traces with the lowest
    hashtext(trace_id) in hash order."""
    from django.db import connection

    from slices import selectors

    ja_ids = [t.trace_id for t in planted.traces["ja-JP"]]
    with connection.cursor() as cursor:
        cursor.execute("SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY latency_ms), "
                       "(array_agg(latency_ms ORDER BY hashtext(trace_id), latency_ms))[1:%s] "
                       "FROM tracing_trace WHERE project_id = %s AND trace_id = ANY(%s)",
                       [selectors.LATENCY_SAMPLE, world.project.pk, ja_ids])
        (p50, p95), expected_sample = cursor.fetchone()
    rep = report(world.project, dimension="metadata.locale")
    ja = by_label(rep)["locale ja-JP"]
    assert ja.cells["latency_p50"].value == pytest.approx(p50)
    assert ja.cells["latency_p95"].value == pytest.approx(p95)
    # ja-JP has 200 traces: a sample of 20 makes the lowest-hash cut bite.
    original = selectors.LATENCY_SAMPLE
    selectors.LATENCY_SAMPLE = 20
    try:
        rows = selectors._slice_rows(_bucket_rows(world.project), SliceQuery.parse(
            {**WINDOW, "dimension": "metadata.locale"}, now=END))
    finally:
        selectors.LATENCY_SAMPLE = original
    sample = next(r["sample"] for r in rows if r["g1"] == "ja-JP")
    assert sample == expected_sample[:20]


def _bucket_rows(project):
    """The statement's per-bucket rows, as slices_report reads them."""
    from django.db import connection

    from slices import selectors

    query = SliceQuery.parse({**WINDOW, "dimension": "metadata.locale"}, now=END)
    sql, params = selectors._report_sql(project=project, query=query, interval="hour")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = [c.name for c in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return [r for r in rows if r["grp"] == 1]
