"""JSON API of saved dashboards (dashboards/api.py): create, read, add and remove charts,
bad chart input as a 400 naming the field, roles (viewer reads, member edits, outsider 404)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from dashboards.models import Chart, SavedDashboard
from dashboards.services import chart_add, dashboard_create
from tests.dashboards.conftest import END, T0
from tests.helpers import session_client

LIST = "/api/v1/dashboards"


def test_key_creates_a_dashboard_adds_a_chart_and_its_metrics_url_answers(world, api, sample):
    created = api.post(LIST, {"name": "Markets", "description": "by locale"}, format="json")
    assert created.status_code == 201, created.content
    board_id = created.json()["id"]
    assert created.json()["url"] == f"/p/{world.project.slug}/dashboards/{board_id}/"

    chart = api.post(f"{LIST}/{board_id}/charts", {"title": "Cost by locale", "measure": "cost_usd", "agg": "sum",
                                                     "group_by": ["metadata.locale"], "interval": "",
                                                     "filters": "tag=a", "chart_type": "bar"}, format="json")
    assert chart.status_code == 201, chart.content
    body = chart.json()
    assert (body["group_by"], body["filters"], body["top"], body["position"]) == (
        ["metadata.locale"], [["tag", "a"]], 10, 0)

    data = api.get(body["metrics_url"] + f"&from={T0.isoformat()}&to={END.isoformat()}".replace("+", "%2B"))
    assert data.status_code == 200, data.content
    assert [(p["group"]["metadata.locale"], round(p["value"], 4)) for p in data.json()["data"]] == [("de-DE", 0.08)]
    assert parse_qs(urlsplit(body["metrics_url"]).query)["tag"] == ["a"]

    detail = api.get(f"{LIST}/{board_id}").json()
    assert detail["name"] == "Markets" and [c["title"] for c in detail["charts"]] == ["Cost by locale"]
    assert api.get(LIST).json()["dashboards"][0]["name"] == "Markets"


def test_bad_chart_is_a_400_naming_the_field_and_duplicates_are_409(world, api):
    board = dashboard_create(project=world.project, name="B")
    response = api.post(f"{LIST}/{board.pk}/charts", {"title": "x", "measure": "traces", "agg": "p95"}, format="json")
    assert response.status_code == 400 and "p95 does not fit traces" in response.json()["error"]["detail"]["agg"][0]
    response = api.post(f"{LIST}/{board.pk}/charts", {"title": "x", "measure": "traces", "group_by": ["colour"]},
                        format="json")
    assert response.status_code == 400 and "group_by" in response.json()["error"]["detail"]
    assert api.post(LIST, {"name": "B"}, format="json").status_code == 409
    assert not Chart.objects.exists()


def test_roles(world):
    board = dashboard_create(project=world.project, name="B")
    chart = chart_add(dashboard=board, title="t", measure="traces", agg="count", group_by=[], top=10,
                      interval="auto", filters=[], chart_type="line")
    viewer, member, outsider = (session_client(u) for u in (world.viewer, world.member, world.outsider))
    q = f"?project={world.project.slug}"
    assert viewer.get(f"{LIST}/{board.pk}{q}").status_code == 200
    assert viewer.post(f"{LIST}{q}", {"name": "V"}, format="json").status_code == 403
    assert viewer.delete(f"{LIST}/{board.pk}/charts/{chart.pk}{q}").status_code == 403
    assert outsider.get(f"{LIST}/{board.pk}{q}").status_code == 404
    theirs = dashboard_create(project=world.other_project, name="Theirs")
    assert member.get(f"{LIST}/{theirs.pk}{q}").status_code == 404
    assert member.delete(f"{LIST}/{board.pk}/charts/{chart.pk}{q}").status_code == 204
    assert member.delete(f"{LIST}/{board.pk}{q}").status_code == 204
    assert not SavedDashboard.objects.filter(pk=board.pk).exists()
