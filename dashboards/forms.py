"""Forms of the dashboard pages: a new dashboard, and the chart builder.

The builder's fields are the metrics API's parameters; clean() builds the MetricsQuery
and runs its own check, so a chart that saves is one the metrics layer answers, and a
bad field gets the metrics layer's message on that field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.http import QueryDict

from dashboards.metrics import AGGS, GROUP_DIMENSIONS, MEASURES, TOP_DEFAULT, TOP_MAX, MetricsError, MetricsQuery
from dashboards.models import Chart, ChartType
from explorer.filters import FilterError, TraceFilter

INTERVAL_CHOICES = [(Chart.INTERVAL_AUTO, "Auto (follows the time range)"), ("hour", "Hour"), ("day", "Day"),
                    ("week", "Week"), ("", "None (one value per group)")]  # fmt: skip
# Where a metrics error's parameter is shown in the builder.
_FIELD_OF = {"measure": "measure", "agg": "agg", "group_by": "group_by_1", "top": "top", "interval": "interval"}
_WINDOW_KEYS = ("from", "to", "range")


class DashboardForm(forms.Form):
    name = forms.CharField(max_length=200, strip=True)
    description = forms.CharField(max_length=2000, required=False, strip=True, widget=forms.Textarea(
        attrs={"rows": 2}))


class ChartForm(forms.Form):
    title = forms.CharField(max_length=200, strip=True)
    measure = forms.CharField(max_length=120, strip=True,
                              help_text=f"{', '.join(MEASURES)}, or score:<name> (e.g. score:user_thumbs)")
    agg = forms.ChoiceField(choices=[("", "Default for the measure")] + [(a, a) for a in AGGS], required=False)
    group_by_1 = forms.CharField(max_length=210, required=False, strip=True, label="Group by",
                                 help_text=f"{', '.join(GROUP_DIMENSIONS)} or metadata.<key>")
    group_by_2 = forms.CharField(max_length=210, required=False, strip=True, label="Then by")
    top = forms.IntegerField(min_value=1, max_value=TOP_MAX, required=False,
                             help_text=f"Groups kept (default {TOP_DEFAULT}); the rest fold into other")
    interval = forms.ChoiceField(choices=INTERVAL_CHOICES, required=False, initial=Chart.INTERVAL_AUTO)
    filters = forms.CharField(max_length=2000, required=False, strip=True,
                              help_text="The explorer's filter language, e.g. model=gpt-4o&metadata.plan=pro")
    chart_type = forms.ChoiceField(choices=ChartType.choices, initial=ChartType.LINE, label="Chart type")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        filters: list[list[str]] = []
        trace_filter = TraceFilter()
        raw = data.get("filters") or ""
        if raw:
            params = QueryDict(raw.lstrip("?"))
            if any(key in params for key in _WINDOW_KEYS):
                self.add_error("filters", "from / to / range are the dashboard's time range; leave them out here")
            else:
                try:
                    trace_filter = TraceFilter.parse(params)
                except FilterError as exc:
                    for key, problems in exc.errors.items():
                        self.add_error("filters", f"{key}: {' '.join(problems)}")
                else:
                    if trace_filter.search_mode == "semantic":
                        self.add_error("filters", "mode=semantic ranks traces and is not a filter")
                    filters = [list(pair) for pair in trace_filter.to_query()]
        data["filter_pairs"] = filters
        group_by = [g for g in (data.get("group_by_1"), data.get("group_by_2")) if g]
        data["group_by"] = group_by
        data["top"] = data.get("top") or TOP_DEFAULT
        interval = data.get("interval", Chart.INTERVAL_AUTO)
        chart_type = data.get("chart_type")
        if chart_type in (ChartType.LINE, ChartType.STACKED_BAR) and not interval:
            self.add_error("interval", "a line or stacked bar needs a time axis: choose an interval or auto")
        if chart_type == ChartType.NUMBER:
            if group_by:
                self.add_error("group_by_1", "a number shows one value: leave group by empty")
            if interval not in ("", Chart.INTERVAL_AUTO):
                self.add_error("interval", "a number shows one value for the whole range: choose none or auto")
        if chart_type == ChartType.HISTOGRAM and not group_by:
            self.add_error("group_by_1", "a histogram shows how values spread across groups (e.g. cost per "
                                         "user_id): choose a group by")
        measure = data.get("measure")
        if measure and not self.errors.get("measure"):
            self._check_query(data, measure, group_by, interval, trace_filter)
        return data

    def _check_query(self, data: dict, measure: str, group_by: list[str], interval: str,
                     trace_filter: TraceFilter) -> None:
        """Parse the measure / agg / group_by / top as the API would, over a week."""
        params: dict[str, Any] = {"measure": measure, "group_by": group_by, "top": str(data["top"])}
        if data.get("agg"):
            params["agg"] = data["agg"]
        if interval and interval != Chart.INTERVAL_AUTO:
            params["interval"] = interval
        now = datetime.now(UTC)
        try:
            query = MetricsQuery.parse(params, now=now, max_hourly_window=timedelta(
                days=settings.SPYGLASS_METRICS_MAX_HOURLY_DAYS))
        except MetricsError as exc:
            for key, problems in exc.errors.items():
                field = _FIELD_OF.get(key)
                for problem in problems:
                    self.add_error(field, problem if field else f"{key}: {problem}")
            return
        data["agg"] = query.agg
        data["measure"] = query.measure
