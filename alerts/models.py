"""Alert rules, their per-group state, the history of state changes, and deliveries.

A rule is a metrics query (dashboards/metrics.py) over a rolling window ending now,
compared with thresholds every minute by the beat task (alerts/evaluation.py). With
`group_by`, one rule keeps one AlertState per group (each user, each model, each value
of a metadata key), so "any user over $5 in 24 h" is one rule.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from config import secret_box
from projects.models import Project

MIN_WINDOW_SECONDS = 5 * 60
MAX_WINDOW_SECONDS = 7 * 24 * 3600
MAX_COOLDOWN_SECONDS = 7 * 24 * 3600


class State(models.TextChoices):
    OK = "ok", "OK"
    WARNING = "warning", "Warning"
    ALERT = "alert", "Alert"
    NO_DATA = "no_data", "No data"


# Firing states: entering one is news, leaving them for OK (or no data) is a recovery.
FIRING = frozenset({State.WARNING, State.ALERT})


class Operator(models.TextChoices):
    GT = ">", "above (>)"
    GTE = ">=", "at or above (>=)"
    LT = "<", "below (<)"
    LTE = "<=", "at or below (<=)"


class NoData(models.TextChoices):
    """What a window with fewer observations than the rule's minimum means."""

    OK = "ok", "OK (quiet is fine)"
    NO_DATA = "no_data", "No data (shown, not notified)"
    ALERT = "alert", "Alert (silence is a problem)"


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook", "Webhook (signed JSON)"
    SLACK = "slack", "Slack-compatible incoming webhook"
    EMAIL = "email", "Email"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


# Purposes of config.secret_box keys: one per kind of secret.
SECRET_PURPOSE = "alerts.signing_secret"
TARGET_PURPOSE = "alerts.channel_target"


def new_secret_encrypted() -> str:
    return secret_box.encrypt(new_secret(), purpose=SECRET_PURPOSE)


def _hint(secret: str | None) -> str:
    return f"{secret[:6]}…{secret[-4:]}" if secret else "(unreadable: rotate the secret)"


class AlertRule(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=200)
    # The metrics query (dashboards/metrics.py): measure, agg, filters in the explorer's
    # filter language as a query string ("environment=production&model=gpt-4o"), and at
    # most one group_by dimension.
    measure = models.CharField(max_length=120)
    agg = models.CharField(max_length=10)
    filters = models.TextField(blank=True, default="")
    group_by = models.CharField(max_length=210, blank=True, default="")
    window_seconds = models.PositiveIntegerField()
    operator = models.CharField(max_length=2, choices=Operator.choices, default=Operator.GT)
    warning_threshold = models.FloatField(null=True, blank=True)
    alert_threshold = models.FloatField()
    min_observations = models.PositiveIntegerField(default=1)
    no_data = models.CharField(max_length=10, choices=NoData.choices, default=NoData.NO_DATA)
    cooldown_seconds = models.PositiveIntegerField(default=15 * 60)
    enabled = models.BooleanField(default=True)
    # Key of the X-Spyglass-Signature HMAC, encrypted (config/secret_box.py): signing needs
    # the value itself, so it cannot be hashed; shown in full only once (on creation and
    # rotation), as a hint afterwards.
    secret_encrypted = models.TextField(default=new_secret_encrypted)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Set by the evaluator: when it last looked, and why it could not (a bad or timed-out query).
    evaluated_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # Observations in groups beyond the watched top groups (folded away by the metrics layer).
    unwatched_n = models.IntegerField(default=0)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["enabled", "evaluated_at"], name="alerts_rule_due")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(window_seconds__gte=MIN_WINDOW_SECONDS, window_seconds__lte=MAX_WINDOW_SECONDS),
                name="alerts_rule_window_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def secret(self) -> str | None:
        """The signing secret, or None if it cannot be decrypted with today's key."""
        return secret_box.decrypt(self.secret_encrypted, purpose=SECRET_PURPOSE)

    @property
    def secret_hint(self) -> str:
        return _hint(self.secret)


class AlertChannel(models.Model):
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="channels")
    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    # A URL (webhook, slack) or an email address, encrypted (config/secret_box.py): webhook
    # URLs often carry a secret in their path (Slack's do). Pages and the API show
    # `target_hint`, never the value.
    target_encrypted = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.target_hint}"

    @property
    def target(self) -> str | None:
        """The URL or address, or None if it cannot be decrypted with today's key."""
        return secret_box.decrypt(self.target_encrypted, purpose=TARGET_PURPOSE)

    @property
    def target_hint(self) -> str:
        target = self.target
        if target is None:
            return "(unreadable: remove and add the channel again)"
        if self.kind == ChannelKind.EMAIL:
            return target
        from urllib.parse import urlsplit

        parts = urlsplit(target)
        path = parts.path
        shown = path[:8] + "…" if len(path) > 8 else path
        return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}{shown}"


class AlertState(models.Model):
    """The current state of one rule for one group ("" when the rule has no group_by)."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="states")
    group_key = models.CharField(max_length=600, default="")
    group = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OK)
    value = models.FloatField(null=True, blank=True)
    n = models.IntegerField(default=0)
    since = models.DateTimeField()
    evaluated_at = models.DateTimeField()
    # What receivers were last told, and when: a change is notified at most once per
    # cooldown, and a state that changed during the cooldown is caught up after it.
    notified_state = models.CharField(max_length=10, choices=State.choices, default=State.OK)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rule_id", "group_key"]
        constraints = [models.UniqueConstraint(fields=["rule", "group_key"], name="alerts_state_one_per_group")]

    def __str__(self) -> str:
        return f"{self.rule_id}/{self.group_key or '-'}: {self.state}"


class AlertEvent(models.Model):
    """One change of state of a rule for a group (and test sends)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="events")
    group_key = models.CharField(max_length=600, default="")
    group = models.JSONField(default=dict)
    previous_state = models.CharField(max_length=10, choices=State.choices)
    state = models.CharField(max_length=10, choices=State.choices)
    value = models.FloatField(null=True, blank=True)
    n = models.IntegerField(default=0)
    threshold = models.FloatField(null=True, blank=True)
    window_seconds = models.PositiveIntegerField()
    created_at = models.DateTimeField()
    # When receivers were told (None: held back by the cooldown, or not news).
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-id"], name="alerts_event_project_id")]

    def __str__(self) -> str:
        return f"{self.rule_id}/{self.group_key or '-'}: {self.previous_state} -> {self.state}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class AlertDelivery(models.Model):
    """One message to one channel. The body is stored, so a retry (or a redelivered task)
    sends exactly what was decided, and a test send takes the same path."""

    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(AlertEvent, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    body = models.JSONField()
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.status})"
