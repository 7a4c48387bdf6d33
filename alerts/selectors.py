"""Reads of the alerts app, always scoped to one project."""

from __future__ import annotations

from django.db.models import Count, Prefetch, QuerySet
from django.http import Http404

from alerts.models import AlertChannel, AlertEvent, AlertRule, AlertState, State
from projects.models import Project

# Most urgent first on every page that lists states.
STATE_ORDER = {State.ALERT: 0, State.WARNING: 1, State.NO_DATA: 2, State.OK: 3}


def rules_for_project(project: Project) -> QuerySet[AlertRule]:
    return (AlertRule.objects.filter(project=project)
            .annotate(channel_count=Count("channels", distinct=True))
            .prefetch_related(Prefetch("states", queryset=AlertState.objects.order_by("group_key"))))


def rule_get(project: Project, rule_id: int) -> AlertRule:
    """The rule if it belongs to the project; a 404 otherwise (another project's rule
    is not found, so its existence does not leak)."""
    rule = AlertRule.objects.filter(project=project, pk=rule_id).select_related("project").first()
    if rule is None:
        raise Http404("No such alert rule in this project.")
    return rule


def channels_of(rule: AlertRule) -> list[AlertChannel]:
    return list(rule.channels.all())


def rule_summary(rule: AlertRule) -> tuple[str, list[AlertState]]:
    """The rule's worst state and its states, most urgent first (from prefetched states)."""
    states = sorted(rule.states.all(), key=lambda s: (STATE_ORDER[s.state], s.group_key))
    worst = states[0].state if states else State.OK
    if not rule.enabled:
        worst = "disabled"
    return worst, states


def events_for_project(project: Project, *, rule_id: int | None = None, before: int | None = None,
                       limit: int = 50) -> list[AlertEvent]:
    """Newest first, by id (a keyset: `before` is the last id of the previous page)."""
    qs = AlertEvent.objects.filter(project=project).select_related("rule").order_by("-id")
    if rule_id is not None:
        qs = qs.filter(rule_id=rule_id)
    if before is not None:
        qs = qs.filter(id__lt=before)
    return list(qs.annotate(delivery_count=Count("deliveries"))[:limit])
