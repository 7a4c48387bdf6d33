"""Writes of the alerts app: rules, channels, secrets, test sends and deliveries.

Rules are validated here as the metrics layer would validate them (MetricsQuery.check),
so a rule that saves is a rule the evaluator can run; errors name the form field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from alerts.channels import DeliveryFailed, channel_send, notification_body, target_address_problem, url_problem
from alerts.models import (
    MAX_COOLDOWN_SECONDS,
    MAX_WINDOW_SECONDS,
    MIN_WINDOW_SECONDS,
    SECRET_PURPOSE,
    TARGET_PURPOSE,
    AlertChannel,
    AlertDelivery,
    AlertRule,
    ChannelKind,
    DeliveryStatus,
    NoData,
    Operator,
    State,
    new_secret,
)
from config import secret_box
from config.errors import ValidationFailed
from dashboards.metrics import MAX_GROUP_BY, MEASURES, SCORE_PREFIX, MetricsError, default_agg
from explorer.filters import FilterError
from projects.models import Project

MAX_CHANNELS = 20
RULE_FIELDS = ("name", "measure", "agg", "filters", "group_by", "window_seconds", "operator", "warning_threshold",
               "alert_threshold", "min_observations", "no_data", "cooldown_seconds", "enabled")


class RuleInvalid(ValidationFailed):
    """`detail` maps each rule field to its problems (a form error or a 400)."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()), detail=errors)
        self.errors = errors


@dataclass(frozen=True)
class RuleSpec:
    name: str
    measure: str
    agg: str | None
    alert_threshold: float
    window_seconds: int
    filters: str = ""
    group_by: str = ""
    operator: str = Operator.GT
    warning_threshold: float | None = None
    min_observations: int = 1
    no_data: str = NoData.NO_DATA
    cooldown_seconds: int = 15 * 60
    enabled: bool = True


def rule_problems(spec: RuleSpec) -> dict[str, list[str]]:
    from alerts.evaluation import rule_filter, rule_query

    errors: dict[str, list[str]] = {}

    def fail(key: str, message: str) -> None:
        errors.setdefault(key, []).append(message)

    if not spec.name.strip():
        fail("name", "is required")
    elif len(spec.name) > 200:
        fail("name", "at most 200 characters")
    if not MIN_WINDOW_SECONDS <= spec.window_seconds <= MAX_WINDOW_SECONDS:
        fail("window_seconds", "must be from 5 minutes to 7 days")
    if not 0 <= spec.cooldown_seconds <= MAX_COOLDOWN_SECONDS:
        fail("cooldown_seconds", "must be from 0 to 7 days")
    if spec.operator not in Operator.values:
        fail("operator", f"one of {', '.join(Operator.values)}")
    if spec.no_data not in NoData.values:
        fail("no_data", f"one of {', '.join(NoData.values)}")
    if spec.min_observations < 0:
        fail("min_observations", "must be 0 or more")
    if "," in spec.group_by:
        fail("group_by", f"one dimension per rule (the metrics API takes up to {MAX_GROUP_BY})")
    for key, value in (("alert_threshold", spec.alert_threshold), ("warning_threshold", spec.warning_threshold)):
        if value is not None and (value != value or value in (float("inf"), float("-inf"))):
            fail(key, "must be a finite number")
    if spec.warning_threshold is not None and "alert_threshold" not in errors and "operator" not in errors:
        above = spec.operator in (">", ">=")
        if (above and spec.warning_threshold >= spec.alert_threshold) or (
                not above and spec.warning_threshold <= spec.alert_threshold):
            fail("warning_threshold", f"must be {'below' if above else 'above'} the alert threshold: the warning "
                                      "comes first")
    try:
        rule_filter(spec.filters)
    except FilterError as exc:
        for key, problems in exc.errors.items():
            fail("filters", f"{key}: {' '.join(problems)}")
    if errors:
        return errors
    probe = AlertRule(measure=spec.measure, agg=spec.agg or "", filters=spec.filters, group_by=spec.group_by,
                      window_seconds=spec.window_seconds)
    try:
        rule_query(probe, now=datetime.now(UTC)).check(max_hourly_window=_max_hourly())
    except MetricsError as exc:
        for key, problems in exc.errors.items():
            field = key if key in ("measure", "agg", "group_by") else "filters"
            for problem in problems:
                fail(field, problem)
    return errors


def _max_hourly():
    from datetime import timedelta

    return timedelta(days=settings.SPYGLASS_METRICS_MAX_HOURLY_DAYS)


def _normalise(spec: RuleSpec) -> RuleSpec:
    from dataclasses import replace

    measure = spec.measure.strip()
    agg = (spec.agg or "").strip() or None
    if agg is None and measure:
        # An unknown measure gets no default; rule_problems names it.
        agg = default_agg(measure) if (measure in MEASURES or measure.startswith(SCORE_PREFIX)) else ""
    return replace(spec, name=spec.name.strip(), measure=measure, agg=agg or "", filters=spec.filters.strip(),
                   group_by=spec.group_by.strip())


@transaction.atomic
def rule_create(*, project: Project, spec: RuleSpec, user=None) -> AlertRule:
    spec = _normalise(spec)
    if errors := rule_problems(spec):
        raise RuleInvalid(errors)
    values = {f: getattr(spec, f) for f in RULE_FIELDS}
    return AlertRule.objects.create(project=project, created_by=user if getattr(user, "pk", None) else None, **values)


@transaction.atomic
def rule_update(*, rule: AlertRule, spec: RuleSpec) -> AlertRule:
    spec = _normalise(spec)
    if errors := rule_problems(spec):
        raise RuleInvalid(errors)
    rule = AlertRule.objects.select_for_update().get(pk=rule.pk)
    regrouped = rule.group_by != spec.group_by
    for f in RULE_FIELDS:
        setattr(rule, f, getattr(spec, f))
    rule.save()
    if regrouped:
        # States keyed by the old dimension's values mean nothing now.
        rule.states.all().delete()
    return rule


@transaction.atomic
def rule_delete(*, rule: AlertRule) -> None:
    rule.delete()


@transaction.atomic
def rule_secret_rotate(*, rule: AlertRule) -> str:
    secret = new_secret()
    rule.secret_encrypted = secret_box.encrypt(secret, purpose=SECRET_PURPOSE)
    AlertRule.objects.filter(pk=rule.pk).update(secret_encrypted=rule.secret_encrypted)
    return secret


def channel_problem(kind: str, target: str) -> str | None:
    if kind not in ChannelKind.values:
        return f"one of {', '.join(ChannelKind.values)}"
    if kind == ChannelKind.EMAIL:
        try:
            validate_email(target)
        except DjangoValidationError:
            return "not a valid email address"
        return None
    return url_problem(target) or target_address_problem(target, resolve_failure_ok=True)


@transaction.atomic
def channel_add(*, rule: AlertRule, kind: str, target: str) -> AlertChannel:
    target = target.strip()
    if kind not in ChannelKind.values:
        raise ValidationFailed(f"kind: one of {', '.join(ChannelKind.values)}", detail={"kind": ["unknown kind"]})
    if problem := channel_problem(kind, target):
        raise ValidationFailed(f"target: {problem}", detail={"target": [problem]})
    if rule.channels.count() >= MAX_CHANNELS:
        raise ValidationFailed(f"target: at most {MAX_CHANNELS} channels per rule",
                               detail={"target": [f"at most {MAX_CHANNELS} channels per rule"]})
    return AlertChannel.objects.create(rule=rule, kind=kind,
                                       target_encrypted=secret_box.encrypt(target, purpose=TARGET_PURPOSE))


@transaction.atomic
def channel_remove(*, rule: AlertRule, channel_id: int) -> None:
    AlertChannel.objects.filter(rule=rule, pk=channel_id).delete()


@transaction.atomic
def rule_test_send(*, rule: AlertRule) -> list[int]:
    """Queue a test message to every channel of the rule (marked "test": true), through
    the same delivery task as real alerts."""
    from alerts.tasks import deliveries_enqueue

    group = {rule.group_by: "example"} if rule.group_by else {}
    body = notification_body(rule=rule, group=group, state=State.ALERT, previous_state=State.OK,
                             value=rule.alert_threshold, n=rule.min_observations, now=timezone.now(), event_id=None,
                             test=True)
    made = AlertDelivery.objects.bulk_create([AlertDelivery(channel=c, body=body) for c in rule.channels.all()])
    ids = [d.pk for d in made]
    transaction.on_commit(lambda: deliveries_enqueue(ids))
    return ids


def delivery_send(*, delivery_id: int, final: bool) -> bool:
    """One attempt of one delivery. Idempotent: a sent delivery is not sent again (a
    redelivered task). Returns True when sent; raises DeliveryFailed (after recording
    it) when the attempt failed and a retry may help; `final` marks it failed for good."""
    delivery = (AlertDelivery.objects.select_related("channel", "channel__rule").filter(pk=delivery_id).first())
    if delivery is None or delivery.status == DeliveryStatus.SENT:
        return False
    try:
        channel_send(delivery.channel, delivery.body, delivery.channel.rule.secret)
    except DeliveryFailed as exc:
        give_up = final or not exc.transient
        AlertDelivery.objects.filter(pk=delivery.pk).update(
            attempts=delivery.attempts + 1, last_error=str(exc)[:1000],
            status=DeliveryStatus.FAILED if give_up else DeliveryStatus.PENDING)
        if give_up:
            return False
        raise
    AlertDelivery.objects.filter(pk=delivery.pk).update(attempts=delivery.attempts + 1, status=DeliveryStatus.SENT,
                                                        sent_at=timezone.now(), last_error="")
    return True


def spec_from(data: dict[str, Any]) -> RuleSpec:
    """A RuleSpec from cleaned form / serializer data."""
    return RuleSpec(**{f: data[f] for f in RULE_FIELDS if f in data})
