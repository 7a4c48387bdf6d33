"""Pages: the trace page's annotation panel, annotation queues and the reviewer flow.

Every view goes through projects.pages.project_page (project + role), validates its
input, calls one service or selector and renders.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from config import errors
from evaluation import backlog, judge
from evaluation.evaluators import registry
from evaluation.models import BacklogMode
from projects.auth import ProjectAccess
from projects.models import Role
from projects.pages import project_page

# --- the trace page's panel -------------------------------------------------------------


# --- score configs ----------------------------------------------------------------------


# --- queues -----------------------------------------------------------------------------


# --- LLM judge settings (admin only) --------------------------------------------------------


class JudgeSettingsForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="Enabled")
    base_url = forms.URLField(required=False, max_length=500, label="Base URL", assume_scheme="https",
                              help_text="Any OpenAI-compatible endpoint, e.g. https://api.openai.com/v1")
    model = forms.CharField(required=False, max_length=200, label="Model")
    # Never rendered back: the page shows the masked key beside the field instead.
    api_key = forms.CharField(required=False, max_length=500, label="API key",
                              widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
                              help_text="Leave blank to keep the stored key.")
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored key")
    sample_rate = forms.FloatField(min_value=0, max_value=1, initial=0.05, label="Sample rate (0–1)")
    daily_budget_usd = forms.DecimalField(min_value=0, max_digits=12, decimal_places=4, label="Daily budget (USD)")
    cost_per_call_usd = forms.DecimalField(required=False, min_value=0, max_digits=12, decimal_places=6,
                                           label="Cost per call (USD, optional)",
                                           help_text="Overrides pricing from token usage (self-hosted models).")
    rubrics = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple, label="Rubrics",
                                        choices=[(name, name) for name in judge.RUBRICS])
    timeout_seconds = forms.FloatField(min_value=1, max_value=judge.MAX_TIMEOUT_SECONDS, initial=30,
                                       label="Timeout (s)")


@require_http_methods(["GET", "POST"])
@project_page(Role.ADMIN)
def judge_settings(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    current = judge.judge_settings_get(project=access.project)
    initial = {
        "enabled": current.enabled, "base_url": current.base_url, "model": current.model,
        "sample_rate": current.sample_rate, "daily_budget_usd": current.daily_budget_usd,
        "cost_per_call_usd": current.cost_per_call_usd, "rubrics": current.rubrics,
        "timeout_seconds": current.timeout_seconds,
    }  # fmt: skip
    form = JudgeSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            judge.judge_settings_save(
                project=access.project,
                user=request.user,
                enabled=d["enabled"],
                base_url=d["base_url"],
                model=d["model"],
                api_key=d["api_key"] or None,
                clear_api_key=d["clear_api_key"],
                sample_rate=d["sample_rate"],
                daily_budget_usd=d["daily_budget_usd"],
                cost_per_call_usd=d["cost_per_call_usd"],
                rubrics=d["rubrics"],
                timeout_seconds=d["timeout_seconds"],
            )
        except errors.ValidationFailed as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Judge settings saved.")
            return redirect("evaluation-judge-settings", project_slug=access.project.slug)
    context = {
        "form": form,
        "current": current,
        "usage": judge.judge_usage_today(project=access.project),
    }
    return render(request, "evaluation/judge_settings.html", context, status=400 if form.errors else 200)


# --- offline evaluator settings (admin only) ---------------------------------------------


class EvaluatorSettingsForm(forms.Form):
    """Every evaluator's switch and options on one form; blank thresholds = shipped ones."""

    embeddings_enabled = forms.BooleanField(required=False, label="Embeddings")
    embeddings_spans = forms.BooleanField(required=False, label="Also embed LLM calls inside a trace")
    embeddings_max_spans = forms.IntegerField(min_value=0, max_value=registry.MAX_SPAN_EMBEDDINGS,
                                              label="At most this many LLM-call texts per trace")
    groundedness_enabled = forms.BooleanField(required=False, label="Groundedness / hallucination")
    groundedness_threshold = forms.FloatField(required=False, min_value=0, max_value=1, label="Flag at or above")
    groundedness_sample_rate = forms.FloatField(required=False, min_value=0, max_value=1,
                                                label="Share of traces checked (0–1)")
    toxicity_enabled = forms.BooleanField(required=False, label="Toxicity")
    toxicity_threshold = forms.FloatField(required=False, min_value=0, max_value=1, label="Flag at or above")
    pii_enabled = forms.BooleanField(required=False, label="PII")
    pii_kinds = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple, label="Kinds",
                                          choices=[(k, k.replace("_", " ")) for k in registry.PII_KINDS])
    injection_enabled = forms.BooleanField(required=False, label="Prompt injection")
    injection_threshold = forms.FloatField(min_value=0, max_value=1, label="Flag at or above")

    @classmethod
    def initial_from(cls, config: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {f"{name}_{key}": value for name, entry in config.items() for key, value in entry.items()
                if f"{name}_{key}" in cls.base_fields}

    def clean_groundedness_sample_rate(self) -> float:
        value = self.cleaned_data["groundedness_sample_rate"]
        return 1.0 if value is None else value  # blank = every trace

    def to_config(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for field, value in self.cleaned_data.items():
            name, key = field.split("_", 1)
            out.setdefault(name, {})[key] = value
        return out


class RescoreForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=90, initial=1, label="Traces of the last (days)")


def _evaluator_page(request: HttpRequest, access: ProjectAccess, form: EvaluatorSettingsForm,
                    rescore: RescoreForm, status: int = 200) -> HttpResponse:
    from evaluation.evaluators import groundedness, toxicity
    from evaluation.selectors import project_backlog_status, project_scoring_health

    context = {
        "form": form,
        "rescore": rescore,
        "descriptions": {name: description for name, (description, _) in registry.EVALUATORS.items()},
        "shipped": {"groundedness": groundedness.threshold(), "toxicity": toxicity.threshold()},
        "health": project_scoring_health(project_id=access.project.pk, since=timezone.now() - timedelta(days=1)),
        "queue": project_backlog_status(project_id=access.project.pk, since=timezone.now() - timedelta(days=1)),
    }
    return render(request, "evaluation/evaluator_settings.html", context, status=status)


@require_http_methods(["GET", "POST"])
@project_page(Role.ADMIN)
def evaluator_settings(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    current = registry.evaluator_config(access.project)
    form = EvaluatorSettingsForm(request.POST or None, initial=EvaluatorSettingsForm.initial_from(current))
    if request.method == "POST" and form.is_valid():
        try:
            registry.evaluator_settings_replace(project=access.project, config=form.to_config())
        except errors.ValidationFailed as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Evaluator settings saved. New traces use them; re-score older ones below.")
            return redirect("evaluation-evaluator-settings", project_slug=access.project.slug)
    return _evaluator_page(request, access, form, RescoreForm(), status=400 if form.errors else 200)


@require_POST
@project_page(Role.ADMIN)
def evaluator_rescore(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    from evaluation.services import RESCORE_LIMIT, project_rescore_start

    rescore = RescoreForm(request.POST)
    if not rescore.is_valid():
        form = EvaluatorSettingsForm(initial=EvaluatorSettingsForm.initial_from(
            registry.evaluator_config(access.project)))
        return _evaluator_page(request, access, form, rescore, status=400)
    queued = project_rescore_start(project=access.project,
                                   since=timezone.now() - timedelta(days=rescore.cleaned_data["days"]))
    capped = " (the newest ones; use `manage.py score_backfill` for more)" if queued >= RESCORE_LIMIT else ""
    messages.success(request, f"Queued {queued} trace{'s' if queued != 1 else ''} for re-scoring{capped}.")
    return redirect("evaluation-evaluator-settings", project_slug=access.project.slug)


# --- backlog policy (every role reads, admins change) ----------------------------------------


class BacklogPolicyForm(forms.Form):
    mode = forms.ChoiceField(choices=BacklogMode.choices, widget=forms.RadioSelect, label="Under a backlog")
    threshold = forms.IntegerField(min_value=0, max_value=backlog.MAX_COUNT, label="Backlog above (waiting traces)")
    sample_rate = forms.FloatField(min_value=0, max_value=1, label="Sample rate (0–1, mode 'sample')")
    cap = forms.IntegerField(min_value=1, max_value=backlog.MAX_COUNT,
                             label="Keep at most (waiting traces, newest/oldest first)")


@require_http_methods(["GET", "POST"])
@project_page(Role.VIEWER)
def backlog_settings(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    from evaluation.selectors import project_backlog_status

    can_edit = access.can(Role.ADMIN)
    if request.method == "POST" and not can_edit:
        raise PermissionDenied("Only admins change the backlog policy.")
    status = project_backlog_status(project_id=access.project.pk, since=timezone.now() - timedelta(days=1))
    policy = status.policy
    initial = {"mode": policy.mode, "threshold": policy.threshold, "sample_rate": policy.sample_rate,
               "cap": policy.cap}
    form = BacklogPolicyForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            backlog.backlog_policy_save(project=access.project, user=request.user, **form.cleaned_data)
        except errors.ValidationFailed as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Backlog policy saved. The next scoring turn uses it.")
            return redirect("evaluation-backlog-settings", project_slug=access.project.slug)
    if not can_edit:
        for field in form.fields.values():
            field.disabled = True
    context = {"form": form, "status": status, "can_edit": can_edit}
    return render(request, "evaluation/backlog_settings.html", context, status=400 if form.errors else 200)
