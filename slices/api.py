"""GET /api/v1/slices: quality, feedback and cost per segment with intervals and flags.

The view validates (SliceQuery.parse), calls slices_report and serializes; the
serializers only document the shapes in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ERRORS, PROJECT_PARAM, ErrorSerializer, IsoDateTimeField
from explorer.filters import RANGES
from explorer.serializers import TraceFilterSerializer
from projects.auth import project_access
from projects.models import Role
from slices import selectors, stats
from slices.selectors import FIXED_DIMENSIONS, METRICS, TOP2_DEFAULT, TOP_DEFAULT, TOP_MAX, SliceReport


class SlicesParamsSerializer(TraceFilterSerializer):
    """Documents the parameters; validation is SliceQuery.parse."""

    dimension = serializers.CharField(
        help_text=f"What to slice by: metadata.<key> (e.g. metadata.locale) or one of {', '.join(FIXED_DIMENSIONS)} "
                  "(user_cohort = the ISO week of the user's first trace)."
    )
    dimension2 = serializers.CharField(required=False, help_text="A second dimension, for intersections "
                                                                 "(locale × plan).")
    top = serializers.IntegerField(required=False, min_value=1, max_value=TOP_MAX,
                                   help_text=f"Values of `dimension` kept, by traffic (default {TOP_DEFAULT}); "
                                             "the rest are one slice, `other`.")
    top2 = serializers.IntegerField(required=False, min_value=1, max_value=TOP_MAX,
                                    help_text=f"Values of `dimension2` kept (default {TOP2_DEFAULT}).")
    min_n = serializers.IntegerField(required=False, min_value=5,
                                     help_text=f"Minimum observations (in the slice and in the rest) below which "
                                               f"nothing is flagged (default {stats.MIN_N}).")
    from_ = IsoDateTimeField(required=False, help_text="Window start (inclusive; default: 7 days before `to`).")
    to = IsoDateTimeField(required=False, help_text="Window end (exclusive; default: now).")
    range = serializers.ChoiceField(choices=[r for r in RANGES if r != "all"], required=False,
                                    help_text="Instead of from/to: the last 15m, 1h, 24h, 7d or 30d.")
    limit = None
    cursor = None


class CellSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    ci = serializers.ListField(child=serializers.FloatField(allow_null=True), min_length=2, max_length=2,
                               help_text="95% interval: Wilson (rates), Student-t (means), order statistics "
                                         "of the latency sample (percentiles).")
    n = serializers.IntegerField(help_text="Observations behind the value (traces, votes, scored traces).")
    rest = serializers.FloatField(allow_null=True, help_text="The same metric over all other traffic.")
    p_value = serializers.FloatField(allow_null=True, help_text="Slice against the rest; null = not tested.")
    test = serializers.CharField(help_text="two-proportion z-test, Fisher exact, Welch t-test or Mann-Whitney U.")
    p_adjusted = serializers.FloatField(allow_null=True, help_text="Benjamini-Hochberg over every tested cell.")
    ratio_to_best = serializers.FloatField(allow_null=True, help_text="value / best slice (best / value for metrics "
                                                                      "where lower is better).")
    flagged = serializers.BooleanField()


class SliceSerializer(serializers.Serializer):
    slice = serializers.DictField(child=serializers.CharField(allow_null=True),
                                  help_text='dimension -> value; null = not set, "other" = folded.')
    label = serializers.CharField()
    n = serializers.IntegerField()
    share = serializers.FloatField(help_text="Share of the window's traffic.")
    explorer = serializers.CharField(allow_null=True, help_text="The trace explorer filtered to this slice.")
    metrics = serializers.DictField(child=CellSerializer(), help_text=", ".join(METRICS))


class RateSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    ci = serializers.ListField(child=serializers.FloatField(allow_null=True))
    n = serializers.IntegerField()


class SlicesResponseSerializer(serializers.Serializer):
    slices = SliceSerializer(many=True)
    findings = serializers.ListField(child=serializers.CharField(), help_text="One sentence per flagged cell.")
    total = serializers.IntegerField()
    satisfaction = serializers.DictField(child=RateSerializer(),
                                         help_text="raw (share of votes) and traffic_weighted (post-stratified).")
    trends = serializers.JSONField(help_text="Per time bucket (`interval`: hour up to 2 days, else day): "
                                             "hallucination rate, thumbs-up rate and praised-but-unsupported per "
                                             "slice, and praised-but-unsupported per prompt version.")
    query = serializers.JSONField()


DESCRIPTION = f"""\
One row per slice of `dimension` (optionally × `dimension2`) over the window and the
explorer's filters, each with {', '.join(METRICS)}.

Every cell has a 95% interval and, where the metric has a direction, a test against the
rest of the traffic (two-proportion z-test, or Fisher exact for small counts; Welch for
means; Mann-Whitney for latency). p-values are corrected with Benjamini-Hochberg across
every tested cell of the answer. A cell is `flagged` when the corrected p < 0.05, the
slice and the rest both have at least `min_n` observations, and the gap is practically
large: the ratio to the best slice is below 0.8 (four-fifths rule; inverted for metrics
where lower is better) and the gap to the rest is at least {stats.MIN_RATE_GAP * 100:g}
points (rates) or {stats.MIN_RELATIVE_GAP * 100:g}% (means). See the README, "Bias slices".
"""


def cell_body(cell: stats.Cell) -> dict[str, Any]:
    return {"value": cell.value, "ci": [cell.low, cell.high], "n": cell.n, "rest": cell.rest,
            "p_value": cell.p_value, "test": cell.test, "p_adjusted": cell.p_adjusted,
            "ratio_to_best": cell.ratio_to_best, "flagged": cell.flagged}


def report_body(report: SliceReport, *, project) -> dict[str, Any]:
    dims = report.query.dimensions
    raw, weighted = report.raw_satisfaction, report.weighted_satisfaction
    return {
        "slices": [
            {"slice": s.as_dict(dims), "label": s.label(dims), "n": s.n, "share": s.share,
             "explorer": selectors.explorer_url(project, s.explorer_query) if s.explorer_query else None,
             "metrics": {name: cell_body(cell) for name, cell in s.cells.items()}}
            for s in report.slices
        ],
        "findings": report.findings,
        "total": report.total,
        "satisfaction": {
            "raw": {"value": raw.value, "ci": [raw.low, raw.high], "n": raw.n},
            "traffic_weighted": {"value": weighted.value, "ci": [weighted.low, weighted.high], "n": weighted.n},
        },
        "trends": {
            "interval": report.interval,
            "slices": [{"time": p.time.isoformat(), "slice": p.series, "metric": p.metric, "value": p.value, "n": p.n}
                       for p in report.trends],
            "praised_unsupported_by_prompt": [{"time": p.time.isoformat(), "prompt": p.series, "value": p.value,
                                               "n": p.n} for p in report.prompt_trends],
        },
        "query": {"dimensions": list(dims), "from": report.query.start.isoformat(),
                  "to": report.query.end.isoformat(), "filter": report.query.filter.as_dict(),
                  "min_n": report.query.min_n},
    }


class SlicesView(APIView):
    @extend_schema(
        operation_id="slices_report",
        summary="Metrics per user segment, with intervals, tests and flags",
        description=DESCRIPTION,
        parameters=[SlicesParamsSerializer, PROJECT_PARAM],
        responses={
            200: SlicesResponseSerializer,
            400: OpenApiResponse(ErrorSerializer, description="A parameter is invalid; `detail` names each one."),
            503: OpenApiResponse(ErrorSerializer, description="The query ran past the statement timeout."),
            **ERRORS,
        },
        examples=[
            OpenApiExample(
                "hallucination by locale",
                value={"slices": [{"slice": {"metadata.locale": "de-DE"}, "label": "locale de-DE", "n": 412,
                                   "share": 0.12, "explorer": "/p/support/traces/?metadata.locale=de-DE",
                                   "metrics": {"hallucination_rate": {
                                       "value": 0.142, "ci": [0.110, 0.181], "n": 400, "rest": 0.06,
                                       "p_value": 0.0002, "test": "two-proportion z-test", "p_adjusted": 0.003,
                                       "ratio_to_best": 0.42, "flagged": True}}}],
                       "findings": ["locale de-DE: hallucination rate 14.2% [11.0–18.1] vs 6.0% for others, "
                                    "p = 0.003 after correction, ratio 0.42"],
                       "total": 3400,
                       "satisfaction": {"raw": {"value": 0.71, "ci": [0.68, 0.74], "n": 900},
                                        "traffic_weighted": {"value": 0.66, "ci": [0.62, 0.70], "n": 900}},
                       "query": {"dimensions": ["metadata.locale"]}},
                response_only=True,
            )
        ],
        tags=["slices"],
    )
    def get(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        query = selectors.SliceQuery.parse(request.query_params, now=timezone.now())
        report = selectors.slices_report(project=access.project, query=query)
        return Response(report_body(report, project=access.project))
