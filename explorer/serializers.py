"""Input validation and output shapes of the trace API."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api import EMPTY_MESSAGE, IsoDateTimeField
from explorer.selectors import PREVIEW_CHARS, TraceCursor, TraceDetail, TraceFilters
from scores.selectors import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX
from tracing.models import Span, Status, Trace

METADATA_PREFIX = "metadata."

# Query parameters read by code other than the filter serializer: `project` picks the
# project for session auth (projects.auth.project_access).
PASSTHROUGH_PARAMS = frozenset({"project"})


def _text(help_text: str) -> serializers.CharField:
    return serializers.CharField(
        required=False,
        max_length=512,
        help_text=help_text,
        error_messages={"blank": EMPTY_MESSAGE},
    )


class TraceFilterSerializer(serializers.Serializer):
    """Query parameters of GET /api/v1/traces.

    Pass `request.query_params`. Beyond the declared fields it accepts any number of
    `metadata.<key>=<value>` parameters and rejects every other unknown parameter, so a
    misspelt filter fails loudly instead of silently returning everything.
    """

    # `from` is a Python keyword; it is renamed in get_fields().
    from_ = IsoDateTimeField(
        required=False, help_text="Traces that started at or after this time (ISO-8601; naive = UTC)."
    )
    to = IsoDateTimeField(required=False, help_text="Traces that started before this time (ISO-8601; naive = UTC).")
    session_id = _text("Exact session id.")
    user_id = _text("Exact end-user id.")
    model = _text("Exact primary model of the trace, e.g. gpt-4o-mini.")
    environment = _text("Exact environment, e.g. production.")
    status = serializers.ChoiceField(
        choices=Status.choices,
        required=False,
        error_messages={"invalid_choice": f"{{input!r}} is not one of {', '.join(Status.values)}"},
    )
    name = _text("Exact trace name.")
    tag = serializers.ListField(
        child=serializers.CharField(max_length=200, error_messages={"blank": EMPTY_MESSAGE}),
        required=False,
        help_text="Repeatable; a trace must carry every given tag.",
    )
    limit = serializers.IntegerField(
        required=False,
        default=LIST_LIMIT_DEFAULT,
        min_value=1,
        max_value=LIST_LIMIT_MAX,
        error_messages={
            "invalid": f"must be an integer between 1 and {LIST_LIMIT_MAX}",
            "min_value": f"must be an integer between 1 and {LIST_LIMIT_MAX}",
            "max_value": f"must be an integer between 1 and {LIST_LIMIT_MAX}",
        },
    )
    cursor = serializers.CharField(
        required=False,
        max_length=200,
        help_text="`next_cursor` of the previous page.",
        error_messages={"blank": EMPTY_MESSAGE},
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        metadata: dict[str, str] = {}
        known = set(self.fields) | PASSTHROUGH_PARAMS
        keys = list(data.keys())
        for key in keys:
            values = data.getlist(key) if isinstance(data, QueryDict) else [data[key]]
            if key.startswith(METADATA_PREFIX):
                meta_key = key[len(METADATA_PREFIX) :]
                if not meta_key:
                    errors[key] = ["needs a key: metadata.<key>=<value>"]
                elif len(values) > 1:
                    errors[key] = ["given more than once; a key can match only one value"]
                else:
                    metadata[meta_key] = values[0]
            elif key not in known:
                errors[key] = [
                    "unknown query parameter; expected one of "
                    + ", ".join(sorted(known))
                    + " or metadata.<key>"
                ]
            elif key in PASSTHROUGH_PARAMS:
                continue
            elif key != "tag" and len(values) > 1:
                errors[key] = ["given more than once; only `tag` may repeat"]
            elif "" in values:
                # DRF would treat an empty form value as "not given" and so return
                # everything; `?user_id=` more likely means a client bug than "no filter".
                errors[key] = [EMPTY_MESSAGE]
        try:
            validated = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            # Report unknown parameters and bad values together, one round trip to fix all.
            errors = {**exc.detail, **errors}
        if errors:
            raise serializers.ValidationError(errors)
        validated["metadata"] = metadata
        return validated

    def validate_cursor(self, value: str) -> TraceCursor:
        try:
            return TraceCursor.decode(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("from"), attrs.get("to")
        if start is not None and end is not None and start > end:
            raise serializers.ValidationError({"from": [f"is after to ({start.isoformat()} > {end.isoformat()})"]})
        return attrs

    def filters(self) -> TraceFilters:
        """The validated filters, for explorer.selectors.traces_list."""
        data = self.validated_data
        return TraceFilters(
            start_from=data.get("from"),
            start_to=data.get("to"),
            session_id=data.get("session_id"),
            user_id=data.get("user_id"),
            model=data.get("model"),
            environment=data.get("environment"),
            status=data.get("status"),
            name=data.get("name"),
            tags=tuple(data.get("tag") or ()),
            metadata=data["metadata"],
        )


# --- output ---------------------------------------------------------------------------


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


