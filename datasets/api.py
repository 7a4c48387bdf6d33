"""REST API of datasets.

GET/POST /api/v1/datasets, GET/POST /api/v1/datasets/<name>/items,
GET /api/v1/datasets/<name>/export. Reads need the viewer role, writes the member role
(a secret key acts as a member). Views validate, call one service or selector, and
serialize; the serializers below also document the shapes in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.selectors import queue_get
from config.api import ERRORS, PROJECT_PARAM, ErrorSerializer
from config.errors import ValidationFailed
from datasets import export, selectors, services
from datasets.models import Dataset, DatasetItem
from projects.auth import project_access
from projects.models import Role

TAGS = ["datasets"]
NAME_PARAM = OpenApiParameter("dataset_name", OpenApiTypes.STR, OpenApiParameter.PATH,
                              description="The dataset's name (unique in the project).")
VERSION_PARAM = OpenApiParameter("version", OpenApiTypes.INT, OpenApiParameter.QUERY,
                                 description="Version to read (default: the current one). Versions are immutable.")
SPLIT_PARAM = OpenApiParameter("split", OpenApiTypes.STR, OpenApiParameter.QUERY, enum=list(selectors.SPLITS),
                               description="Only items of this split (the version must have one).")


class DatasetInSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, help_text="Letters, digits, '.', '_' or '-'; unique per project.")
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class DatasetOutSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    current_version = serializers.IntegerField(help_text="0 until the first change.")
    item_count = serializers.IntegerField(help_text="Items in the current version.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class DatasetListSerializer(serializers.Serializer):
    datasets = DatasetOutSerializer(many=True)


class ItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    input = serializers.JSONField(help_text='A text, or chat messages [{"role": "user", "content": "..."}].')
    expected_output = serializers.CharField(allow_null=True)
    metadata = serializers.JSONField()
    source_trace_id = serializers.CharField(allow_null=True)
    source_span_id = serializers.CharField(allow_null=True)
    split = serializers.CharField(allow_null=True, help_text="train / test, or null when the version has no split.")
    added_in = serializers.IntegerField(help_text="The version that added the item.")


class ItemPageSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    items = ItemSerializer(many=True)
    next_cursor = serializers.IntegerField(allow_null=True, help_text="Pass as `cursor` for the next page.")


class ItemsAddSerializer(serializers.Serializer):
    """Exactly one of items, trace_ids, filter, queue_id."""

    items = serializers.ListField(child=serializers.JSONField(), required=False,
                                  help_text="Items: {input, expected_output?, metadata?, source_trace_id?, "
                                            f"source_span_id?}}; at most {services.MAX_ITEMS_PER_CALL}.")
    trace_ids = serializers.ListField(child=serializers.CharField(), required=False,
                                      help_text="Traces of this project to add (input, answer as expected "
                                                "output, metadata, source ids).")
    filter = serializers.JSONField(required=False,
                                   help_text='The explorer\'s filter parameters, e.g. {"metadata.plan": "pro", '
                                             '"score": ["user_thumbs=1"], "range": "7d"}: the newest `limit` '
                                             "matching traces are added.")
    limit = serializers.IntegerField(required=False, help_text=f"With filter: at most this many traces "
                                     f"(default {services.FILTER_CAP_DEFAULT}, max {services.FILTER_CAP_MAX}).")
    preview = serializers.BooleanField(required=False, default=False,
                                       help_text="With filter: only count the matching traces, add nothing.")
    queue_id = serializers.IntegerField(required=False,
                                        help_text="An annotation queue of this project: its reviewed traces, in "
                                                  "queue order.")
    only_corrected = serializers.BooleanField(required=False, default=False,
                                              help_text="With queue_id: only traces a reviewer corrected.")
    use_corrections = serializers.BooleanField(
        required=False, default=True,
        help_text="With trace_ids, filter or queue_id: a trace's newest reviewer-corrected answer (when it has "
                  "one) is the expected output instead of the trace's own answer.")


class ItemsAddedSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="The dataset's version after the call.")
    added = serializers.IntegerField()
    duplicates_skipped = serializers.IntegerField(help_text="Items whose input the dataset already held.")
    without_input = serializers.IntegerField(help_text="Traces with no input text or messages (not added).")
    matched = serializers.IntegerField(allow_null=True, help_text="Filter: traces matching it (before the limit).")
    corrected = serializers.IntegerField(help_text="Items whose expected output is a reviewer's corrected answer.")


def dataset_body(dataset: Dataset, item_count: int) -> dict[str, Any]:
    return {"name": dataset.name, "description": dataset.description, "current_version": dataset.current_version,
            "item_count": item_count, "created_at": dataset.created_at.isoformat(),
            "updated_at": dataset.updated_at.isoformat()}


def item_body(item: DatasetItem) -> dict[str, Any]:
    return {"id": item.pk, "input": item.input, "expected_output": item.expected_output, "metadata": item.metadata,
            "source_trace_id": item.source_trace_id, "source_span_id": item.source_span_id,
            "split": getattr(item, "split", None), "added_in": item.added_in}


class DatasetListView(APIView):
    @extend_schema(operation_id="datasets_list", summary="List datasets", parameters=[PROJECT_PARAM],
                   responses={200: DatasetListSerializer, **ERRORS}, tags=TAGS)
    def get(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        rows = selectors.datasets_with_counts(project=access.project)
        return Response({"datasets": [dataset_body(d, n) for d, n in rows]})

    @extend_schema(operation_id="datasets_create", summary="Create a dataset", parameters=[PROJECT_PARAM],
                   request=DatasetInSerializer,
                   responses={201: DatasetOutSerializer, 400: OpenApiResponse(ErrorSerializer),
                              409: OpenApiResponse(ErrorSerializer, description="The name is taken."), **ERRORS},
                   tags=TAGS)
    def post(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.MEMBER)
        body = DatasetInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        dataset = services.dataset_create(project=access.project, name=body.validated_data["name"],
                                          description=body.validated_data["description"], user=access.user)
        return Response(dataset_body(dataset, 0), status=201)


class DatasetItemsView(APIView):
    @extend_schema(
        operation_id="datasets_items_list", summary="Items of a dataset version",
        description="Items in id order, keyset-paginated (`cursor` = the previous page's `next_cursor`).",
        parameters=[NAME_PARAM, VERSION_PARAM, SPLIT_PARAM,
                    OpenApiParameter("cursor", OpenApiTypes.INT, OpenApiParameter.QUERY),
                    OpenApiParameter("limit", OpenApiTypes.INT, OpenApiParameter.QUERY,
                                     description=f"1..{selectors.PAGE_MAX} (default {selectors.PAGE_DEFAULT})."),
                    PROJECT_PARAM],
        responses={200: ItemPageSerializer, 400: OpenApiResponse(ErrorSerializer), **ERRORS}, tags=TAGS)
    def get(self, request: Request, dataset_name: str) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        dataset = selectors.dataset_get(project=access.project, name=dataset_name)
        params = request.query_params
        number = selectors.version_number(dataset, params.get("version"))
        page = selectors.items_page(dataset=dataset, number=number, split=selectors.split_of(params.get("split")),
                                    after=_int(params.get("cursor"), "cursor", 0, None),
                                    limit=_int(params.get("limit"), "limit", 1, selectors.PAGE_MAX)
                                    or selectors.PAGE_DEFAULT)
        return Response({"version": number, "items": [item_body(i) for i in page.items],
                         "next_cursor": page.next_cursor})

    @extend_schema(
        operation_id="datasets_items_add", summary="Add items (a new version)",
        description=(
            "Give exactly one of `items`, `trace_ids`, `filter` or `queue_id`. Every call that adds something "
            "makes a new immutable version; items whose input the dataset already holds are skipped and counted. "
            "A bad item is a 400 naming it (`items[3].input`) and nothing is added."),
        parameters=[NAME_PARAM, PROJECT_PARAM], request=ItemsAddSerializer,
        responses={201: ItemsAddedSerializer,
                   200: OpenApiResponse(ItemsAddedSerializer, description="Nothing new (all duplicates) or a "
                                        "preview: no new version."),
                   400: OpenApiResponse(ErrorSerializer, description="`detail` names the item index and field."),
                   **ERRORS},
        examples=[OpenApiExample("items", request_only=True, value={"items": [
                      {"input": [{"role": "user", "content": "Where is my order?"}],
                       "expected_output": "Let me check that for you.", "metadata": {"plan": "pro"}}]}),
                  OpenApiExample("queue", request_only=True, value={"queue_id": 12, "only_corrected": True}),
                  OpenApiExample("filter", request_only=True,
                                 value={"filter": {"metadata.plan": "pro", "score": ["user_thumbs=1"]},
                                        "limit": 500})],
        tags=TAGS)
    def post(self, request: Request, dataset_name: str) -> Response:
        access = project_access(request, required_role=Role.MEMBER)
        dataset = selectors.dataset_get(project=access.project, name=dataset_name)
        data = request.data
        if not isinstance(data, dict):
            raise ValidationFailed("body: must be a JSON object", detail={"body": ["must be a JSON object"]})
        given = [key for key in ("items", "trace_ids", "filter", "queue_id") if key in data]
        if len(given) != 1:
            raise ValidationFailed("body: give exactly one of items, trace_ids, filter, queue_id",
                                   detail={"body": ["exactly one of items, trace_ids, filter, queue_id"]})
        unknown = set(data) - {"items", "trace_ids", "filter", "queue_id", "limit", "preview", "only_corrected",
                               "use_corrections"}
        if unknown:
            raise ValidationFailed(f"{sorted(unknown)[0]}: unknown field",
                                   detail={key: ["unknown field"] for key in sorted(unknown)})
        use_corrections = _flag(data, "use_corrections", default=True)
        if given[0] == "items":
            result = services.items_add(dataset=dataset, items=services.items_parse(data["items"]),
                                        change={"kind": "items"}, user=access.user)
        elif given[0] == "trace_ids":
            ids = data["trace_ids"]
            if not isinstance(ids, list) or not ids or len(ids) > services.MAX_ITEMS_PER_CALL \
                    or not all(isinstance(t, str) for t in ids):
                raise ValidationFailed("trace_ids: must be a non-empty list of trace ids (strings), "
                                       f"at most {services.MAX_ITEMS_PER_CALL}",
                                       detail={"trace_ids": ["a non-empty list of trace id strings"]})
            result = services.items_add_traces(dataset=dataset, trace_ids=ids, user=access.user,
                                               use_corrections=use_corrections)
        elif given[0] == "queue_id":
            queue_id = data["queue_id"]
            if not isinstance(queue_id, int) or isinstance(queue_id, bool):
                raise ValidationFailed("queue_id: must be an annotation queue's id (a whole number)",
                                       detail={"queue_id": ["a whole number"]})
            queue = queue_get(project=access.project, queue_id=queue_id)
            result = services.items_add_queue(dataset=dataset, queue=queue, user=access.user,
                                              only_corrected=_flag(data, "only_corrected", default=False),
                                              use_corrections=use_corrections)
        else:
            trace_filter = services.filter_parse(data["filter"])
            cap = services.filter_cap(data.get("limit"))
            if data.get("preview") is True:
                preview = services.filter_preview(project=access.project, trace_filter=trace_filter, cap=cap)
                return Response({"version": dataset.current_version, "added": 0, "duplicates_skipped": 0,
                                 "without_input": 0, "matched": preview.matched, "corrected": 0})
            result = services.items_add_filter(dataset=dataset, trace_filter=trace_filter, cap=cap,
                                               user=access.user, use_corrections=use_corrections)
        return Response({"version": result.dataset.current_version, "added": result.added,
                         "duplicates_skipped": result.duplicates, "without_input": result.without_input,
                         "matched": result.matched, "corrected": result.corrected},
                        status=201 if result.version else 200)


def _flag(data: dict[str, Any], key: str, *, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ValidationFailed(f"{key}: must be true or false", detail={key: ["true or false"]})
    return value


class _JsonErrors(DefaultContentNegotiation):
    """`?format=` names the export format here, not DRF's renderer (DRF would answer 404
    for a format it has no renderer for); errors are JSON, the export streams itself."""

    def select_renderer(self, request: Any, renderers: list, format_suffix: str | None = None) -> tuple:
        return renderers[0], renderers[0].media_type


class DatasetExportView(APIView):
    content_negotiation_class = _JsonErrors

    @extend_schema(
        operation_id="datasets_export", summary="Export a dataset version",
        description=export.DESCRIPTION,
        parameters=[NAME_PARAM, VERSION_PARAM, SPLIT_PARAM,
                    OpenApiParameter("format", OpenApiTypes.STR, OpenApiParameter.QUERY, required=True,
                                     enum=list(export.FORMATS)),
                    OpenApiParameter("thumbs_up", OpenApiTypes.BOOL, OpenApiParameter.QUERY,
                                     description="Only items whose source trace has a thumbs up (and no down)."),
                    OpenApiParameter("no_flags", OpenApiTypes.BOOL, OpenApiParameter.QUERY,
                                     description="Drop items whose source trace is flagged for hallucination or "
                                                 "toxicity."),
                    OpenApiParameter("slice", OpenApiTypes.STR, OpenApiParameter.QUERY,
                                     description="Only items with this metadata value: key=value."),
                    OpenApiParameter("balance_by", OpenApiTypes.STR, OpenApiParameter.QUERY,
                                     description="Metadata key whose slices are balanced (with max_share)."),
                    OpenApiParameter("max_share", OpenApiTypes.FLOAT, OpenApiParameter.QUERY,
                                     description="No slice of balance_by exceeds this share of the export."),
                    PROJECT_PARAM],
        responses={(200, "application/jsonl"): OpenApiTypes.STR, (200, "text/csv"): OpenApiTypes.STR,
                   400: OpenApiResponse(ErrorSerializer), **ERRORS},
        tags=TAGS)
    def get(self, request: Request, dataset_name: str) -> Any:
        access = project_access(request, required_role=Role.VIEWER)
        dataset = selectors.dataset_get(project=access.project, name=dataset_name)
        options = export.ExportOptions.parse(request.query_params, dataset=dataset)
        return export.export_response(dataset=dataset, options=options)


def _int(raw: Any, name: str, low: int, high: int | None) -> int | None:
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = low - 1
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ValidationFailed(f"{name}: must be a whole number {bound}", detail={name: [f"a whole number {bound}"]})
    return value
