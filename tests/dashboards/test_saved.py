"""Saved dashboards and the chart builder (dashboards/saved_views.py, forms.py, services.py):
roles (viewer reads, member edits, outsider 404), form errors naming the field, and a
saved chart's values on its page against the sample's hand-computed aggregates."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from dashboards.models import Chart, SavedDashboard
from dashboards.services import chart_add, dashboard_create
from tests.dashboards.conftest import END, T0
from tests.dashboards.test_pages import big_number, card, figure

WINDOW = f"from={T0:%Y-%m-%dT%H:%M}&to={END:%Y-%m-%dT%H:%M}"


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def base(world) -> str:
    return f"/p/{world.project.slug}/dashboards/"


@pytest.fixture
def board(world):
    return dashboard_create(project=world.project, name="Support quality", user=world.owner)


def add(board, **kwargs):
    fields = {"title": "Chart", "measure": "traces", "agg": "count", "group_by": [], "top": 10,
              "interval": "auto", "filters": [], "chart_type": "line"} | kwargs
    return chart_add(dashboard=board, **fields)


def chart_post(world, board, user=None, **fields):
    data = {"title": "Cost by locale", "measure": "cost_usd", "agg": "sum", "group_by_1": "metadata.locale",
            "group_by_2": "", "top": "", "interval": "", "filters": "", "chart_type": "bar"} | fields
    return login(user or world.member).post(f"{base(world)}{board.pk}/charts/new/", data)


def test_member_creates_a_dashboard_and_a_chart_and_a_viewer_reads_it(world, sample):
    response = login(world.member).post(base(world), {"name": "Locales", "description": "cost per market"})
    board = SavedDashboard.objects.get(project=world.project, name="Locales")
    assert response.status_code == 302 and response["Location"] == f"{base(world)}{board.pk}/charts/new/"

    response = chart_post(world, board, filters="tag=a")
    assert response.status_code == 302, response.content.decode()[:2000]
    chart = Chart.objects.get(dashboard=board)
    assert (chart.measure, chart.agg, chart.group_by, chart.filters, chart.chart_type, chart.interval) == (
        "cost_usd", "sum", ["metadata.locale"], [["tag", "a"]], "bar", "")

    html = login(world.viewer).get(f"{base(world)}{board.pk}/?{WINDOW}").content.decode()
    bars = figure(html, f"c{chart.pk}")["data"][0]
    # tag a: t1 .01, t2 .02, t6 .05, all de-DE.
    assert dict(zip(bars["x"], bars["y"], strict=True)) == {"de-DE": pytest.approx(0.08)}
    assert "Add chart" not in html and "Remove" not in html  # no edit controls for viewers
    listing = login(world.viewer).get(base(world)).content.decode()
    assert "Locales" in listing and "New dashboard" not in listing


def test_saved_number_table_and_histogram_charts(world, sample, board):
    number = add(board, title="Thumbs", measure="score:user_thumbs", agg="rate", chart_type="number", interval="")
    table = add(board, title="Latency by env", measure="latency_ms", agg="max", group_by=["environment"],
                chart_type="table", interval="")
    hist = add(board, title="Cost per user", measure="cost_usd", agg="sum", group_by=["user_id"],
               chart_type="histogram", interval="")
    html = login(world.viewer).get(f"{base(world)}{board.pk}/?{WINDOW}").content.decode()

    assert big_number(html, f"c{number.pk}") == "75.00 %"
    rows = re.findall(r"<tr><td>([^<]*)</td><td class=\"num\">(?:<a [^>]*>)?([^<]*)", card(html, f"c{table.pk}"))
    assert rows == [("prod", "1,000"), ("staging", "600")]
    # Per user: u1 .03, u3 .15, (none) .04 (t4); u2 has no priced trace.
    assert sorted(figure(html, f"c{hist.pk}")["data"][0]["x"]) == pytest.approx([0.03, 0.04, 0.15])


def test_saved_chart_with_its_own_filter_and_an_empty_state(world, sample, board):
    chart = add(board, title="Hallucination on llama", measure="score:hallucination", agg="rate",
                filters=[["model", "gpt-4o-mini"], ["user_id", "u1"]])
    html = login(world.viewer).get(f"{base(world)}{board.pk}/?{WINDOW}").content.decode()
    assert "The filter excludes every trace in this window (6 traces without it)" in card(html, f"c{chart.pk}")


def test_saved_hourly_chart_over_a_long_window_says_why_not(world, board):
    chart = add(board, title="Hourly", interval="hour")
    html = login(world.viewer).get(f"{base(world)}{board.pk}/?range=30d").content.decode()
    text = card(html, f"c{chart.pk}")
    assert "This chart's query was refused" in text and "hour covers at most 14 days" in text


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"measure": "latency"}, "measure", "is not a measure"),
    ({"measure": "traces", "agg": "p95"}, "agg", "p95 does not fit traces"),
    ({"group_by_1": "colour"}, "group_by_1", "is not a dimension"),
    ({"group_by_1": "user_id", "top": "500"}, "top", "less than or equal to 100"),
    ({"filters": "colour=red"}, "filters", "colour: unknown query parameter"),
    ({"filters": "range=7d"}, "filters", "the dashboard&#x27;s time range"),
    ({"chart_type": "number"}, "group_by_1", "a number shows one value"),
    ({"chart_type": "line", "interval": ""}, "interval", "needs a time axis"),
    ({"chart_type": "histogram", "group_by_1": ""}, "group_by_1", "a histogram shows"),
    ({"title": ""}, "title", "required"),
])
def test_bad_builder_input_is_a_form_error_on_the_field(world, board, fields, field, words):
    response = chart_post(world, board, **fields)
    assert response.status_code == 400
    html = response.content.decode()
    errors = re.search(rf'<ul class="errorlist" id="err-{field}">(.*?)</ul>', html, re.S)
    assert errors and words in errors.group(1), html[html.find("errorlist"):][:1500]
    assert not Chart.objects.exists()


def test_duplicate_dashboard_name_is_a_form_error(world, board):
    response = login(world.member).post(base(world), {"name": "Support quality"})
    assert response.status_code == 400 and "already exists" in response.content.decode()


def test_roles_viewer_reads_member_edits_outsider_404(world, board):
    chart = add(board)
    detail, new = f"{base(world)}{board.pk}/", f"{base(world)}{board.pk}/charts/new/"
    delete_chart = f"{base(world)}{board.pk}/charts/{chart.pk}/delete/"
    for user in (world.viewer, world.reviewer):
        client = login(user)
        assert client.get(base(world)).status_code == 200
        assert client.get(detail).status_code == 200
        assert client.get(new).status_code == 403
        assert client.post(base(world), {"name": "Mine"}).status_code == 403
        assert client.post(delete_chart).status_code == 403
        assert client.post(f"{detail}delete/").status_code == 403
    outsider = login(world.outsider)
    for url in (base(world), detail, new):
        assert outsider.get(url).status_code == 404
    assert outsider.post(delete_chart).status_code == 404
    assert Chart.objects.filter(pk=chart.pk).exists()
    # Another project's dashboard id under this project's URL is not found either.
    theirs = dashboard_create(project=world.other_project, name="Theirs")
    assert login(world.member).get(f"{base(world)}{theirs.pk}/").status_code == 404

    member = login(world.member)
    assert member.get(new).status_code == 200
    assert member.post(delete_chart).status_code == 302 and not Chart.objects.filter(pk=chart.pk).exists()
    assert member.post(f"{detail}delete/").status_code == 302 and not SavedDashboard.objects.filter(
        pk=board.pk).exists()


def test_charts_keep_their_order(world, board):
    first, second = add(board, title="A"), add(board, title="B")
    assert (first.position, second.position) == (0, 1)
    html = login(world.viewer).get(f"{base(world)}{board.pk}/").content.decode()
    assert html.index(">A</h2>") < html.index(">B</h2>")


def test_a_member_saves_an_overview_chart_to_a_dashboard(world, sample, board):
    html = login(world.member).get(f"/p/{world.project.slug}/cost/?{WINDOW}&environment=prod").content.decode()
    link = re.search(r'<a href="([^"]+)" class="save">', card(html, "by-model")).group(1).replace("&amp;", "&")
    assert link.startswith(base(world) + "?")

    listing = login(world.member).get(link).content.decode()
    new_url = re.search(rf'<a href="({base(world)}{board.pk}/charts/new/\?[^"]+)">Support quality</a>',
                        listing).group(1).replace("&amp;", "&")
    builder = login(world.member).get(new_url).content.decode()
    assert 'value="cost_usd"' in builder and 'value="model"' in builder and "environment=prod" in builder
    assert re.search(r'<option value="bar" selected>', builder)

    response = chart_post(world, board, title="By model", measure="cost_usd", agg="sum", group_by_1="model",
                          top="15", interval="", filters="environment=prod", chart_type="bar")
    assert response.status_code == 302
    chart = Chart.objects.get(dashboard=board)
    assert chart.filters == [["environment", "prod"]] and chart.top == 15
    # Viewers get no save links.
    html = login(world.viewer).get(f"/p/{world.project.slug}/cost/?{WINDOW}").content.decode()
    assert 'class="save"' not in html


def test_save_link_to_a_new_dashboard_carries_the_chart(world):
    prefill = "title=Traces&measure=traces&agg=count&interval=auto&chart_type=line"
    response = login(world.member).post(base(world), {"name": "Fresh", "prefill": prefill})
    board = SavedDashboard.objects.get(name="Fresh")
    assert response["Location"] == f"{base(world)}{board.pk}/charts/new/?{prefill}"
