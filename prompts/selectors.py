"""Reads of the prompt registry, and of the traces and scores that judge its versions.

Linking traces to versions happens here, at read time: Trace rows carry the prompt name
and version as strings (copied from span attributes at ingest), and every query joins on
(project, prompt_name, prompt_version) — served by the index trace_project_prompt. So a
version registered after its traces arrived links just the same, and nothing on the
ingest hot path ever looks a prompt up.
"""

from __future__ import annotations

import difflib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Avg, Count, FloatField, Max, Q, QuerySet, StdDev
from django.db.models.functions import Trunc
from django.utils import timezone

from config.errors import NotFound, ValidationFailed
from projects.models import Project
from prompts import stats
from prompts.models import LATEST, PRODUCTION, Prompt, PromptLabel, PromptLabelEvent, PromptVersion
from prompts.templating import template_as_text
from scores import names
from scores.models import Score
from tracing.models import Status, Trace

# Score names read for the production metrics: (source, name) -> metric key.
# Toxicity here is the answer's: a prompt version changes what the model says, not what
# users type.
SCORE_METRICS = {
    (s.source, s.name): key
    for s, key in (
        (names.USER_THUMBS, "thumbs_up"),
        (names.USER_RATING, "rating"),
        (names.HALLUCINATION, "hallucination"),
        (names.TOXICITY_OUTPUT, "toxicity"),
        (names.REPHRASE, "rephrase"),
        (names.REGENERATE, "regenerate"),
    )
}
# Raw latency/cost values per arm for the rank test and bootstrap: the newest N traces.
# Beyond ~10k the test is decided anyway and only memory and time would grow.
SAMPLE_CAP = 10_000


class PercentileCont(Aggregate):
    """Postgres percentile_cont(f) WITHIN GROUP (ORDER BY expr): exact, in the database."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, fraction: float, **extra: Any) -> None:
        super().__init__(expression, fraction=float(fraction), **extra)


# ---------------------------------------------------------------------------- registry


def prompt_get(*, project: Project, name: str) -> Prompt:
    prompt = Prompt.objects.filter(project=project, name=name).first()
    if prompt is None:
        raise NotFound(f"No prompt named {name!r} in this project.")
    return prompt


def prompt_labels(*, prompt: Prompt) -> dict[str, int]:
    """Stored labels -> version number (the implicit "latest" is not included)."""
    return dict(
        PromptLabel.objects.filter(prompt=prompt).order_by("name").values_list("name", "version__version")
    )


def labels_by_version(*, prompt: Prompt, labels: dict[str, int] | None = None) -> dict[int, list[str]]:
    """Version number -> its labels, with "latest" on the newest version."""
    labels = prompt_labels(prompt=prompt) if labels is None else labels
    out: dict[int, list[str]] = defaultdict(list)
    for label, version in labels.items():
        out[version].append(label)
    if prompt.latest_version:
        out[prompt.latest_version].append(LATEST)
    return dict(out)


def prompt_versions(*, prompt: Prompt, limit: int = 200) -> QuerySet[PromptVersion]:
    return PromptVersion.objects.filter(prompt=prompt).order_by("-version")[:limit]


def prompt_version_get(*, prompt: Prompt, version: int) -> PromptVersion:
    found = PromptVersion.objects.filter(prompt=prompt, version=version).first()
    if found is None:
        raise NotFound(f"Prompt {prompt.name!r} has no version {version}.")
    return found


@dataclass(frozen=True)
class Resolved:
    prompt: Prompt
    version: PromptVersion
    labels: list[str]  # labels on this version, "latest" included when it is the newest


def prompt_resolve(
    *, project: Project, name: str, label: str | None = None, version: int | None = None
) -> Resolved:
    """The version a client asked for.

    By version number; else by label ("latest" = newest); with neither, the version
    labelled "production" if that label exists, otherwise the newest version — so a
    prompt works before anyone has promoted it, and starts following production as soon
    as someone does.
    """
    if label is not None and version is not None:
        raise ValidationFailed("Pass either label or version, not both.", code="invalid")
    prompt = prompt_get(project=project, name=name)
    labels = prompt_labels(prompt=prompt)
    if version is not None:
        number = version
    elif label is not None and label != LATEST:
        if label not in labels:
            known = ", ".join(sorted([*labels, LATEST]))
            raise NotFound(f"Prompt {name!r} has no label {label!r} (labels: {known}).")
        number = labels[label]
    elif label is None and PRODUCTION in labels:
        number = labels[PRODUCTION]
    else:
        number = prompt.latest_version
    found = prompt_version_get(prompt=prompt, version=number)
    on_version = labels_by_version(prompt=prompt, labels=labels).get(number, [])
    return Resolved(prompt, found, sorted(on_version))


@dataclass
class PromptRow:
    prompt: Prompt
    labels: dict[str, int]
    traffic_7d: int = 0
    last_used: datetime | None = None


def prompts_list(*, project: Project, after: str | None = None, limit: int = 50) -> tuple[list[PromptRow], str | None]:
    """A page of prompts by name (keyset on the unique name), with labels and usage.

    Three queries whatever the page size: prompts, labels, and one grouped trace query.
    """
    qs = Prompt.objects.filter(project=project).order_by("name")
    if after:
        qs = qs.filter(name__gt=after)
    prompts = list(qs[: limit + 1])
    next_after = prompts[limit - 1].name if len(prompts) > limit else None
    prompts = prompts[:limit]
    rows = {p.pk: PromptRow(p, {}) for p in prompts}
    for prompt_id, name, number in (
        PromptLabel.objects.filter(prompt_id__in=rows)
        .order_by("name")
        .values_list("prompt_id", "name", "version__version")
    ):
        rows[prompt_id].labels[name] = number
    by_name = {p.name: rows[p.pk] for p in prompts}
    since = timezone.now() - timedelta(days=7)
    usage = (
        Trace.objects.filter(project=project, prompt_name__in=list(by_name))
        .values("prompt_name")
        .annotate(last=Max("start_time"), recent=Count("id", filter=Q(start_time__gte=since)))
    )
    for item in usage:
        row = by_name[item["prompt_name"]]
        row.last_used, row.traffic_7d = item["last"], item["recent"]
    return list(rows.values()), next_after


def prompt_label_history(*, prompt: Prompt, limit: int = 50) -> QuerySet[PromptLabelEvent]:
    return PromptLabelEvent.objects.filter(prompt=prompt).order_by("-created_at", "-id")[:limit]


def prompt_version_traces(*, project: Project, prompt: Prompt, version: int, limit: int = 50) -> QuerySet[Trace]:
    """Traces that named this version in their span attributes, newest first."""
    return Trace.objects.filter(
        project=project, prompt_name=prompt.name, prompt_version=str(version)
    ).order_by("-start_time")[:limit]


# ---------------------------------------------------------------------------- diff


@dataclass(frozen=True)
class DiffRow:
    kind: str  # "equal" | "replace" | "delete" | "insert"
    left_no: int | None
    left: str
    right_no: int | None
    right: str


def _side_by_side(left_text: str, right_text: str) -> list[DiffRow]:
    left, right = left_text.splitlines(), right_text.splitlines()
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        span = max(i2 - i1, j2 - j1)
        for k in range(span):
            li, rj = i1 + k, j1 + k
            has_left, has_right = li < i2, rj < j2
            rows.append(
                DiffRow(
                    tag if has_left and has_right else ("delete" if has_left else "insert"),
                    li + 1 if has_left else None,
                    left[li] if has_left else "",
                    rj + 1 if has_right else None,
                    right[rj] if has_right else "",
                )
            )
    return rows


@dataclass
class VersionDiff:
    a: PromptVersion
    b: PromptVersion
    template: list[DiffRow]
    config: list[DiffRow]
    template_changed: bool
    config_changed: bool
    stats: dict[str, int] = field(default_factory=dict)


def version_diff(*, a: PromptVersion, b: PromptVersion) -> VersionDiff:
    """Line diff of template and config (config as sorted, indented JSON) of two versions."""
    a_text, b_text = template_as_text(a.template), template_as_text(b.template)
    a_cfg = json.dumps(a.config, indent=2, sort_keys=True)
    b_cfg = json.dumps(b.config, indent=2, sort_keys=True)
    template = _side_by_side(a_text, b_text)
    counts = {"added": 0, "removed": 0, "changed": 0}
    for row in template:
        if row.kind == "insert":
            counts["added"] += 1
        elif row.kind == "delete":
            counts["removed"] += 1
        elif row.kind == "replace":
            counts["changed"] += 1
    return VersionDiff(a, b, template, _side_by_side(a_cfg, b_cfg), a_text != b_text, a_cfg != b_cfg, counts)


# ---------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class TimeRange:
    since: datetime
    until: datetime
    key: str


RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
DEFAULT_RANGE = "30d"


def time_range(key: str | None, *, now: datetime | None = None) -> TimeRange:
    key = key if key in RANGES else DEFAULT_RANGE
    until = now or timezone.now()
    return TimeRange(until - RANGES[key], until, key)


def _trace_scope(*, project: Project, prompt: Prompt, versions: list[int], window: TimeRange) -> QuerySet[Trace]:
    return Trace.objects.filter(
        project=project,
        prompt_name=prompt.name,
        prompt_version__in=[str(v) for v in versions],
        start_time__gte=window.since,
        start_time__lt=window.until,
    )


@dataclass
class VersionMetrics:
    version: int
    traces: int = 0
    latency_p50: float | None = None
    latency_p95: float | None = None
    tokens: stats.Estimate = stats.NO_DATA
    cost: stats.Estimate = stats.NO_DATA
    error_rate: stats.Estimate = stats.NO_DATA
    thumbs_up: stats.Estimate = stats.NO_DATA
    rating: stats.Estimate = stats.NO_DATA
    hallucination: stats.Estimate = stats.NO_DATA
    toxicity: stats.Estimate = stats.NO_DATA
    rephrase: stats.Estimate = stats.NO_DATA
    regenerate: stats.Estimate = stats.NO_DATA
    # Raw aggregates kept for the A/B tests.
    errors: int = 0
    tokens_summary: stats.Summary = field(default_factory=lambda: stats.Summary(None, None, 0))
    score_counts: dict[str, dict[str, Any]] = field(default_factory=dict)


_SCORE_SQL = f"""
SELECT t.prompt_version, s.source, s.name,
       count(*) AS n,
       avg(s.value) AS mean,
       stddev_samp(s.value) AS sd,
       count(*) FILTER (WHERE s.value > 0) AS positives,
       count(DISTINCT s.trace_id) FILTER (WHERE s.value > 0) AS flagged_traces
FROM {Trace._meta.db_table} t
JOIN {Score._meta.db_table} s ON s.project_id = t.project_id AND s.trace_id = t.trace_id
WHERE t.project_id = %s AND t.prompt_name = %s AND t.prompt_version = ANY(%s)
  AND t.start_time >= %s AND t.start_time < %s
  AND s.value IS NOT NULL
  AND (s.source, s.name) IN ({", ".join("(%s, %s)" for _ in SCORE_METRICS)})
GROUP BY 1, 2, 3
"""


def _score_aggregates(
    *, project: Project, prompt: Prompt, versions: list[int], window: TimeRange
) -> dict[str, dict[str, dict[str, Any]]]:
    """version string -> metric key -> {n, mean, sd, positives, flagged_traces}."""
    params: list[Any] = [project.pk, prompt.name, [str(v) for v in versions], window.since, window.until]
    for source, name in SCORE_METRICS:
        params += [source, name]
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(_SCORE_SQL, params)
        for version, source, name, n, mean, sd, positives, flagged in cursor.fetchall():
            out[version][SCORE_METRICS[(source, name)]] = {
                "n": n, "mean": mean, "sd": sd, "positives": positives, "flagged_traces": flagged,
            }
    return out


def version_metrics(
    *, project: Project, prompt: Prompt, versions: list[int], window: TimeRange
) -> dict[int, VersionMetrics]:
    """Per version over the window: traffic, latency percentiles, tokens, cost, errors,
    end-user feedback, evaluator scores and implicit signals, each with a 95% interval.

    Two queries: one grouped over traces (percentiles computed by Postgres), one over
    the scores joined to those traces.
    """
    result = {v: VersionMetrics(v) for v in versions}
    if not versions:
        return result
    rows = (
        _trace_scope(project=project, prompt=prompt, versions=versions, window=window)
        .values("prompt_version")
        .annotate(
            n=Count("id"),
            errors=Count("id", filter=Q(status=Status.ERROR)),
            p50=PercentileCont("latency_ms", 0.5),
            p95=PercentileCont("latency_ms", 0.95),
            tok_mean=Avg("total_tokens", output_field=FloatField()),
            tok_sd=StdDev("total_tokens", sample=True, output_field=FloatField()),
            cost_n=Count("cost_usd"),
            cost_mean=Avg("cost_usd", output_field=FloatField()),
            cost_sd=StdDev("cost_usd", sample=True, output_field=FloatField()),
        )
    )
    for row in rows:
        m = result.get(_as_int(row["prompt_version"]))
        if m is None:
            continue
        m.traces, m.errors = row["n"], row["errors"]
        m.latency_p50, m.latency_p95 = row["p50"], row["p95"]
        m.tokens_summary = stats.Summary(row["tok_mean"], row["tok_sd"], row["n"])
        m.tokens = stats.mean_estimate(row["tok_mean"], row["tok_sd"], row["n"])
        m.cost = stats.mean_estimate(row["cost_mean"], row["cost_sd"], row["cost_n"])
        m.error_rate = stats.rate_estimate(row["errors"], row["n"])
    scores = _score_aggregates(project=project, prompt=prompt, versions=versions, window=window)
    for version_str, by_metric in scores.items():
        m = result.get(_as_int(version_str))
        if m is None:
            continue
        m.score_counts = by_metric
        if "thumbs_up" in by_metric:
            agg = by_metric["thumbs_up"]
            m.thumbs_up = stats.rate_estimate(agg["positives"], agg["n"])
        for key in ("rating", "hallucination", "toxicity"):
            if key in by_metric:
                agg = by_metric[key]
                setattr(m, key, stats.mean_estimate(agg["mean"], agg["sd"], agg["n"]))
    for m in result.values():
        # Implicit signals are a share of traces (a trace either showed a rephrase or
        # not), so the denominator is the version's traces, and traces with no signal
        # row count as "no" — whether or not the signal job writes explicit zeros.
        for key in ("rephrase", "regenerate"):
            agg = m.score_counts.get(key)
            if m.traces and agg is not None:
                setattr(m, key, stats.rate_estimate(min(agg["flagged_traces"], m.traces), m.traces))
    return result


def _as_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _samples(
    *, project: Project, prompt: Prompt, version: int, window: TimeRange
) -> tuple[list[float], list[float]]:
    """(latencies, costs of priced traces) of the newest SAMPLE_CAP traces of a version."""
    rows = (
        _trace_scope(project=project, prompt=prompt, versions=[version], window=window)
        .order_by("-start_time")
        .values_list("latency_ms", "cost_usd")[:SAMPLE_CAP]
    )
    latencies, costs = [], []
    for latency, cost in rows:
        latencies.append(float(latency))
        if cost is not None:
            costs.append(float(cost))
    return latencies, costs


@dataclass
class VersionComparison:
    a: VersionMetrics
    b: VersionMetrics
    window: TimeRange
    rows: list[stats.Comparison]


def version_comparison(
    *, project: Project, prompt: Prompt, a: int, b: int, window: TimeRange
) -> VersionComparison:
    """A/B of two versions: every metric side by side, B - A with its interval, a test and
    a sentence. Rates: z-test; means: Welch; latency and cost: Mann-Whitney + bootstrap."""
    metrics = version_metrics(project=project, prompt=prompt, versions=[a, b], window=window)
    ma, mb = metrics[a], metrics[b]
    lat_a, cost_a = _samples(project=project, prompt=prompt, version=a, window=window)
    lat_b, cost_b = _samples(project=project, prompt=prompt, version=b, window=window)

    def score(m: VersionMetrics, key: str) -> dict[str, Any]:
        return m.score_counts.get(key) or {"n": 0, "mean": None, "sd": None, "positives": 0, "flagged_traces": 0}

    def summary(m: VersionMetrics, key: str) -> stats.Summary:
        agg = score(m, key)
        return stats.Summary(agg["mean"], agg["sd"], agg["n"])

    rows = [
        stats.compare_samples("Median latency", lat_a, lat_b, statistic="median", unit="ms", digits=0,
                              unit_noun="traces"),
        stats.compare_means("Tokens per call", ma.tokens_summary, mb.tokens_summary, unit="tokens", digits=1,
                            unit_noun="traces"),
        stats.compare_samples("Cost per call", cost_a, cost_b, statistic="mean", unit="USD", digits=6,
                              unit_noun="priced traces"),
        stats.compare_rates("Error rate", a_successes=ma.errors, a_n=ma.traces, b_successes=mb.errors,
                            b_n=mb.traces, unit_noun="traces"),
        stats.compare_rates("Thumbs-up rate", a_successes=score(ma, "thumbs_up")["positives"],
                            a_n=score(ma, "thumbs_up")["n"], b_successes=score(mb, "thumbs_up")["positives"],
                            b_n=score(mb, "thumbs_up")["n"], unit_noun="thumbs votes"),
        stats.compare_means("User rating", summary(ma, "rating"), summary(mb, "rating"), unit="stars",
                            digits=2, unit_noun="ratings"),
        stats.compare_means("Hallucination score", summary(ma, "hallucination"), summary(mb, "hallucination"),
                            unit="", digits=3, unit_noun="evaluations"),
        stats.compare_means("Toxicity score", summary(ma, "toxicity"), summary(mb, "toxicity"), unit="",
                            digits=3, unit_noun="evaluations"),
    ]
    for key, label in (("rephrase", "Rephrase rate"), ("regenerate", "Regenerate rate")):
        if key not in ma.score_counts and key not in mb.score_counts:
            rows.append(stats.no_signal(label, f"{key} signals"))
            continue
        rows.append(
            stats.compare_rates(
                label,
                a_successes=min(score(ma, key)["flagged_traces"], ma.traces),
                a_n=ma.traces,
                b_successes=min(score(mb, key)["flagged_traces"], mb.traces),
                b_n=mb.traces,
                unit_noun="traces",
            )
        )
    return VersionComparison(ma, mb, window, rows)


# ---------------------------------------------------------------------------- time series


@dataclass
class Series:
    version: int
    buckets: list[datetime] = field(default_factory=list)
    traces: list[int] = field(default_factory=list)
    p50: list[float | None] = field(default_factory=list)
    error_pct: list[float | None] = field(default_factory=list)
    thumbs_pct: list[float | None] = field(default_factory=list)


_THUMBS_SERIES_SQL = f"""
SELECT t.prompt_version, date_trunc(%s, t.start_time AT TIME ZONE 'UTC') AS bucket,
       count(*) AS n, count(*) FILTER (WHERE s.value > 0) AS up
FROM {Trace._meta.db_table} t
JOIN {Score._meta.db_table} s ON s.project_id = t.project_id AND s.trace_id = t.trace_id
WHERE t.project_id = %s AND t.prompt_name = %s AND t.prompt_version = ANY(%s)
  AND t.start_time >= %s AND t.start_time < %s
  AND s.source = '{names.USER_THUMBS.source}' AND s.name = '{names.USER_THUMBS.name}' AND s.value IS NOT NULL
GROUP BY 1, 2
"""


def version_timeseries(
    *, project: Project, prompt: Prompt, versions: list[int], window: TimeRange
) -> tuple[str, list[Series]]:
    """Per version and hour (24h window) or day: traces, p50 latency, error %, thumbs-up %."""
    unit = "hour" if window.until - window.since <= timedelta(days=2) else "day"
    rows = (
        _trace_scope(project=project, prompt=prompt, versions=versions, window=window)
        .annotate(bucket=Trunc("start_time", unit, tzinfo=UTC))
        .values("prompt_version", "bucket")
        .annotate(
            n=Count("id"),
            errors=Count("id", filter=Q(status=Status.ERROR)),
            p50=PercentileCont("latency_ms", 0.5),
        )
        .order_by("bucket")
    )
    thumbs: dict[tuple[str, datetime], tuple[int, int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            _THUMBS_SERIES_SQL,
            [unit, project.pk, prompt.name, [str(v) for v in versions], window.since, window.until],
        )
        for version, bucket, n, up in cursor.fetchall():
            thumbs[(version, bucket.replace(tzinfo=None))] = (n, up)
    series = {v: Series(v) for v in versions}
    for row in rows:
        s = series.get(_as_int(row["prompt_version"]))
        if s is None:
            continue
        bucket = row["bucket"]
        s.buckets.append(bucket)
        s.traces.append(row["n"])
        s.p50.append(row["p50"])
        s.error_pct.append(100 * row["errors"] / row["n"] if row["n"] else None)
        n_up = thumbs.get((row["prompt_version"], bucket.replace(tzinfo=None)))
        s.thumbs_pct.append(100 * n_up[1] / n_up[0] if n_up and n_up[0] else None)
    return unit, [s for s in series.values() if s.buckets]
