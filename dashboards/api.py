"""REST API of the metrics layer: GET /api/v1/metrics and GET /api/v1/metrics/dimensions.

Views validate (MetricsQuery.parse), call one function of dashboards/metrics.py and
serialize; the serializers below only document the shapes in the OpenAPI schema.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ERRORS, PROJECT_PARAM, ErrorSerializer, IsoDateTimeField
from dashboards import selectors
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
