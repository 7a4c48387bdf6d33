"""REST API of alerts (read-only): GET /api/v1/alerts/rules and GET /api/v1/alerts/events.

Viewers and secret keys read; secrets never leave (a rule's signing secret and channel
URLs appear only as hints)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts import selectors
from alerts.models import AlertEvent, AlertRule
from config.api import ERRORS, PROJECT_PARAM, ErrorSerializer
from config.errors import ValidationFailed
from projects.auth import project_access
from projects.models import Role

MAX_LIMIT = 200
DEFAULT_LIMIT = 50


class StateSerializer(serializers.Serializer):
    group = serializers.DictField(child=serializers.CharField(allow_null=True),
                                  help_text="Dimension -> value; empty for a rule without group_by.")
    state = serializers.ChoiceField(choices=["ok", "warning", "alert", "no_data"])
    value = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField(help_text="Observations behind the value.")
    since = serializers.DateTimeField()
    evaluated_at = serializers.DateTimeField()


class ChannelSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["webhook", "slack", "email"])
    target_hint = serializers.CharField(help_text="The URL's scheme, host and path start (never the full URL).")


class RuleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    measure = serializers.CharField()
    agg = serializers.CharField()
    filters = serializers.CharField(help_text="Explorer filter parameters as a query string.")
    group_by = serializers.CharField(allow_null=True)
    window_seconds = serializers.IntegerField()
    operator = serializers.ChoiceField(choices=[">", ">=", "<", "<="])
    warning_threshold = serializers.FloatField(allow_null=True)
    alert_threshold = serializers.FloatField()
    min_observations = serializers.IntegerField()
    no_data = serializers.ChoiceField(choices=["ok", "no_data", "alert"], help_text="What too few observations mean.")
    cooldown_seconds = serializers.IntegerField()
    enabled = serializers.BooleanField()
    secret_hint = serializers.CharField(help_text="Start and end of the signing secret (X-Spyglass-Signature).")
    evaluated_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()
    unwatched_n = serializers.IntegerField(help_text="Observations in groups beyond the 100 watched ones.")
    state = serializers.CharField(help_text="The worst state of the rule's groups, or `disabled`.")
    states = StateSerializer(many=True)
    channels = ChannelSerializer(many=True)


class RulesResponseSerializer(serializers.Serializer):
    rules = RuleSerializer(many=True)


class EventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    rule_id = serializers.IntegerField()
    rule_name = serializers.CharField()
    group = serializers.DictField(child=serializers.CharField(allow_null=True))
    previous_state = serializers.CharField()
    state = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    threshold = serializers.FloatField(allow_null=True)
    window_seconds = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    notified_at = serializers.DateTimeField(allow_null=True,
                                            help_text="When receivers were told; null if held by the cooldown.")


class EventsResponseSerializer(serializers.Serializer):
    events = EventSerializer(many=True)
    next_before = serializers.IntegerField(allow_null=True, help_text="Pass as `before` for the next page.")


def _rule_body(rule: AlertRule) -> dict[str, Any]:
    worst, states = selectors.rule_summary(rule)
    return {
        "id": rule.pk, "name": rule.name, "measure": rule.measure, "agg": rule.agg, "filters": rule.filters,
        "group_by": rule.group_by or None, "window_seconds": rule.window_seconds, "operator": rule.operator,
        "warning_threshold": rule.warning_threshold, "alert_threshold": rule.alert_threshold,
        "min_observations": rule.min_observations, "no_data": rule.no_data, "cooldown_seconds": rule.cooldown_seconds,
        "enabled": rule.enabled, "secret_hint": rule.secret_hint,
        "evaluated_at": rule.evaluated_at.isoformat() if rule.evaluated_at else None, "last_error": rule.last_error,
        "unwatched_n": rule.unwatched_n, "state": worst,
        "states": [{"group": s.group, "state": s.state, "value": s.value, "n": s.n, "since": s.since.isoformat(),
                    "evaluated_at": s.evaluated_at.isoformat()} for s in states],
        "channels": [{"kind": c.kind, "target_hint": c.target_hint} for c in rule.channels.all()],
    }


def _event_body(event: AlertEvent) -> dict[str, Any]:
    return {"id": event.pk, "rule_id": event.rule_id, "rule_name": event.rule.name, "group": event.group,
            "previous_state": event.previous_state, "state": event.state, "value": event.value, "n": event.n,
            "threshold": event.threshold, "window_seconds": event.window_seconds,
            "created_at": event.created_at.isoformat(),
            "notified_at": event.notified_at.isoformat() if event.notified_at else None}


def _int_param(request: Request, name: str, *, minimum: int, maximum: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < minimum or (maximum is not None and int(raw) > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
        raise ValidationFailed(f"{name}: must be a whole number {bound}; got {raw!r}",
                               detail={name: [f"must be a whole number {bound}"]})
    return int(raw)


class RuleListView(APIView):
    @extend_schema(
        operation_id="alert_rules_list",
        summary="List alert rules with their current states",
        description="Every alert rule of the project, each with its states per group (most urgent first) and "
                    "channels (as hints). See the README, \"Alerts\".",
        parameters=[PROJECT_PARAM],
        responses={200: RulesResponseSerializer, **ERRORS},
        tags=["alerts"],
    )
    def get(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        rules = selectors.rules_for_project(access.project).prefetch_related("channels")
        return Response({"rules": [_rule_body(rule) for rule in rules]})


class EventListView(APIView):
    @extend_schema(
        operation_id="alert_events_list",
        summary="Alert history: changes of state, newest first",
        parameters=[
            OpenApiParameter("rule", int, description="Only this rule's events."),
            OpenApiParameter("before", int, description="Events older than this id (the previous page's next_before)."),
            OpenApiParameter("limit", int, description=f"1..{MAX_LIMIT}, default {DEFAULT_LIMIT}."),
            PROJECT_PARAM,
        ],
        responses={200: EventsResponseSerializer,
                   400: OpenApiResponse(ErrorSerializer, description="A parameter is invalid; `detail` names it."),
                   **ERRORS},
        tags=["alerts"],
    )
    def get(self, request: Request) -> Response:
        access = project_access(request, required_role=Role.VIEWER)
        unknown = set(request.query_params) - {"rule", "before", "limit", "project"}
        if unknown:
            raise ValidationFailed(f"{', '.join(sorted(unknown))}: unknown parameter; expected rule, before or limit",
                                   detail={key: ["unknown parameter"] for key in sorted(unknown)})
        rule_id = _int_param(request, "rule", minimum=1)
        before = _int_param(request, "before", minimum=1)
        limit = _int_param(request, "limit", minimum=1, maximum=MAX_LIMIT) or DEFAULT_LIMIT
        events = selectors.events_for_project(access.project, rule_id=rule_id, before=before, limit=limit)
        return Response({"events": [_event_body(e) for e in events],
                         "next_before": events[-1].pk if len(events) == limit else None})
