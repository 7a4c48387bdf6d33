"""Reads of experiments: lookups, result pages, and per-evaluator summaries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from statsmodels.stats.proportion import proportion_confint

from config.errors import NotFound
from experiments import evaluators
from experiments.models import Experiment, ExperimentResult
from projects.models import Project

PAGE_DEFAULT = 100
PAGE_MAX = 1000


def experiments_for(*, project: Project, limit: int = 100) -> list[Experiment]:
    return list(Experiment.objects.filter(project=project).select_related("dataset", "prompt", "prompt_version")
                .order_by("-id")[:limit])


def experiment_get(*, project: Project, experiment_id: Any) -> Experiment:
    try:
        pk = int(experiment_id)
    except (TypeError, ValueError):
        raise NotFound(f"No experiment {experiment_id!r} in this project.") from None
    exp = (Experiment.objects.filter(project=project, pk=pk)
           .select_related("project", "dataset", "prompt", "prompt_version").first())
    if exp is None:
        raise NotFound(f"No experiment {pk} in this project.")
    return exp


def results_page(*, experiment: Experiment, after: int | None = None,
                 limit: int = PAGE_DEFAULT) -> tuple[list[ExperimentResult], int | None]:
    """Keyset pages by dataset item id; (rows, next cursor or None)."""
    qs: QuerySet[ExperimentResult] = (ExperimentResult.objects.filter(experiment=experiment)
                                      .select_related("item").order_by("item_id"))
    if after is not None:
        qs = qs.filter(item_id__gt=after)
    rows = list(qs[:limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].item_id if more and rows else None)


@dataclass(frozen=True)
class MetricSummary:
    name: str
    kind: str  # "pass_fail" | "numeric"
    n: int
    mean: float | None
    # Pass/fail: Wilson 95% interval of the rate; numeric: None.
    low: float | None
    high: float | None
    higher_is_better: bool
    description: str


def metric_summaries(*, experiment: Experiment) -> list[MetricSummary]:
    """Mean of each evaluator over the items it scored, with n (and, for rates, an interval)."""
    names = [spec["name"] for spec in experiment.evaluators or []]
    if not names:
        return []
    values: dict[str, list[float]] = {name: [] for name in names}
    for scores in ExperimentResult.objects.filter(experiment=experiment).values_list("scores", flat=True):
        for name in names:
            if name in (scores or {}):
                values[name].append(float(scores[name]))
    out = []
    for name in names:
        xs = values[name]
        kind = "pass_fail" if evaluators.is_pass_fail(name, xs) else "numeric"
        mean = sum(xs) / len(xs) if xs else None
        low = high = None
        if kind == "pass_fail" and xs:
            low, high = (float(v) for v in proportion_confint(round(sum(xs)), len(xs), method="wilson"))
        out.append(MetricSummary(name, kind, len(xs), mean, low, high, evaluators.higher_is_better(name),
                                 evaluators.DESCRIPTIONS.get(name, "computed by the SDK's evaluator")))
    return out


def runs_compare(*, project: Project, a_id: Any, b_id: Any) -> tuple[Experiment, Experiment, Any]:
    """Runs A and B of the project and their paired comparison (experiments/compare.py).
    Items pair by dataset item id, so runs over versions of the same dataset pair on the
    items they share."""
    from experiments.compare import ItemPair, compare

    a = experiment_get(project=project, experiment_id=a_id)
    b = experiment_get(project=project, experiment_id=b_id)
    rows_a = {r.item_id: r for r in ExperimentResult.objects.filter(experiment=a).select_related("item")}
    rows_b = {r.item_id: r for r in ExperimentResult.objects.filter(experiment=b)}
    pairs = [ItemPair(item_id=i, input=ra.item.input, expected=ra.item.expected_output, output_a=ra.output,
                      output_b=rows_b[i].output, error_a=ra.error, error_b=rows_b[i].error, trace_a=ra.trace_id,
                      trace_b=rows_b[i].trace_id, scores_a=ra.scores or {}, scores_b=rows_b[i].scores or {})
             for i, ra in sorted(rows_a.items()) if i in rows_b]
    names_b = {s["name"] for s in b.evaluators or []}
    names = [s["name"] for s in a.evaluators or [] if s["name"] in names_b]
    return a, b, compare(pairs, names)
