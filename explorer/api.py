"""REST API for traces: GET /api/v1/traces and GET /api/v1/traces/<trace_id>.

Views validate input, call one selector and serialize; queries live in
explorer.selectors, validation and shapes in explorer.serializers.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ERRORS, PROJECT_PARAM, ErrorSerializer
from explorer import selectors
from explorer.serializers import TraceDetailSerializer, TraceFilterSerializer, TraceListResponseSerializer
from projects.auth import project_access
from projects.models import Role
from tracing.api import normalize_trace_id

LIST_DESCRIPTION = """\
Traces of the project, newest first (`start_time` desc; ties: most recently stored first),
with keyset pagination: pass the response's `next_cursor` as `cursor` until it is null.
Filters combine with AND. `input`/`output` are previews of their first 500 characters
(`input_truncated`/`output_truncated` say whether more exists); the detail endpoint
returns them in full.

**Metadata filters** — `metadata.<key>=<value>`, any number of them, all must match.
`<key>` is a top-level key of the trace's metadata, taken verbatim after `metadata.`
(so `metadata.a.b` means the key `"a.b"`, not a nested path). Query strings carry only
text, so the value matches the JSON string `"<value>"`, and additionally:
a JSON number when it is spelled as one (`metadata.retries=3` matches `3`, `3.0` and
`"3"`), a boolean for `true`/`false`. `null` matches only the string `"null"`.
Example: `?metadata.customer_tier=gold&metadata.beta=true`.

Any other unknown query parameter is a 400, so a misspelt filter never silently
returns everything.
"""


class TraceListView(APIView):
    @extend_schema(
        operation_id="traces_list",
        summary="List traces",
        description=LIST_DESCRIPTION,
        parameters=[TraceFilterSerializer, PROJECT_PARAM],
        responses={
            200: TraceListResponseSerializer,
            400: OpenApiResponse(ErrorSerializer, description="A filter value or parameter name is invalid."),
            **ERRORS,
        },
        tags=["traces"],
    )
    def get(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        params = TraceFilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        page = selectors.traces_list(
            project=access.project,
            filters=params.filters(),
            limit=params.validated_data["limit"],
            cursor=params.validated_data.get("cursor"),
        )
        return Response(TraceListResponseSerializer(page).data)


class TraceDetailView(APIView):
    @extend_schema(
        operation_id="traces_retrieve",
        summary="Get a trace with its spans and scores",
        description=(
            "The trace, all its spans as a flat list ordered by `start_time` (rebuild the "
            "tree with `parent_span_id`; a parent that has not arrived yet is simply absent), "
            "and its scores."
        ),
        parameters=[
            OpenApiParameter(
                "trace_id",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                description="The OTel trace id: 32 hex characters, any case.",
                pattern="^[0-9a-fA-F]{32}$",
            ),
            PROJECT_PARAM,
        ],
        responses={
            200: TraceDetailSerializer,
            400: OpenApiResponse(ErrorSerializer, description="The trace id is not 32 hex characters."),
            **ERRORS,
        },
        tags=["traces"],
    )
    def get(self, request: Request, trace_id: str) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        detail = selectors.trace_detail(project=access.project, trace_id=normalize_trace_id(trace_id))
        return Response(TraceDetailSerializer(detail).data)
