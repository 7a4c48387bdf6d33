"""GET/POST /api/v1/retention: a project's retention (viewers read, admins replace)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ERRORS, PROJECT_PARAM, ErrorSerializer
from projects.auth import project_access
from projects.models import Role
from retention.models import MAX_DAYS, RetentionMode
from retention.selectors import retention_last_run, retention_policy_get
from retention.services import retention_policy_save


class RetentionSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=RetentionMode.values,
                                   help_text="default: the instance's SPYGLASS_RETENTION_DAYS; days: `days` days; "
                                             "forever: never deleted.")
    days = serializers.IntegerField(min_value=1, max_value=MAX_DAYS, required=False, allow_null=True, default=None,
                                    help_text="Days traces are kept (by start time); only with mode=days.")


class RetentionRunSerializer(serializers.Serializer):
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()
    days = serializers.IntegerField()
    cutoff = serializers.DateTimeField(help_text="Traces that started before this were deleted.")
    traces = serializers.IntegerField()
    rows = serializers.DictField(child=serializers.IntegerField(), help_text="Rows deleted per table.")
    batches = serializers.IntegerField()
    complete = serializers.BooleanField(help_text="False: the run's time budget ended first; the next run goes on.")


class RetentionResponseSerializer(RetentionSerializer):
    effective_days = serializers.IntegerField(allow_null=True, help_text="Days in force (null: kept forever).")
    default_days = serializers.IntegerField(allow_null=True, help_text="The instance default (null: forever).")
    last_run = RetentionRunSerializer(allow_null=True)


def _body(project) -> dict:
    run = retention_last_run(project=project)
    return {**retention_policy_get(project=project),
            "last_run": None if run is None else RetentionRunSerializer(run).data}


class RetentionView(APIView):
    @extend_schema(operation_id="retention_get", summary="How long this project keeps its traces",
                   parameters=[PROJECT_PARAM], responses={200: RetentionResponseSerializer, **ERRORS},
                   tags=["retention"])
    def get(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        return Response(_body(access.project))

    @extend_schema(
        operation_id="retention_replace", summary="Set how long this project keeps its traces (admins)",
        description="Traces that started more than `days` days ago are deleted with their spans, scores, "
                    "events, embeddings and evaluator state by the retention task. See the README, \"Retention\".",
        parameters=[PROJECT_PARAM], request=RetentionSerializer,
        responses={200: RetentionResponseSerializer,
                   400: OpenApiResponse(ErrorSerializer, description="mode or days is invalid; it is named."),
                   **ERRORS},
        tags=["retention"],
    )
    def post(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.ADMIN)
        body = RetentionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        retention_policy_save(project=access.project, mode=body.validated_data["mode"],
                              days=body.validated_data["days"], user=access.user)
        return Response(_body(access.project))
