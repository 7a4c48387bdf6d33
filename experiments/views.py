"""Experiment pages under /p/<project_slug>/experiments/.

Anyone in the project reads (list, run, comparison); members start and cancel runs.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from config.errors import DomainError, NotFound
from datasets.selectors import datasets_for
from experiments import compare as compare_mod
from experiments import evaluators as checks_mod
from experiments import selectors, services
from projects.auth import ProjectAccess
from projects.models import Role
from projects.pages import project_page
from prompts.models import Prompt

RESULTS_ON_PAGE = 100
PAIRS_ON_PAGE = 500
# Evaluators a checkbox can switch on (regex and json_schema need an option: own fields).
SIMPLE_EVALUATORS = [n for n in checks_mod.NAMES if n not in ("regex", "json_schema")]


class StartForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    dataset = forms.ChoiceField()
    dataset_version = forms.IntegerField(required=False, min_value=0, help_text="Blank: the current version.")
    split = forms.ChoiceField(choices=[("", "all items"), ("train", "train"), ("test", "test")], required=False)
    prompt = forms.ChoiceField()
    prompt_label = forms.CharField(max_length=64, required=False, help_text="Or a version number below.")
    prompt_version = forms.IntegerField(required=False, min_value=1)
    model = forms.CharField(max_length=200, required=False, help_text="Blank: the prompt's or connection's model.")
    evaluators = forms.MultipleChoiceField(choices=[(n, n) for n in SIMPLE_EVALUATORS], required=False,
                                           widget=forms.CheckboxSelectMultiple, initial=["exact_match"])
    regex = forms.CharField(max_length=checks_mod.MAX_PATTERN_CHARS, required=False,
                            help_text="Optional: a regular expression the output must match.")
    concurrency = forms.IntegerField(min_value=1, max_value=services.MAX_CONCURRENCY, initial=4)
    rate_limit_per_minute = forms.IntegerField(required=False, min_value=1, max_value=services.MAX_RATE_PER_MINUTE)
    cost_cap_usd = forms.DecimalField(required=False, min_value=0, max_digits=12, decimal_places=4)
    cost_per_call_usd = forms.DecimalField(required=False, min_value=0, max_digits=12, decimal_places=6)

    def __init__(self, *args: Any, access: ProjectAccess, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].choices = [(d.name, d.name) for d in datasets_for(project=access.project)]
        self.fields["prompt"].choices = [(p, p) for p in Prompt.objects.filter(project=access.project)
                                         .order_by("name").values_list("name", flat=True)]

    def spec(self) -> services.ExperimentSpec:
        data = self.cleaned_data
        checks: list[Any] = list(data["evaluators"])
        if data["regex"]:
            checks.append({"name": "regex", "pattern": data["regex"]})
        return services.ExperimentSpec(
            dataset=data["dataset"], dataset_version=data["dataset_version"], split=data["split"] or None,
            prompt=data["prompt"], prompt_label=data["prompt_label"] or None, prompt_version=data["prompt_version"],
            model=data["model"], name=data["name"], evaluators=checks, concurrency=data["concurrency"],
            rate_limit_per_minute=data["rate_limit_per_minute"], cost_cap_usd=data["cost_cap_usd"],
            cost_per_call_usd=data["cost_per_call_usd"])


def _deny(access: ProjectAccess) -> None:
    raise PermissionDenied(f"This needs the member role in {access.project.name}.")


def _run_or_404(access: ProjectAccess, experiment_id: Any):
    try:
        return selectors.experiment_get(project=access.project, experiment_id=experiment_id)
    except NotFound as exc:
        raise Http404(exc.message) from None


@project_page(Role.VIEWER)
@require_http_methods(["GET", "POST"])
def experiment_list(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    form = StartForm(request.POST or None, access=access)
    if request.method == "POST":
        if not access.can(Role.MEMBER):
            _deny(access)
        if form.is_valid():
            try:
                exp = services.experiment_create(project=access.project, spec=form.spec(), user=request.user)
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                return redirect("experiments-detail", access.project.slug, exp.pk)
    runs = selectors.experiments_for(project=access.project)
    return render(request, "experiments/list.html", {
        "runs": runs, "form": form, "can_edit": access.can(Role.MEMBER)}, status=400 if form.errors else 200)


@project_page(Role.VIEWER)
def experiment_detail(request: HttpRequest, access: ProjectAccess, experiment_id: int) -> HttpResponse:
    exp = _run_or_404(access, experiment_id)
    context = {"exp": exp, "metrics": selectors.metric_summaries(experiment=exp), "can_edit": access.can(Role.MEMBER)}
    if request.htmx:
        return render(request, "experiments/_progress.html", context)
    try:
        after = int(request.GET["after"]) if request.GET.get("after") else None
    except ValueError:
        raise Http404("after: not an item id") from None
    rows, cursor = selectors.results_page(experiment=exp, after=after, limit=RESULTS_ON_PAGE)
    others = [r for r in selectors.experiments_for(project=access.project) if r.pk != exp.pk
              and r.dataset_id == exp.dataset_id]
    names = [spec["name"] for spec in exp.evaluators or []]
    table = [(r, [r.scores.get(n) for n in names]) for r in rows]
    return render(request, "experiments/detail.html", {**context, "rows": table, "names": names,
                                                        "next_cursor": cursor, "others": others})


@project_page(Role.VIEWER)
@require_POST
def experiment_cancel(request: HttpRequest, access: ProjectAccess, experiment_id: int) -> HttpResponse:
    if not access.can(Role.MEMBER):
        _deny(access)
    exp = _run_or_404(access, experiment_id)
    services.experiment_cancel(experiment=exp)
    return redirect("experiments-detail", access.project.slug, exp.pk)


@project_page(Role.VIEWER)
def experiment_compare(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    try:
        a, b, result = selectors.runs_compare(project=access.project, a_id=request.GET.get("a"),
                                              b_id=request.GET.get("b"))
    except NotFound as exc:
        raise Http404(exc.message) from None
    names = [m.name for m in result.metrics]
    pairs = [(p, compare_mod.word_diff(p.output_a, p.output_b),
              [(n, p.scores_a.get(n), p.scores_b.get(n), n in p.worse) for n in names])
             for p in result.pairs[:PAIRS_ON_PAGE]]
    return render(request, "experiments/compare.html", {"a": a, "b": b, "result": result, "pairs": pairs,
                                                        "shown": len(pairs)})
