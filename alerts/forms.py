"""Forms of the alert pages. Validation of the query itself is the service's
(alerts.services.rule_problems), mapped back onto these fields."""

from __future__ import annotations

import re

from django import forms

from alerts.models import ChannelKind, NoData, Operator
from dashboards.metrics import AGGS

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    match = _DURATION.match(text or "")
    if not match:
        raise forms.ValidationError("write a duration such as 5m, 1h, 24h or 7d")
    return int(match[1]) * _UNIT[match[2]]


class DurationField(forms.CharField):
    def to_python(self, value):
        value = super().to_python(value)
        return None if value in (None, "") else parse_duration(value)


class RuleForm(forms.Form):
    name = forms.CharField(max_length=200)
    measure = forms.CharField(max_length=120, help_text="traces, users, sessions, latency_ms, cost_usd, input_tokens, "
                              "output_tokens, total_tokens, errors, or score:<name>")
    agg = forms.ChoiceField(choices=[("", "default for the measure")] + [(a, a) for a in AGGS], required=False,
                            label="Aggregation")
    filters = forms.CharField(required=False, max_length=2000, label="Filters (explorer language)",
                              help_text="e.g. environment=production&model=gpt-4o&score=user_thumbs=0")
    group_by = forms.CharField(required=False, max_length=210, label="Group by (one state per group)",
                               help_text="e.g. user_id, model, prompt, tag or metadata.customer; empty: whole project")
    window_seconds = DurationField(label="Window", initial="1h", help_text="5m to 7d, rolling, ending now")
    operator = forms.ChoiceField(choices=Operator.choices)
    warning_threshold = forms.FloatField(required=False, label="Warning threshold (optional)")
    alert_threshold = forms.FloatField(label="Alert threshold")
    min_observations = forms.IntegerField(min_value=0, initial=1, label="Minimum observations",
                                          help_text="n behind the value (traces, scores, users…); fewer is no data")
    no_data = forms.ChoiceField(choices=NoData.choices, label="No data means")
    cooldown_seconds = DurationField(label="Cooldown", initial="15m",
                                     help_text="at most one message per group per cooldown; 0m for none")
    enabled = forms.BooleanField(required=False, initial=True)


def duration_text(seconds: int) -> str:
    from alerts.channels import window_text

    return window_text(seconds) if seconds else "0m"


class ChannelForm(forms.Form):
    kind = forms.ChoiceField(choices=ChannelKind.choices)
    target = forms.CharField(max_length=2000, label="URL or email address")
