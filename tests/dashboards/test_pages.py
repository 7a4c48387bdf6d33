"""Overview and cost pages, and the CSV of a chart (dashboards/views.py, dashboards/charts.py):
values on the page against hand-computed aggregates of the sample (tests/dashboards/conftest.py),
empty states that say why, click-through links, CSV content, roles and bad input."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from tests.dashboards.conftest import END, T0
from tests.factories import SpanFactory, TraceFactory

WINDOW = f"from={T0:%Y-%m-%dT%H:%M}&to={END:%Y-%m-%dT%H:%M}"


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def overview(world, query: str = WINDOW, user=None):
    return login(user or world.viewer).get(f"/p/{world.project.slug}/overview/?{query}")


def card(html: str, key: str) -> str:
    """The HTML of one chart's card."""
    match = re.search(rf'<section[^>]*id="card-chart-{key}".*?</section>', html, re.S)
    assert match, f"no card {key}"
    return match.group(0)


def big_number(html: str, key: str) -> str:
    match = re.search(r'class="big-number">(?:<a [^>]*>)?([^<]*)<', card(html, key))
    return match.group(1).strip()


def figure(html: str, key: str) -> dict:
    match = re.search(rf'<script id="fig-chart-{key}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no figure for {key}"
    return json.loads(match.group(1))


def test_overview_numbers_match_hand_computed_aggregates(world, sample):
    response = overview(world)

    assert response.status_code == 200
    html = response.content.decode()
    assert big_number(html, "n-traces") == "6"
    assert big_number(html, "n-users") == "3"  # u1, u2, u3
    assert big_number(html, "n-cost") == "$0.2200"  # .01 + .02 + .04 + .10 + .05 (t3 unpriced)
    assert big_number(html, "n-errors") == "33.33 %"  # t2, t5 of 6
    # Thumbs: 3 up of 4 votes; Wilson 95%: (0.75 + z²/8 ± z·sqrt(0.75·0.25/4 + z²/64)) / (1 + z²/4).
    assert big_number(html, "n-thumbs") == "75.00 %"
    assert "95% CI 30.06 % – 95.44 %" in card(html, "n-thumbs") and "n = 4" in card(html, "n-thumbs")
    # Ratings 4, 2 (a span of t1) and 5: mean 3.67, sd 1.528, t(0.975, 2) = 4.303 -> ± 3.79.
    assert big_number(html, "n-rating") == "3.67"
    assert "95% CI -0.13 – 7.46" in card(html, "n-rating") and "n = 3" in card(html, "n-rating")


def test_overview_traces_per_hour_and_latency_percentiles(world, sample):
    html = overview(world).content.decode()

    traces = figure(html, "traces")["data"][0]
    assert traces["y"] == [2, 2, 0, 2]  # hours 0, 1, 2, 3
    assert traces["x"][0] == T0.isoformat()
    latency = {t["name"]: t["y"] for t in figure(html, "latency")["data"]}
    # Hour 0: 100, 200 -> p50 150; hour 3: 1000, 600 -> p50 800, p99 996.
    assert latency["p50"][0] == pytest.approx(150) and latency["p50"][3] == pytest.approx(800)
    assert latency["p99"][3] == pytest.approx(600 + 0.99 * 400)
    layout = figure(html, "latency")["layout"]
    assert layout["yaxis"]["title"]["text"] == "Latency percentiles (ms)"
    assert layout["xaxis"]["title"]["text"] == "time (UTC, per hour)"
    assert figure(html, "traces")["layout"]["yaxis"]["title"]["text"] == "Traces"
    cost = figure(html, "cost-model")["layout"]
    assert cost["yaxis"]["title"]["text"] == "Cost, sum (USD)" and cost["barmode"] == "stack"
    assert "n = %{customdata[1]:,}" in figure(html, "cost-model")["data"][0]["hovertemplate"]


def test_overview_bars_link_to_the_explorer_filtered_to_the_group(world, sample):
    html = overview(world).content.decode()

    bars = figure(html, "cost-prompt")["data"][0]
    # support@1: t1 .01, support@2: t2 .02; the other traces have no prompt (no link).
    values = dict(zip(bars["x"], bars["y"], strict=True))
    assert values["support@1"] == pytest.approx(0.01) and values["support@2"] == pytest.approx(0.02)
    url = bars["customdata"][bars["x"].index("support@2")][0]
    parts = urlsplit(url)
    assert parts.path == f"/p/{world.project.slug}/traces/"
    # Naive UTC times: what the explorer's datetime-local inputs show and send back.
    assert parse_qs(parts.query) == {"from": ["2025-03-03T00:00:00"], "to": ["2025-03-03T04:00:00"],
                                     "prompt": ["support"],
                                     "prompt_version": ["2"]}
    none_index = bars["x"].index("(none)")
    assert bars["customdata"][none_index][0] is None
    # A point over time: the bucket is the hour.
    cost_by_model = {t["name"]: t for t in figure(html, "cost-model")["data"]}
    url = cost_by_model["llama"]["customdata"][3][0]
    query = parse_qs(urlsplit(url).query)
    assert query["model"] == ["llama"] and query["from"] == ["2025-03-03T03:00:00"]
    assert query["to"] == ["2025-03-03T04:00:00"]
    # The link opens a page that lists exactly that group's traces.
    explorer = login(world.viewer).get(url)
    assert explorer.status_code == 200
    assert sample.traces["t6"].trace_id in explorer.content.decode()
    assert sample.traces["t5"].trace_id not in explorer.content.decode()


def test_evaluator_and_signal_rates_with_intervals(world, sample):
    html = overview(world).content.decode()

    evaluators = figure(html, "evaluators")["data"][0]
    rates = dict(zip(evaluators["x"], evaluators["y"], strict=True))
    # Flagged: t1 no (stored), t2 yes (0.9 >= 0.5), t3 yes (stored), t4 yes (stored): 3 of 4.
    assert rates["Hallucination"] == pytest.approx(75.0)
    assert rates["Toxicity (user)"] is None  # not computed: no bar
    signals = figure(html, "signals")["data"][0]
    # Rephrase on t1 and t2 of 6 traces.
    assert dict(zip(signals["x"], signals["y"], strict=True))["Rephrased"] == pytest.approx(100 * 2 / 6)
    url = signals["customdata"][signals["x"].index("Rephrased")][0]
    assert parse_qs(urlsplit(url).query)["score"] == ["rephrase"]
    top_users = figure(html, "top-users")["data"][0]
    assert top_users["orientation"] == "h"
    assert dict(zip(top_users["y"], top_users["x"], strict=True)) == {
        "u3": pytest.approx(0.15), "u1": pytest.approx(0.03), "(none)": pytest.approx(0.04)}


def test_empty_states_say_why(world, sample):
    html = overview(world, "from=2024-01-01T00:00&to=2024-01-02T00:00").content.decode()
    assert "No traces in this window" in card(html, "traces")

    html = overview(world, WINDOW + "&model=no-such-model").content.decode()
    assert "The filter excludes every trace in this window (6 traces without it)" in card(html, "traces")

    # u3's traces (t5, t6) have no hallucination score and t5 no thumbs.
    html = overview(world, WINDOW + "&user_id=u3&model=gpt-4o").content.decode()
    assert ("hallucination, pii_input, pii_output, prompt_injection, toxicity_input, toxicity_output: not computed "
            "yet") in card(html, "evaluators")
    assert "no end user has given this feedback" in card(html, "thumbs")


def test_filters_and_window_are_carried_in_links(world, sample):
    html = overview(world, WINDOW + "&meta=locale%3Dde-DE&tag=a").content.decode()

    assert big_number(html, "n-traces") == "3"  # t1, t2, t6
    csv_link = re.search(r'<a href="([^"]+)" class="csv"', card(html, "traces")).group(1)
    query = parse_qs(urlsplit(csv_link.replace("&amp;", "&")).query)
    assert query["metadata.locale"] == ["de-DE"] and query["tag"] == ["a"] and query["interval"] == ["hour"]
    assert 'href="?range=24h&amp;tag=a&amp;metadata.locale=de-DE"' in html


def test_range_presets_and_default_window(world, sample):
    recent = TraceFactory(project=world.project, start_time=datetime.now(UTC) - timedelta(hours=2))
    for query, expected in (("", "1"), ("range=24h", "1"), ("range=30d", "1")):
        html = overview(world, query).content.decode()
        assert big_number(html, "n-traces") == expected, query
    assert recent.trace_id


@pytest.mark.parametrize(("query", "field"), [
    ("range=all", "range"),
    ("from=yesterday", "from"),
    (f"from={END:%Y-%m-%dT%H:%M}&to={T0:%Y-%m-%dT%H:%M}", "from"),
    ("colour=red", "colour"),
    ("mode=semantic&q=refund", "mode"),
])
def test_bad_input_is_a_form_error_naming_the_field(world, query, field):
    response = overview(world, query)
    assert response.status_code == 400
    assert f"<strong>{field}</strong>" in response.content.decode()


def test_roles_viewer_reads_outsider_gets_404_anonymous_logs_in(world):
    for path in ("overview/", "cost/", "dashboards/data.csv?measure=traces"):
        url = f"/p/{world.project.slug}/{path}"
        assert login(world.viewer).get(url).status_code == 200, path
        assert login(world.outsider).get(url).status_code == 404, path
        assert Client().get(url).status_code == 302, path


def test_project_root_and_nav_lead_to_the_overview(world):
    response = login(world.viewer).get(f"/p/{world.project.slug}/")
    assert response["Location"] == f"/p/{world.project.slug}/overview/"
    html = login(world.viewer).get(response["Location"]).content.decode()
    assert f'href="/p/{world.project.slug}/traces/"' in html  # the explorer stays one click away
    assert "/static/vendor/plotly/plotly.min.js" in html and "/static/dashboards/charts.js" in html


# --- CSV -------------------------------------------------------------------------------------


def test_csv_is_the_charts_query(world, sample):
    response = login(world.viewer).get(f"/p/{world.project.slug}/dashboards/data.csv",
                                       {"measure": "cost_usd", "agg": "sum", "group_by": "model",
                                        "from": T0.isoformat(), "to": END.isoformat()})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [
        ["time", "model", "value", "n", "unit"],
        ["", "gpt-4o", "0.13", "3", "USD"],
        ["", "gpt-4o-mini", "0.04", "1", "USD"],
        ["", "llama", "0.05", "1", "USD"],
    ]


def test_csv_link_of_a_chart_returns_its_points(world, sample):
    html = overview(world).content.decode()
    link = re.search(r'<a href="([^"]+)" class="csv"', card(html, "errors")).group(1).replace("&amp;", "&")

    rows = list(csv.reader(io.StringIO(login(world.viewer).get(link).content.decode())))
    assert rows[0] == ["time", "value", "n", "unit"]
    assert [(r[0][11:16], r[1], r[2]) for r in rows[1:]] == [
        ("00:00", "0.5", "2"), ("01:00", "0.0", "2"), ("02:00", "", "0"), ("03:00", "0.5", "2")]


def test_csv_bad_query_is_a_400_naming_the_parameter(world):
    response = login(world.viewer).get(f"/p/{world.project.slug}/dashboards/data.csv?measure=traces&agg=p95")
    assert response.status_code == 400 and b"agg:" in response.content


# --- cost -------------------------------------------------------------------------------------


def cost_page(world, query: str = WINDOW):
    return login(world.viewer).get(f"/p/{world.project.slug}/cost/?{query}")


def test_cost_page_splits_and_cost_per_successful_answer(world, sample):
    html = cost_page(world, WINDOW + "&key=locale").content.decode()

    assert re.search(r'id="total-cost">\$0.2200<', html)
    # Successful: t1 (thumbs up), t3 (up), t6 (up), t4 and t5 (nothing negative); not t2
    # (thumbs down and a rephrase). 0.22 / 5 = 0.044.
    assert re.search(r'id="per-success">\$0.0440<', html)
    assert "5 successful of 6 traces" in html
    by_env = figure(html, "by-env")["data"][0]
    assert dict(zip(by_env["x"], by_env["y"], strict=True)) == {"prod": pytest.approx(0.17),
                                                                "staging": pytest.approx(0.05)}
    by_meta = figure(html, "by-meta")["data"][0]
    # locale: de-DE t1 .01 + t2 .02 + t6 .05; fr-FR t4 .04; en-US t3 has no cost.
    values = dict(zip(by_meta["x"], by_meta["y"], strict=True))
    assert values["de-DE"] == pytest.approx(0.08) and values["fr-FR"] == pytest.approx(0.04)
    assert '<option value="locale" selected>locale (3 values)</option>' in html
    assert '<option value="tier">tier (2 values)</option>' in html


def test_cost_page_counts_and_explains_unpriced_spans(world, sample):
    trace = TraceFactory(project=world.project, start_time=T0 + timedelta(minutes=5), model="my-finetune",
                         cost_usd=None)
    SpanFactory(trace=trace, kind="llm", model="my-finetune", provider="openai", input_tokens=50, output_tokens=5,
                cost_usd=None)
    SpanFactory(trace=trace, kind="llm", model="qwen", provider="my-own-gpu", input_tokens=10, output_tokens=1,
                cost_usd=None)
    SpanFactory(trace=trace, kind="llm", model="gpt-4o", provider="openai", input_tokens=10, output_tokens=1,
                cost_usd=Decimal("0.001"))
    SpanFactory(trace=trace, kind="tool", input_tokens=None, output_tokens=None, cost_usd=None)

    html = cost_page(world).content.decode()

    assert re.search(r'id="unpriced-total">2<', html)
    table = re.search(r'<table class="data compact" id="unpriced">.*?</table>', html, re.S).group(0)
    assert "my-finetune" in table and "no price for this model" in table
    assert "my-own-gpu" in table and "not in the price list" in table


def test_cost_projection_says_how_it_is_computed(world):
    now = datetime.now(UTC)
    TraceFactory(project=world.project, start_time=now - timedelta(days=2), cost_usd=Decimal("7"))
    html = cost_page(world, "range=7d").content.decode()
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month_end = (month_start + timedelta(days=32)).replace(day=1)
    days_left = (month_end - now) / timedelta(days=1)
    mtd = 7 if now - timedelta(days=2) >= month_start else 0
    projected = mtd + 1 * days_left
    text = re.search(r'id="projected">([^<]*)<', html).group(1)
    assert float(text.strip("$").replace(",", "")) == pytest.approx(projected, abs=0.01)
    assert "average $1.0000/day ($7.0000 ÷ 7)" in html


def test_cost_page_rejects_a_bad_metadata_key(world):
    response = cost_page(world, "key=" + "k" * 201)
    assert response.status_code == 400 and "<strong>key</strong>" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_pages_draw_the_demo_seeded_through_the_real_sdk_and_ingest(world):
    """The demo traffic (SDK -> OTLP -> ingest, with feedback) on every page: no chart
    refused, numbers that agree with the raw rows, cost split by locale."""
    from demo.seed import seed
    from tracing.models import Trace

    made = seed(project=world.project, traces=150, days=7)
    traces = Trace.objects.filter(project=world.project)
    for path in ("overview/?range=30d", "cost/?range=30d&key=locale", "overview/?range=24h"):
        response = login(world.viewer).get(f"/p/{world.project.slug}/{path}")
        assert response.status_code == 200, path
        html = response.content.decode()
        assert "query was refused" not in html and "NaN" not in html, path
    html = overview(world, "range=30d").content.decode()
    assert big_number(html, "n-traces") == f"{traces.count():,}" == f"{len(made):,}"
    users = traces.exclude(user_id=None).values("user_id").distinct().count()
    assert big_number(html, "n-users") == f"{users:,}"
    cost = login(world.viewer).get(f"/p/{world.project.slug}/cost/?range=30d&key=locale").content.decode()
    locales = {t.metadata.get("locale") for t in traces if t.cost_usd is not None} - {None}
    assert set(figure(cost, "by-meta")["data"][0]["x"]) == locales


def test_top_users_are_ranked_by_cost_not_by_trace_count(world):
    # "busy" has 3 cheap traces, "big" one expensive one: big ranks first.
    start = datetime.now(UTC) - timedelta(hours=3)
    for i in range(3):
        TraceFactory(project=world.project, start_time=start + timedelta(minutes=i), user_id="busy",
                     cost_usd=Decimal("0.01"))
    TraceFactory(project=world.project, start_time=start, user_id="big", cost_usd=Decimal("5"))
    bars = figure(overview(world, "range=24h").content.decode(), "top-users")["data"][0]
    assert bars["y"] == ["big", "busy"] and bars["x"] == [pytest.approx(5), pytest.approx(0.03)]
