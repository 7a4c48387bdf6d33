"""REST API of experiments.

POST/GET /api/v1/experiments, GET /api/v1/experiments/<id> (status, progress, metric
summaries and a page of results), POST /api/v1/experiments/<id>/cancel. Reads need the
viewer role, writes the member role (a secret key acts as a member).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ERRORS, PROJECT_PARAM, ErrorSerializer
from config.errors import ValidationFailed
from experiments import evaluators, selectors, services
from experiments.models import Experiment, ExperimentResult, Status
from projects.auth import project_access
from projects.models import Role

TAGS = ["experiments"]
ID_PARAM = OpenApiParameter("experiment_id", OpenApiTypes.INT, OpenApiParameter.PATH)
BODY_FIELDS = frozenset({"name", "dataset", "dataset_version", "split", "prompt", "prompt_version", "prompt_label",
                         "model", "params", "evaluators", "concurrency", "rate_limit_per_minute", "cost_cap_usd",
                         "cost_per_call_usd", "kind", "custom_evaluators"})


class ExperimentInSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    dataset = serializers.CharField(max_length=200, help_text="The dataset's name.")
    dataset_version = serializers.IntegerField(required=False, allow_null=True, min_value=0,
                                               help_text="Default: the dataset's current version (pinned now).")
    split = serializers.ChoiceField(choices=["train", "test"], required=False, allow_null=True,
                                    help_text="Only this split's items (the version must have a split).")
    kind = serializers.ChoiceField(choices=["prompt", "sdk"], required=False, default="prompt",
                                   help_text="prompt: the server calls the model with a registry prompt; sdk: "
                                             "spyglass.run_experiment runs your code and posts the results.")
    prompt = serializers.CharField(max_length=128, required=False, allow_null=True,
                                   help_text="A prompt of the registry (required for kind prompt).")
    custom_evaluators = serializers.ListField(child=serializers.CharField(max_length=64), required=False,
                                              help_text="kind sdk: names of the SDK's own evaluators, whose "
                                                        "values come with the posted results.")
    prompt_version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    prompt_label = serializers.CharField(max_length=64, required=False, allow_null=True,
                                         help_text="Resolved to a version when the run is created (default: "
                                                   "production, else latest).")
    model = serializers.CharField(max_length=200, required=False, allow_blank=True, default="",
                                  help_text="Default: the prompt version's config `model`, else the connection's.")
    params = serializers.JSONField(required=False, help_text="Call parameters: temperature, max_tokens, top_p, seed, "
                                                             "stop, presence_penalty, frequency_penalty.")
    evaluators = serializers.JSONField(
        required=False, help_text="Names or objects: " + "; ".join(f"{k}: {v}" for k, v in
                                                                    evaluators.DESCRIPTIONS.items())
        + '. regex needs {"name": "regex", "pattern": "..."}, json_schema {"name": "json_schema", "schema": {...}}.')
    concurrency = serializers.IntegerField(required=False, default=4, min_value=1, max_value=services.MAX_CONCURRENCY)
    rate_limit_per_minute = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                                     max_value=services.MAX_RATE_PER_MINUTE)
    cost_cap_usd = serializers.DecimalField(max_digits=12, decimal_places=4, required=False, allow_null=True,
                                            min_value=0, help_text="The run stops before spending more.")
    cost_per_call_usd = serializers.DecimalField(max_digits=12, decimal_places=6, required=False, allow_null=True,
                                                 min_value=0, help_text="For models without a known price.")


class MetricSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["pass_fail", "numeric"])
    n = serializers.IntegerField(help_text="Items the evaluator scored.")
    mean = serializers.FloatField(allow_null=True, help_text="Pass rate, or mean value.")
    low = serializers.FloatField(allow_null=True, help_text="Pass/fail: Wilson 95% interval, low end.")
    high = serializers.FloatField(allow_null=True)
    higher_is_better = serializers.BooleanField()


class ResultSerializer(serializers.Serializer):
    item_id = serializers.IntegerField()
    trace_id = serializers.CharField(help_text="The trace of this item's call (blank if no call was made).")
    output = serializers.CharField(allow_null=True)
    expected_output = serializers.CharField(allow_null=True)
    error = serializers.CharField()
    latency_ms = serializers.FloatField(allow_null=True)
    cost_usd = serializers.CharField(allow_null=True)
    attempts = serializers.IntegerField()
    scores = serializers.DictField(child=serializers.FloatField())


class ExperimentOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    status = serializers.ChoiceField(choices=Status.choices)
    stop_reason = serializers.CharField(help_text='"", "cost_cap", "cancelled" or "error".')
    error = serializers.CharField()
    dataset = serializers.CharField()
    dataset_version = serializers.IntegerField()
    split = serializers.CharField(allow_null=True)
    prompt = serializers.CharField(allow_null=True)
    prompt_version = serializers.IntegerField(allow_null=True)
    prompt_label = serializers.CharField()
    model = serializers.CharField()
    evaluators = serializers.JSONField()
    total = serializers.IntegerField()
    done = serializers.IntegerField(help_text="Items with a result (failed ones included).")
    failed = serializers.IntegerField()
    cost_usd = serializers.CharField()
    cost_cap_usd = serializers.CharField(allow_null=True)
    tag = serializers.CharField(help_text="Every trace of the run carries this tag.")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class ExperimentDetailSerializer(ExperimentOutSerializer):
    metrics = MetricSerializer(many=True)
    results = ResultSerializer(many=True)
    next_cursor = serializers.IntegerField(allow_null=True, help_text="Pass as `cursor` for the next page.")


class ExperimentListSerializer(serializers.Serializer):
    experiments = ExperimentOutSerializer(many=True)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def experiment_body(exp: Experiment) -> dict[str, Any]:
    return {
        "id": exp.pk, "name": exp.name, "kind": exp.kind, "status": exp.status, "stop_reason": exp.stop_reason,
        "error": exp.error, "dataset": exp.dataset.name, "dataset_version": exp.dataset_version, "split": exp.split,
        "prompt": exp.prompt.name if exp.prompt else None,
        "prompt_version": exp.prompt_version.version if exp.prompt_version else None,
        "prompt_label": exp.prompt_label, "model": exp.model, "evaluators": exp.evaluators, "total": exp.total,
        "done": exp.done_count, "failed": exp.failed_count, "cost_usd": str(exp.cost_usd),
        "cost_cap_usd": None if exp.cost_cap_usd is None else str(exp.cost_cap_usd), "tag": exp.tag,
        "created_at": _iso(exp.created_at), "started_at": _iso(exp.started_at), "finished_at": _iso(exp.finished_at),
    }


def result_body(row: ExperimentResult) -> dict[str, Any]:
    return {"item_id": row.item_id, "trace_id": row.trace_id, "output": row.output,
            "expected_output": row.item.expected_output, "error": row.error, "latency_ms": row.latency_ms,
            "cost_usd": None if row.cost_usd is None else str(row.cost_usd), "attempts": row.attempts,
            "scores": row.scores}


def _int(raw: Any, name: str, low: int, high: int | None = None) -> int | None:
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ValidationFailed(f"{name}: must be a whole number {bound}", detail={name: [f"a whole number {bound}"]})
    return value


class ExperimentListView(APIView):
    @extend_schema(operation_id="experiments_list", summary="List experiment runs (newest first)",
                   parameters=[PROJECT_PARAM], responses={200: ExperimentListSerializer, **ERRORS}, tags=TAGS)
    def get(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        return Response({"experiments": [experiment_body(e) for e in selectors.experiments_for(
            project=access.project)]})

    @extend_schema(
        operation_id="experiments_create", summary="Start an experiment run",
        description="Runs a prompt version over a dataset version through the project's OpenAI-compatible "
                    "connection (the LLM judge's base URL and key). The run is queued; poll "
                    "`GET /api/v1/experiments/{id}` for progress. Each item's call is stored as a trace tagged "
                    "`experiment:<id>`.",
        parameters=[PROJECT_PARAM], request=ExperimentInSerializer,
        examples=[OpenApiExample("prompt label over a test split", request_only=True, value={
            "dataset": "support-cases", "split": "test", "prompt": "support-answer", "prompt_label": "staging",
            "model": "gpt-4o-mini", "evaluators": ["exact_match", "embedding_similarity", "toxicity"],
            "concurrency": 8, "cost_cap_usd": "2.00"})],
        responses={201: ExperimentOutSerializer, 400: OpenApiResponse(ErrorSerializer),
                   404: OpenApiResponse(ErrorSerializer, description="Unknown dataset, version, prompt or label."),
                   401: ERRORS[401]},
        tags=TAGS)
    def post(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.MEMBER)
        if not isinstance(request.data, dict):
            raise ValidationFailed("body: must be a JSON object", detail={"body": ["must be a JSON object"]})
        unknown = sorted(set(request.data) - BODY_FIELDS)
        if unknown:
            raise ValidationFailed(f"{unknown[0]}: unknown field", detail={unknown[0]: ["unknown field"]})
        body = ExperimentInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        exp = services.experiment_create(project=access.project, user=access.user, spec=services.ExperimentSpec(
            kind=data["kind"], custom_evaluators=data.get("custom_evaluators"),
            dataset=data["dataset"], prompt=data.get("prompt"), prompt_version=data.get("prompt_version"),
            prompt_label=data.get("prompt_label"), model=data["model"], dataset_version=data.get("dataset_version"),
            split=data.get("split"), name=data["name"], evaluators=data.get("evaluators"),
            params=data.get("params"), concurrency=data["concurrency"],
            rate_limit_per_minute=data.get("rate_limit_per_minute"), cost_cap_usd=data.get("cost_cap_usd"),
            cost_per_call_usd=data.get("cost_per_call_usd")))
        exp = selectors.experiment_get(project=access.project, experiment_id=exp.pk)
        return Response(experiment_body(exp), status=201)


class ExperimentDetailView(APIView):
    @extend_schema(
        operation_id="experiments_get", summary="One run: status, progress, metrics and results",
        parameters=[ID_PARAM, PROJECT_PARAM,
                    OpenApiParameter("cursor", OpenApiTypes.INT, OpenApiParameter.QUERY,
                                     description="Results after this dataset item id (the previous `next_cursor`)."),
                    OpenApiParameter("limit", OpenApiTypes.INT, OpenApiParameter.QUERY,
                                     description=f"Results per page, 0..{selectors.PAGE_MAX} "
                                                 f"(default {selectors.PAGE_DEFAULT}).")],
        responses={200: ExperimentDetailSerializer, 400: OpenApiResponse(ErrorSerializer), **ERRORS}, tags=TAGS)
    def get(self, request: Request, experiment_id: int) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        exp = selectors.experiment_get(project=access.project, experiment_id=experiment_id)
        after = _int(request.query_params.get("cursor"), "cursor", 0)
        limit = _int(request.query_params.get("limit"), "limit", 0, selectors.PAGE_MAX)
        rows, cursor = selectors.results_page(experiment=exp, after=after,
                                              limit=selectors.PAGE_DEFAULT if limit is None else limit)
        metrics = [{"name": m.name, "kind": m.kind, "n": m.n, "mean": m.mean, "low": m.low, "high": m.high,
                    "higher_is_better": m.higher_is_better} for m in selectors.metric_summaries(experiment=exp)]
        return Response({**experiment_body(exp), "metrics": metrics, "results": [result_body(r) for r in rows],
                         "next_cursor": cursor})


class ExperimentCancelView(APIView):
    @extend_schema(operation_id="experiments_cancel", summary="Cancel a run",
                   description="The run stops between items; calls already in flight finish and are stored. "
                               "Cancelling a finished run changes nothing.",
                   parameters=[ID_PARAM, PROJECT_PARAM], request=None,
                   responses={200: ExperimentOutSerializer, **ERRORS}, tags=TAGS)
    def post(self, request: Request, experiment_id: int) -> Response:
        access = project_access(request, required_role=Role.MEMBER)
        exp = selectors.experiment_get(project=access.project, experiment_id=experiment_id)
        services.experiment_cancel(experiment=exp)
        return Response(experiment_body(selectors.experiment_get(project=access.project, experiment_id=exp.pk)))


class ResultInSerializer(serializers.Serializer):
    item_id = serializers.IntegerField()
    output = serializers.CharField(allow_null=True, required=False)
    error = serializers.CharField(required=False, allow_blank=True)
    latency_ms = serializers.FloatField(required=False, allow_null=True)
    trace_id = serializers.CharField(required=False, allow_blank=True, help_text="The trace your code made.")
    scores = serializers.DictField(child=serializers.FloatField(), required=False,
                                   help_text="Values of the run's custom evaluators.")


class ResultsInSerializer(serializers.Serializer):
    results = ResultInSerializer(many=True, help_text=f"At most {services.MAX_RESULTS_PER_CALL} per call.")
    finished = serializers.BooleanField(required=False, default=False,
                                        help_text="The last post: the run is done (or cancelled, if asked).")


class ExperimentResultsView(APIView):
    @extend_schema(
        operation_id="experiments_results_post", summary="Post an SDK run's results",
        description="For runs of kind sdk (spyglass.run_experiment): the outputs your code produced. The run's "
                    "server evaluators score them here; custom evaluators' values come in `scores`. Items "
                    "already posted are skipped.",
        parameters=[ID_PARAM, PROJECT_PARAM], request=ResultsInSerializer,
        responses={200: ExperimentOutSerializer, 400: OpenApiResponse(ErrorSerializer),
                   409: OpenApiResponse(ErrorSerializer, description="Not an SDK run, or already finished."),
                   **ERRORS}, tags=TAGS)
    def post(self, request: Request, experiment_id: int) -> Response:
        access = project_access(request, required_role=Role.MEMBER)
        exp = selectors.experiment_get(project=access.project, experiment_id=experiment_id)
        if not isinstance(request.data, dict):
            raise ValidationFailed("body: must be a JSON object", detail={"body": ["must be a JSON object"]})
        results = services.results_parse(request.data.get("results"))
        finished = request.data.get("finished", False)
        if not isinstance(finished, bool):
            raise ValidationFailed("finished: must be true or false", detail={"finished": ["a boolean"]})
        services.results_record(experiment=exp, results=results, finished=finished)
        return Response(experiment_body(selectors.experiment_get(project=access.project, experiment_id=exp.pk)))
