"""REST API of the metrics layer: GET /api/v1/metrics and GET /api/v1/metrics/dimensions.

Views validate (MetricsQuery.parse), call one function of dashboards/metrics.py and
serialize; the serializers below only document the shapes in the OpenAPI schema.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ERRORS, PROJECT_PARAM, ErrorSerializer, IsoDateTimeField
from config.errors import NotFound, ValidationFailed
from dashboards import selectors, services
from dashboards.forms import ChartForm
from dashboards.metrics import AGGS, GROUP_DIMENSIONS, INTERVALS, MEASURES, TOP_DEFAULT, TOP_MAX, parse_window
from explorer.filters import RANGES
from explorer.serializers import TraceFilterSerializer
from projects.auth import project_access
from projects.models import Role


class MetricsParamsSerializer(TraceFilterSerializer):
    """Documents the parameters; validation is MetricsQuery.parse."""

    measure = serializers.CharField(
        help_text=f"One of {', '.join(MEASURES)}, or score:<name> (any score name, e.g. score:user_thumbs)."
    )
    agg = serializers.ChoiceField(
        choices=list(AGGS), required=False,
        help_text="How values are aggregated; must fit the measure (p95 of traces or rate of latency_ms is a 400). "
                  "Default: count for traces/users/sessions, rate for errors and signals, avg otherwise.",
    )
    group_by = serializers.ListField(
        child=serializers.CharField(), required=False, max_length=2,
        help_text=f"Up to two of {', '.join(GROUP_DIMENSIONS)} or metadata.<key>; repeat the parameter or "
                  "give a comma list.",
    )
    top = serializers.CharField(
        required=False,
        help_text=f"Groups kept per dimension, by n over the whole window (1..{TOP_MAX}, default {TOP_DEFAULT}); "
                  "the rest are folded into `other`. `all` keeps every group (not for user_id or metadata "
                  "keys with very many values).",
    )
    interval = serializers.ChoiceField(
        choices=list(INTERVALS), required=False,
        help_text="Time buckets (UTC; weeks start on Monday). Without it, one value per group for the window. "
                  "hour covers at most SPYGLASS_METRICS_MAX_HOURLY_DAYS (default 14) days.",
    )
    from_ = IsoDateTimeField(required=False, help_text="Window start (inclusive; default: 7 days before `to`).")
    to = IsoDateTimeField(required=False, help_text="Window end (exclusive; default: now).")
    range = serializers.ChoiceField(choices=[r for r in RANGES if r != "all"], required=False,
                                    help_text="Instead of from/to: the last 15m, 1h, 24h, 7d or 30d.")
    limit = None
    cursor = None


class WindowParamsSerializer(serializers.Serializer):
    from_ = IsoDateTimeField(required=False, help_text="Window start (inclusive; default: 7 days before `to`).")
    to = IsoDateTimeField(required=False, help_text="Window end (exclusive; default: now).")
    range = serializers.ChoiceField(choices=[r for r in RANGES if r != "all"], required=False,
                                    help_text="Instead of from/to: the last 15m, 1h, 24h, 7d or 30d.")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class PointSerializer(serializers.Serializer):
    time = serializers.DateTimeField(allow_null=True, help_text="Bucket start (UTC); null without interval.")
    group = serializers.DictField(child=serializers.CharField(allow_null=True),
                                  help_text='Dimension -> value; "other" for folded groups, null for no value.')
    value = serializers.FloatField(allow_null=True, help_text="null when n is 0 (count: 0).")
    n = serializers.IntegerField(help_text="Observations behind the value (traces, scores, users, ...).")


class MetricsResponseSerializer(serializers.Serializer):
    data = PointSerializer(many=True)
    unit = serializers.CharField(help_text='"traces", "users", "sessions", "ms", "USD", "tokens", "share", '
                                           '"scores" or the score\'s unit.')
    source = serializers.ChoiceField(choices=["raw", "rollup", "rollup+raw"],
                                     help_text="Where the numbers came from.")
    approximate = serializers.BooleanField(help_text="True when percentiles came from rollup histograms.")
    query = serializers.JSONField(help_text="The normalised query that was answered.")


class DimensionSerializer(serializers.Serializer):
    name = serializers.CharField()
    distinct = serializers.IntegerField(help_text="Distinct non-null values in the window.")
    traces = serializers.IntegerField(help_text="Traces in the window with a value.")


class DimensionsResponseSerializer(serializers.Serializer):
    dimensions = DimensionSerializer(many=True)


METRICS_DESCRIPTION = """\
One aggregate per (time bucket, group) over the project's traces or scores; every chart,
page and alert of Spyglass reads this same query. Filters are the trace explorer's
(`model`, `environment`, `tag`, `metadata.<key>`, `score=hallucination>0.5`, ...), so a
chart's point opens the explorer on exactly its traces.

Semantics: a trace belongs to the bucket of its start time, a score to its trace's.
`n` is the number of observations behind `value` (traces with a value, scores, distinct
users). `value` is null when `n` is 0 (a `count` is 0). With `interval`, every group that
has data gets a point in every bucket. See the README, "Dashboards: metrics API".
"""


def _result_body(result: selectors.MetricsResult) -> dict[str, Any]:
    return {
        "data": [
            {"time": p.time.isoformat() if p.time else None, "group": p.group, "value": p.value, "n": p.n}
            for p in result.data
        ],
        "unit": result.unit,
        "source": result.source,
        "approximate": result.approximate,
        "query": result.query.as_dict(),
    }


class MetricsView(APIView):
    @extend_schema(
        operation_id="metrics_query",
        summary="Query a metric",
        description=METRICS_DESCRIPTION,
        parameters=[MetricsParamsSerializer, PROJECT_PARAM],
        responses={
            200: MetricsResponseSerializer,
            400: OpenApiResponse(ErrorSerializer, description="A parameter is invalid; `detail` names each one."),
            503: OpenApiResponse(ErrorSerializer, description="The query ran past the statement timeout."),
            **ERRORS,
        },
        examples=[
            OpenApiExample(
                "p95 latency per day by locale",
                value={"data": [{"time": "2025-03-01T00:00:00+00:00", "group": {"metadata.locale": "de-DE"},
                                 "value": 412.0, "n": 57}],
                       "unit": "ms", "source": "raw", "approximate": False,
                       "query": {"measure": "latency_ms", "agg": "p95"}},
                response_only=True,
            )
        ],
        tags=["metrics"],
    )
    def get(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        query = selectors.MetricsQuery.parse(
            request.query_params,
            now=timezone.now(),
            max_hourly_window=timedelta(days=settings.SPYGLASS_METRICS_MAX_HOURLY_DAYS),
        )
        result = selectors.metrics_query(project=access.project, query=query)
        return Response(_result_body(result))


class MetricDimensionsView(APIView):
    @extend_schema(
        operation_id="metrics_dimensions",
        summary="Dimensions a metric can be grouped by",
        description=(
            "The fixed dimensions, then every metadata key seen on the project's traces in the window "
            "(most used first, at most 200), each with its number of distinct values: what `group_by` "
            "accepts. `from` / `to` / `range` as for /api/v1/metrics (default: the last 7 days)."
        ),
        parameters=[WindowParamsSerializer, PROJECT_PARAM],
        responses={200: DimensionsResponseSerializer, 400: OpenApiResponse(ErrorSerializer), **ERRORS},
        tags=["metrics"],
    )
    def get(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        start, end = parse_window(request.query_params, now=timezone.now())
        dimensions = selectors.metric_dimensions(project=access.project, start=start, end=end)
        return Response({"dimensions": [{"name": d.name, "distinct": d.distinct, "traces": d.traces}
                                        for d in dimensions]})


# ------------------------------------------------------------------------ saved dashboards
# GET/POST /api/v1/dashboards, GET/DELETE /api/v1/dashboards/<id>,
# POST /api/v1/dashboards/<id>/charts, DELETE /api/v1/dashboards/<id>/charts/<chart_id>.
# Reads need the viewer role, writes the member role (a secret key acts as a member);
# a chart is validated by the page's builder form, so API and page refuse the same input.

DASHBOARD_TAGS = ["dashboards"]
_FORM_FIELD_NAMES = {"group_by_1": "group_by", "group_by_2": "group_by"}


class DashboardInSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class ChartInSerializer(serializers.Serializer):
    """Shape only; the values are checked by dashboards.forms.ChartForm (the metrics
    layer's own rules)."""

    title = serializers.CharField(max_length=200)
    measure = serializers.CharField(max_length=120)
    agg = serializers.CharField(required=False, allow_blank=True, default="")
    group_by = serializers.ListField(child=serializers.CharField(max_length=210), required=False, default=list)
    top = serializers.IntegerField(required=False, allow_null=True, default=None)
    interval = serializers.CharField(required=False, allow_blank=True, default="auto",
                                     help_text='"auto" (follows the window), hour, day, week, or "" for none.')
    filters = serializers.CharField(required=False, allow_blank=True, default="",
                                    help_text="The explorer's filter language as a query string, "
                                              "e.g. model=gpt-4o&metadata.plan=pro")
    chart_type = serializers.ChoiceField(choices=["line", "stacked_bar", "bar", "number", "table", "histogram"],
                                         default="line")


class ChartOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    measure = serializers.CharField()
    agg = serializers.CharField()
    group_by = serializers.ListField(child=serializers.CharField())
    top = serializers.IntegerField()
    interval = serializers.CharField()
    filters = serializers.JSONField(help_text="The chart's own trace filter as (parameter, value) pairs.")
    chart_type = serializers.CharField()
    position = serializers.IntegerField()
    metrics_url = serializers.CharField(help_text="GET this (plus from/to or range) for the chart's data.")


class DashboardOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    url = serializers.CharField(help_text="The dashboard's page.")
    updated_at = serializers.DateTimeField()
    charts = ChartOutSerializer(many=True, required=False)


def _chart_body(chart) -> dict[str, Any]:
    params = [("measure", chart.measure), ("agg", chart.agg), *(("group_by", g) for g in chart.group_by),
              ("top", str(chart.top))]
    if chart.interval and chart.interval != "auto":
        params.append(("interval", chart.interval))
    params += [tuple(pair) for pair in chart.filters]
    return {"id": chart.pk, "title": chart.title, "measure": chart.measure, "agg": chart.agg,
            "group_by": list(chart.group_by), "top": chart.top, "interval": chart.interval, "filters": chart.filters,
            "chart_type": chart.chart_type, "position": chart.position,
            "metrics_url": "/api/v1/metrics?" + urlencode(params)}


def _dashboard_body(dashboard, *, charts: list | None = None) -> dict[str, Any]:
    body = {"id": dashboard.pk, "name": dashboard.name, "description": dashboard.description,
            "url": reverse("dashboards-saved-detail", kwargs={"project_slug": dashboard.project.slug,
                                                               "dashboard_id": dashboard.pk}),
            "updated_at": dashboard.updated_at.isoformat()}
    if charts is not None:
        body["charts"] = [_chart_body(c) for c in charts]
    return body


def _dashboard_or_404(access, dashboard_id: int):
    dashboard = selectors.dashboard_get(project=access.project, dashboard_id=dashboard_id)
    if dashboard is None:
        raise NotFound(f"No dashboard {dashboard_id} in this project.")
    return dashboard


class DashboardListSerializer(serializers.Serializer):
    dashboards = DashboardOutSerializer(many=True)


class DashboardListView(APIView):
    # The body is {"dashboards": [...]}; the schema said a bare array (found by schemathesis).
    @extend_schema(operation_id="dashboards_list", summary="List saved dashboards", parameters=[PROJECT_PARAM],
                   responses={200: DashboardListSerializer, **ERRORS}, tags=DASHBOARD_TAGS)
    def get(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        return Response({"dashboards": [_dashboard_body(d) for d in selectors.dashboards_for(project=access.project)]})

    @extend_schema(operation_id="dashboards_create", summary="Create a dashboard", parameters=[PROJECT_PARAM],
                   request=DashboardInSerializer,
                   responses={201: DashboardOutSerializer, 400: OpenApiResponse(ErrorSerializer),
                              409: OpenApiResponse(ErrorSerializer, description="The name is taken."), **ERRORS},
                   tags=DASHBOARD_TAGS)
    def post(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.MEMBER)
        body = DashboardInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = access.user if getattr(access.user, "pk", None) else None
        dashboard = services.dashboard_create(project=access.project, name=body.validated_data["name"],
                                              description=body.validated_data["description"], user=user)
        return Response(_dashboard_body(dashboard, charts=[]), status=201)


class DashboardDetailView(APIView):
    @extend_schema(operation_id="dashboards_get", summary="A dashboard and its charts", parameters=[PROJECT_PARAM],
                   responses={200: DashboardOutSerializer, **ERRORS}, tags=DASHBOARD_TAGS)
    def get(self, request: Request, dashboard_id: int) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        dashboard = _dashboard_or_404(access, dashboard_id)
        return Response(_dashboard_body(dashboard, charts=selectors.charts_of(dashboard=dashboard)))

    @extend_schema(operation_id="dashboards_delete", summary="Delete a dashboard", parameters=[PROJECT_PARAM],
                   responses={204: None, **ERRORS}, tags=DASHBOARD_TAGS)
    def delete(self, request: Request, dashboard_id: int) -> Response:
        access = project_access(request, required_role=Role.MEMBER)
        services.dashboard_delete(dashboard=_dashboard_or_404(access, dashboard_id))
        return Response(status=204)


class ChartCreateView(APIView):
    @extend_schema(operation_id="dashboards_chart_add", summary="Add a chart to a dashboard",
                   parameters=[PROJECT_PARAM], request=ChartInSerializer,
                   responses={201: ChartOutSerializer,
                              400: OpenApiResponse(ErrorSerializer, description="`detail` names each bad field."),
                              **ERRORS},
                   tags=DASHBOARD_TAGS)
    def post(self, request: Request, dashboard_id: int) -> Response:
        access = project_access(request, required_role=Role.MEMBER)
        dashboard = _dashboard_or_404(access, dashboard_id)
        body = ChartInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        group_by = list(data["group_by"])
        if len(group_by) > 2:
            raise ValidationFailed("group_by: at most 2 dimensions", detail={"group_by": ["at most 2 dimensions"]})
        form = ChartForm({"title": data["title"], "measure": data["measure"], "agg": data["agg"],
                          "group_by_1": group_by[0] if group_by else "",
                          "group_by_2": group_by[1] if len(group_by) > 1 else "",
                          "top": "" if data["top"] is None else str(data["top"]), "interval": data["interval"],
                          "filters": data["filters"], "chart_type": data["chart_type"]})
        if not form.is_valid():
            detail: dict[str, list[str]] = {}
            for field, problems in form.errors.items():
                detail.setdefault(_FORM_FIELD_NAMES.get(field, field), []).extend(problems)
            message = "; ".join(f"{key}: {' '.join(problems)}" for key, problems in detail.items())
            raise ValidationFailed(message, detail=detail)
        clean = form.cleaned_data
        user = access.user if getattr(access.user, "pk", None) else None
        chart = services.chart_add(dashboard=dashboard, title=clean["title"], measure=clean["measure"],
                                   agg=clean["agg"], group_by=clean["group_by"], top=clean["top"],
                                   interval=clean["interval"], filters=clean["filter_pairs"],
                                   chart_type=clean["chart_type"], user=user)
        return Response(_chart_body(chart), status=201)


class ChartDeleteView(APIView):
    @extend_schema(operation_id="dashboards_chart_delete", summary="Remove a chart", parameters=[PROJECT_PARAM],
                   responses={204: None, **ERRORS}, tags=DASHBOARD_TAGS)
    def delete(self, request: Request, dashboard_id: int, chart_id: int) -> Response:
        from config.errors import NotFound
        access = project_access(request, required_role=Role.MEMBER)
        chart = _dashboard_or_404(access, dashboard_id).charts.filter(pk=chart_id).first()
        if chart is None:
            raise NotFound(f"No chart {chart_id} on this dashboard.")
        services.chart_delete(chart=chart)
        return Response(status=204)
