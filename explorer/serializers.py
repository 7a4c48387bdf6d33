"""Input validation and output shapes of the trace API."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api import IsoDateTimeField
from explorer import filters
from explorer.filters import FilterError, TraceFilter
from explorer.selectors import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, PREVIEW_CHARS, TraceCursor, TraceDetail
from tracing.models import Span, Status, Trace

# Query parameters read by code other than the filter: `project` picks the project for
# session auth (projects.auth.project_access); limit and cursor page the list.
PASSTHROUGH_PARAMS = frozenset({"project"})
PAGE_PARAMS = frozenset({"limit", "cursor"})


def _text(help_text: str) -> serializers.CharField:
    return serializers.CharField(required=False, max_length=filters.TEXT_MAX, help_text=help_text)


def _repeatable(help_text: str) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(), required=False, help_text=help_text)


class TraceFilterSerializer(serializers.Serializer):
    """Query parameters of GET /api/v1/traces: the one trace filter language
    (explorer/filters.py) plus limit and cursor.

    The declared fields document the parameters in the OpenAPI schema; validation is
    TraceFilter.parse, the same as the explorer page and queue creation use. Beyond them
    it accepts any number of `metadata.<key>=<value>` and rejects every other unknown
    parameter, so a misspelt filter fails loudly instead of silently returning everything.
    """

    # `from` is a Python keyword; it is renamed in get_fields().
    from_ = IsoDateTimeField(required=False,
                             help_text="Traces that started at or after this time (ISO-8601; naive = UTC).")
    to = IsoDateTimeField(required=False, help_text="Traces that started before this time (ISO-8601; naive = UTC).")
    range = serializers.ChoiceField(choices=list(filters.RANGES), required=False,
                                    help_text="Instead of from/to: the last 15m, 1h, 24h, 7d or 30d (or all).")
    name = _text("Exact trace name.")
    session_id = _text("Exact session id.")
    user_id = _text("Exact end-user id.")
    model = _text("Exact primary model of the trace, e.g. gpt-4o-mini.")
    environment = _text("Exact environment, e.g. production.")
    release = _text("Exact release (service version).")
    status = serializers.ChoiceField(choices=Status.choices, required=False)
    prompt = _text("Traces made with this prompt (name).")
    prompt_version = _text("...and this version of it.")
    tag = _repeatable("Repeatable; a trace must carry every given tag.")
    q = serializers.CharField(required=False, max_length=500,
                              help_text="Words in the input or output (prefix match, any order).")
    score = _repeatable(
        "Repeatable score condition: `name` (has a score of that name) or `name<op>value` with op one of "
        "= != > >= < <=, e.g. `hallucination>0.5`, `user_thumbs=0`, `preferred=A`."
    )
    feedback = serializers.ChoiceField(choices=["yes", "no"], required=False,
                                       help_text="yes: has explicit end-user feedback; no: has none.")
    limit = serializers.IntegerField(required=False, default=LIST_LIMIT_DEFAULT, min_value=1, max_value=LIST_LIMIT_MAX)
    cursor = serializers.CharField(required=False, max_length=200, help_text="`next_cursor` of the previous page.")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        try:
            trace_filter = TraceFilter.parse(data, allow=PAGE_PARAMS | PASSTHROUGH_PARAMS)
            if trace_filter.search_mode == "semantic":
                errors["mode"] = ["semantic search is offered by the explorer page, not the API; use mode=text"]
        except FilterError as exc:
            errors.update(exc.errors)
            trace_filter = None
        page: dict[str, Any] = {}
        for key in PAGE_PARAMS:
            if _one(data, key) == "":
                errors[key] = ["must not be empty (leave the parameter out to not filter)"]
        limit = _one(data, "limit")
        if limit is None or limit == "":
            page["limit"] = LIST_LIMIT_DEFAULT
        elif not limit.isdigit() or not 1 <= int(limit) <= LIST_LIMIT_MAX:
            errors["limit"] = [f"must be an integer between 1 and {LIST_LIMIT_MAX}"]
        else:
            page["limit"] = int(limit)
        cursor = _one(data, "cursor")
        if cursor:
            try:
                page["cursor"] = TraceCursor.decode(cursor)
            except ValueError as exc:
                errors["cursor"] = [str(exc)]
        for key in PAGE_PARAMS:
            if isinstance(data, QueryDict) and len(data.getlist(key)) > 1:
                errors[key] = ["given more than once"]
        if errors:
            raise serializers.ValidationError(errors)
        return {"filter": trace_filter, **page}

    def filters(self) -> TraceFilter:
        """The validated filter, for explorer.selectors.traces_list."""
        return self.validated_data["filter"]


def _one(data: Any, key: str) -> str | None:
    value = data.get(key) if hasattr(data, "get") else None
    return None if value is None else str(value)


class PromptRefSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField(allow_null=True)


class _Money(serializers.FloatField):
    """Decimal USD as a JSON number: clients sum and chart it, and float precision is
    ample for display; null when unknown."""


class TraceSerializer(serializers.ModelSerializer):
    """Fields shared by the list and the detail of a trace."""

    cost_usd = _Money(allow_null=True, help_text="Sum of the known span costs; see unpriced_spans.")
    prompt = serializers.SerializerMethodField()

    class Meta:
        model = Trace
        fields = (
            "trace_id",
            "name",
            "session_id",
            "user_id",
            "environment",
            "release",
            "service_name",
            "tags",
            "metadata",
            "start_time",
            "end_time",
            "latency_ms",
            "status",
            "span_count",
            "error_count",
            "input",
            "output",
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "cost_usd",
            "unpriced_spans",
            "model",
            "prompt",
        )
        read_only_fields = fields

    @extend_schema_field(PromptRefSerializer(allow_null=True))
    def get_prompt(self, trace: Trace) -> dict[str, Any] | None:
        if not trace.prompt_name:
            return None
        return {"name": trace.prompt_name, "version": trace.prompt_version}


class _Preview(serializers.CharField):
    """A text column read from its `<name>_preview` annotation (see traces_list)."""

    def to_representation(self, value: str) -> str:
        return value[:PREVIEW_CHARS]


class TraceListItemSerializer(TraceSerializer):
    """A trace in the list: input/output cut to a preview, flags saying whether they were."""

    input = _Preview(source="input_preview", allow_null=True, help_text=f"First {PREVIEW_CHARS} characters.")
    output = _Preview(source="output_preview", allow_null=True, help_text=f"First {PREVIEW_CHARS} characters.")
    input_truncated = serializers.SerializerMethodField()
    output_truncated = serializers.SerializerMethodField()

    class Meta(TraceSerializer.Meta):
        fields = (*TraceSerializer.Meta.fields, "input_truncated", "output_truncated")
        read_only_fields = fields

    def get_input_truncated(self, trace: Trace) -> bool:
        return len(trace.input_preview or "") > PREVIEW_CHARS

    def get_output_truncated(self, trace: Trace) -> bool:
        return len(trace.output_preview or "") > PREVIEW_CHARS


class TraceListResponseSerializer(serializers.Serializer):
    data = TraceListItemSerializer(many=True, source="traces")
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass as `cursor` to get the next page; null on the last page."
    )


class SpanSerializer(serializers.ModelSerializer):
    cost_usd = _Money(allow_null=True)

    class Meta:
        model = Span
        fields = (
            "span_id",
            "parent_span_id",
            "name",
            "kind",
            "start_time",
            "end_time",
            "latency_ms",
            "status",
            "status_message",
            "provider",
            "model",
            "input_tokens",
            "output_tokens",
            "cached_tokens",
            "cache_creation_tokens",
            "reasoning_tokens",
            "total_tokens",
            "cost_usd",
            "cost_source",
            "input",
            "output",
            "messages",
            "documents",
            "params",
            "finish_reason",
            "attributes",
            "resource",
            "events",
        )
        read_only_fields = fields


class TraceDetailSerializer(TraceSerializer):
    """A trace with its spans (flat, by start time; rebuild the tree via parent_span_id)."""

    spans = serializers.SerializerMethodField()
    scores = serializers.SerializerMethodField()

    class Meta(TraceSerializer.Meta):
        fields = (*TraceSerializer.Meta.fields, "spans", "scores")
        read_only_fields = fields

    def __init__(self, detail: TraceDetail | None = None, **kwargs: Any):
        # The selector's result, not a bare Trace: spans and scores are loaded by
        # trace_detail in bounded queries, never lazily from here.
        self._detail = detail
        super().__init__(detail.trace if detail is not None else None, **kwargs)

    @extend_schema_field(SpanSerializer(many=True))
    def get_spans(self, trace: Trace) -> list[dict[str, Any]]:
        return SpanSerializer(self._detail.spans, many=True).data

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_scores(self, trace: Trace) -> list[Any]:
        return list(self._detail.scores)


