"""GET /api/v1/drift: the current window against a baseline, feature by feature.

The view validates (drift.windows.parse_windows), calls drift.selectors.drift_report and
serializes; the serializers below only document the shapes in the OpenAPI schema.
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
from drift import selectors, stats
from drift.windows import BASELINE_DEFAULT, CURRENT_DEFAULT, parse_windows
from projects.auth import project_access
from projects.models import Role


class DriftParamsSerializer(serializers.Serializer):
    baseline_from = IsoDateTimeField(
        required=False, help_text=f"Baseline start (inclusive; default: {BASELINE_DEFAULT.days} days before "
                                  "baseline_to).")
    baseline_to = IsoDateTimeField(
        required=False, help_text="Baseline end (exclusive; default: `from`). Must not be after `from`.")
    from_ = IsoDateTimeField(
        required=False, help_text=f"Current window start (inclusive; default: {CURRENT_DEFAULT.days} days "
                                  "before `to`).")
    to = IsoDateTimeField(required=False, help_text="Current window end (exclusive; default: now).")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class WindowSerializer(serializers.Serializer):
    from_ = serializers.DateTimeField()
    to = serializers.DateTimeField()
    traces = serializers.IntegerField(help_text="Traces in the window.")
    sampled = serializers.IntegerField(
        help_text=f"Traces read for the features: all of them up to {selectors.FEATURE_SAMPLE:,}, "
                  "else a hash sample of about that many.")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class FeatureSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="input_chars, output_chars, input_tokens, output_tokens, latency_ms, "
                                           "cost_usd, model, prompt, environment, metadata.<key>, "
                                           "hallucination_rate, toxicity_rate or thumbs_up_rate.")
    label = serializers.CharField()
    kind = serializers.ChoiceField(choices=["numeric", "categorical", "rate"])
    group = serializers.ChoiceField(choices=["input", "output", "operations", "release", "metadata", "quality"])
    unit = serializers.CharField()
    psi = serializers.FloatField(allow_null=True, help_text="Population stability index; null below "
                                                            f"{stats.MIN_N} observations in either window.")
    status = serializers.ChoiceField(
        choices=[stats.OK, stats.WARN, stats.ALERT, stats.INSUFFICIENT],
        help_text=f"From PSI: ok below {stats.PSI_WARN}, warn below {stats.PSI_ALERT}, alert above.")
    test = serializers.ChoiceField(choices=["ks", "chi2"], allow_null=True,
                                   help_text="Kolmogorov-Smirnov (numeric) or chi-square (categories, rates).")
    statistic = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    baseline = serializers.JSONField(help_text="numeric: n, mean, p50, p95; categorical: n, shares "
                                               "(category -> share); rates add `rate`.")
    current = serializers.JSONField(help_text="Same shape as baseline.")


class EmbeddingSerializer(serializers.Serializer):
    auc = serializers.FloatField(allow_null=True, help_text="Cross-validated ROC AUC of a logistic regression "
                                                            "telling the windows' input embeddings apart.")
    threshold = serializers.FloatField(help_text="AUC above which the inputs drifted.")
    status = serializers.ChoiceField(choices=["ok", "drift", "insufficient"])
    centroid_distance = serializers.FloatField(allow_null=True,
                                               help_text="Cosine distance between the windows' mean vectors.")
    n_baseline = serializers.IntegerField(help_text=f"Baseline inputs read (at most {selectors.REFERENCE_SAMPLE:,};"
                                                    f" the classifier uses at most {selectors.EMBEDDING_SAMPLE:,}).")
    n_current = serializers.IntegerField(help_text=f"Current inputs read (at most {selectors.EMBEDDING_SAMPLE:,}).")


class ExampleSerializer(serializers.Serializer):
    trace_id = serializers.CharField()
    input = serializers.CharField(help_text=f"The input's first {selectors.TEXT_CHARS} characters.")


class TopicSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="Its top terms, comma-separated.")
    terms = serializers.ListField(child=serializers.CharField())
    size = serializers.IntegerField(help_text="Current inputs of the sample in the topic.")
    share = serializers.FloatField(help_text="Of the current sample.")
    mean_distance = serializers.FloatField(help_text="Mean cosine distance to the nearest baseline input.")
    nearest_baseline_distance = serializers.FloatField(
        allow_null=True, help_text="The topic's central input to its nearest input in the whole baseline window "
                                   "(pgvector); null when none was met within the index walk.")
    examples = ExampleSerializer(many=True)


class DriftResponseSerializer(serializers.Serializer):
    baseline = WindowSerializer()
    current = WindowSerializer()
    features = FeatureSerializer(many=True)
    embedding = EmbeddingSerializer()
    topics = TopicSerializer(many=True)


DRIFT_DESCRIPTION = f"""\
How the current window's traffic differs from a baseline's (default: the last
{CURRENT_DEFAULT.days} days against the {BASELINE_DEFAULT.days} before). Every feature has a population
stability index with a status (ok < {stats.PSI_WARN} <= warn < {stats.PSI_ALERT} <= alert) and a test:
Kolmogorov-Smirnov for numbers (lengths, tokens, latency, cost), chi-square for
categories (model, prompt version, environment, common metadata keys) and for the
quality rates (hallucination, toxicity, thumbs up), so a quality drift shows beside the
input drift that explains it.

Inputs by meaning: `embedding.auc` is how well a classifier tells the two windows'
input embeddings apart (0.5 = not at all; drift above {stats.AUC_DRIFT}), on at most
{selectors.EMBEDDING_SAMPLE:,} inputs per window. `topics` are clusters of current inputs far
(cosine distance > {stats.FAR_DISTANCE}) from every baseline input, labelled by their top terms.

Each window is read through a sample of at most {selectors.FEATURE_SAMPLE:,} traces (the same
traces on every call). See the README, "Drift".
"""


def report_body(report: selectors.DriftReport) -> dict[str, Any]:
    def window(w: selectors.Window, traces: int, sampled: int) -> dict[str, Any]:
        return {"from": w.start.isoformat(), "to": w.end.isoformat(), "traces": traces, "sampled": sampled}

    e = report.embedding
    return {
        "baseline": window(report.baseline, report.baseline_traces, report.baseline_sampled),
        "current": window(report.current, report.current_traces, report.current_sampled),
        "features": [
            {"name": f.name, "label": f.label, "kind": f.kind, "group": f.group, "unit": f.unit, "psi": f.psi,
             "status": f.status, "test": f.test, "statistic": f.statistic, "p_value": f.p_value,
             "baseline": f.baseline, "current": f.current}
            for f in report.features
        ],
        "embedding": {"auc": e.auc, "threshold": stats.AUC_DRIFT, "status": e.status,
                      "centroid_distance": e.centroid_distance, "n_baseline": e.n_baseline,
                      "n_current": e.n_current},
        "topics": [
            {"label": t.label, "terms": t.terms, "size": t.size, "share": t.share, "mean_distance": t.mean_distance,
             "nearest_baseline_distance": t.nearest_baseline_distance, "examples": t.examples}
            for t in report.topics
        ],
    }


class DriftView(APIView):
    @extend_schema(
        operation_id="drift_report",
        summary="Drift of the current window against a baseline",
        description=DRIFT_DESCRIPTION,
        parameters=[DriftParamsSerializer, PROJECT_PARAM],
        responses={
            200: DriftResponseSerializer,
            400: OpenApiResponse(ErrorSerializer, description="A parameter is invalid; `detail` names each one."),
            **ERRORS,
        },
        examples=[
            OpenApiExample(
                "A new topic and a latency shift",
                value={
                    "baseline": {"from": "2025-02-01T00:00:00+00:00", "to": "2025-03-01T00:00:00+00:00",
                                 "traces": 4120, "sampled": 4120},
                    "current": {"from": "2025-03-01T00:00:00+00:00", "to": "2025-03-08T00:00:00+00:00",
                                "traces": 1350, "sampled": 1350},
                    "features": [{"name": "latency_ms", "label": "Latency", "kind": "numeric",
                                  "group": "operations", "unit": "ms", "psi": 0.31, "status": "alert",
                                  "test": "ks", "statistic": 0.22, "p_value": 1e-12,
                                  "baseline": {"n": 4120, "mean": 1800.0, "p50": 1500.0, "p95": 4100.0},
                                  "current": {"n": 1350, "mean": 2600.0, "p50": 2300.0, "p95": 5200.0}}],
                    "embedding": {"auc": 0.63, "threshold": 0.55, "status": "drift", "centroid_distance": 0.04,
                                  "n_baseline": 1000, "n_current": 1000},
                    "topics": [{"label": "gpu, cuda, instances, quota", "terms": ["gpu", "cuda", "instances",
                                                                                  "quota"],
                                "size": 130, "share": 0.13, "mean_distance": 0.71,
                                "nearest_baseline_distance": 0.68,
                                "examples": [{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                                              "input": "Which GPU instances support CUDA 12?"}]}],
                },
                response_only=True,
            )
        ],
        tags=["drift"],
    )
    def get(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        baseline, current = parse_windows(request.query_params, now=timezone.now())
        report = selectors.drift_report(project=access.project, baseline=baseline, current=current)
        return Response(report_body(report))
