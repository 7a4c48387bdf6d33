"""Prompt registry pages under /p/<project_slug>/prompts/.

Anyone in the project reads; members and admins write (new versions, label moves).
Each view validates input, calls services/selectors, renders.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from config.errors import Conflict, NotFound, ValidationFailed
from projects.auth import ProjectAccess
from projects.models import Role
from projects.pages import project_page
from prompts import charts, selectors, services
from prompts.models import Prompt, PromptType
from prompts.templating import template_render

VERSIONS_ON_PAGE = 20


def _not_found(exc: NotFound) -> Http404:
    return Http404(exc.message)


def _prompt_or_404(access: ProjectAccess, name: str) -> Prompt:
    try:
        return selectors.prompt_get(project=access.project, name=name)
    except NotFound as exc:
        raise _not_found(exc) from None


# ---------------------------------------------------------------------------- forms


def _parse_json(value: str, what: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None


class VersionForm(forms.Form):
    template = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "class": "mono"}),
        help_text='Text with {{variables}}. Chat prompts: paste a JSON list of {"role", "content"} messages.',
    )
    config = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "class": "mono"}),
        help_text='JSON object for model and parameters, e.g. {"model": "gpt-4o-mini", "temperature": 0.2}.',
    )
    commit_message = forms.CharField(required=False, max_length=2000)
    labels = forms.CharField(
        required=False, max_length=500, help_text="Comma-separated labels to move to this version, e.g. staging."
    )
    base_version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)

    def __init__(self, *args: Any, prompt_type: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prompt_type = prompt_type

    def clean_template(self) -> Any:
        raw = self.cleaned_data["template"]
        if self.prompt_type == PromptType.CHAT:
            return _parse_json(raw, "The chat template")
        return raw

    def clean_config(self) -> dict:
        raw = (self.cleaned_data.get("config") or "").strip()
        if not raw:
            return {}
        value = _parse_json(raw, "Config")
        if not isinstance(value, dict):
            raise forms.ValidationError("Config must be a JSON object.")
        return value

    def clean_labels(self) -> list[str]:
        return [label.strip() for label in self.cleaned_data.get("labels", "").split(",") if label.strip()]


class NewPromptForm(VersionForm):
    name = forms.CharField(max_length=128, help_text="Letters, digits, '_', '.', '-'. Used by the SDK to fetch it.")
    type = forms.ChoiceField(choices=PromptType.choices, initial=PromptType.TEXT)
    description = forms.CharField(required=False, max_length=5000)
    tags = forms.CharField(required=False, max_length=500, help_text="Comma-separated.")

    field_order = ["name", "type", "description", "tags", "template", "config", "commit_message", "labels"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        data = args[0] if args else kwargs.get("data")
        super().__init__(*args, prompt_type=(data or {}).get("type", PromptType.TEXT), **kwargs)


class LabelMoveForm(forms.Form):
    label = forms.CharField(max_length=64)
    version = forms.IntegerField(min_value=1)


def _save_version(form: VersionForm, *, access: ProjectAccess, name: str, prompt_type: str, **extra: Any):
    """Run the service; domain errors become form errors. Returns (version, status)."""
    data = form.cleaned_data
    try:
        version = services.prompt_version_create(
            project=access.project,
            name=name,
            template=data["template"],
            prompt_type=prompt_type,
            config=data["config"],
            commit_message=data["commit_message"],
            base_version=data["base_version"],
            labels=data["labels"],
            actor=services.Actor.from_access(access),
            **extra,
        )
    except Conflict as exc:
        form.add_error(None, exc.message)
        return None, 409
    except ValidationFailed as exc:
        field = "labels" if exc.code == "bad_label" else "config" if exc.code == "bad_config" else (
            "name" if exc.code == "bad_name" and "name" in form.fields else "template"
        )
        form.add_error(field, exc.message)
        return None, 400
    return version, 200


# ---------------------------------------------------------------------------- pages


@project_page(Role.VIEWER)
def prompt_list(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    rows, next_after = selectors.prompts_list(project=access.project, after=request.GET.get("after") or None)
    return render(
        request,
        "prompts/list.html",
        {"rows": rows, "next_after": next_after, "can_edit": access.can(Role.MEMBER)},
    )


@project_page(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def prompt_new(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    status = 200
    if request.method == "POST":
        form = NewPromptForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            version, status = _save_version(
                form,
                access=access,
                name=data["name"],
                prompt_type=data["type"],
                description=data["description"],
                tags=[t.strip() for t in data["tags"].split(",") if t.strip()],
            )
            if version is not None:
                messages.success(request, f"Created {data['name']} v1.")
                return redirect(_prompt_url(access, data["name"]))
        else:
            status = 400
    else:
        form = NewPromptForm(initial={"base_version": 0, "commit_message": "First version"})
    return render(request, "prompts/new.html", {"form": form}, status=status)


def _prompt_url(access: ProjectAccess, name: str) -> str:
    return reverse("prompt-detail", kwargs={"project_slug": access.project.slug, "name": name})


@project_page(Role.VIEWER)
def prompt_detail(request: HttpRequest, access: ProjectAccess, name: str) -> HttpResponse:
    prompt = _prompt_or_404(access, name)
    window = selectors.time_range(request.GET.get("range"))
    versions = list(selectors.prompt_versions(prompt=prompt, limit=VERSIONS_ON_PAGE))
    numbers = [v.version for v in versions]
    labels = selectors.prompt_labels(prompt=prompt)
    by_version = selectors.labels_by_version(prompt=prompt, labels=labels)
    metrics = selectors.version_metrics(project=access.project, prompt=prompt, versions=numbers, window=window)
    unit, series = selectors.version_timeseries(
        project=access.project, prompt=prompt, versions=numbers, window=window
    )
    rows = [{"version": v, "labels": by_version.get(v.version, []), "m": metrics[v.version]} for v in versions]
    default_b = labels.get("production", prompt.latest_version)
    default_a = next((n for n in numbers if n != default_b), default_b)
    return render(
        request,
        "prompts/detail.html",
        {
            "prompt": prompt,
            "rows": rows,
            "labels": labels,
            "history": selectors.prompt_label_history(prompt=prompt),
            "window": window,
            "ranges": list(selectors.RANGES),
            "figure": charts.metrics_over_time_figure(
                series, unit=unit, title=f"{prompt.name}: production metrics per version (last {window.key})"
            )
            if series
            else None,
            "can_edit": access.can(Role.MEMBER),
            "default_a": default_a,
            "default_b": default_b,
            "label_form": LabelMoveForm(initial={"label": "production", "version": prompt.latest_version}),
        },
    )


@project_page(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def version_new(request: HttpRequest, access: ProjectAccess, name: str) -> HttpResponse:
    prompt = _prompt_or_404(access, name)
    status = 200
    if request.method == "POST":
        form = VersionForm(request.POST, prompt_type=prompt.type)
        if form.is_valid():
            version, status = _save_version(form, access=access, name=name, prompt_type=prompt.type)
            if version is not None:
                messages.success(request, f"Saved {name} v{version.version}.")
                return redirect(_prompt_url(access, name))
        else:
            status = 400
    else:
        latest = selectors.prompt_version_get(prompt=prompt, version=prompt.latest_version)
        template = latest.template if isinstance(latest.template, str) else json.dumps(latest.template, indent=2)
        form = VersionForm(
            initial={
                "template": template,
                "config": json.dumps(latest.config, indent=2) if latest.config else "",
                "base_version": latest.version,
            },
            prompt_type=prompt.type,
        )
    return render(
        request,
        "prompts/version_new.html",
        {"prompt": prompt, "form": form, "base_version": form["base_version"].value()},
        status=status,
    )


@project_page(Role.VIEWER)
def version_detail(request: HttpRequest, access: ProjectAccess, name: str, version: int) -> HttpResponse:
    prompt = _prompt_or_404(access, name)
    try:
        found = selectors.prompt_version_get(prompt=prompt, version=version)
    except NotFound as exc:
        raise _not_found(exc) from None
    return render(
        request,
        "prompts/version.html",
        {
            "prompt": prompt,
            "v": found,
            "labels": selectors.labels_by_version(prompt=prompt).get(version, []),
            "config_json": json.dumps(found.config, indent=2, sort_keys=True),
            "traces": selectors.prompt_version_traces(project=access.project, prompt=prompt, version=version),
        },
    )


@project_page(Role.VIEWER)
@require_POST
def version_preview(request: HttpRequest, access: ProjectAccess, name: str, version: int) -> HttpResponse:
    """Render the template with the posted variables (no model call): a read, so viewers may."""
    prompt = _prompt_or_404(access, name)
    try:
        found = selectors.prompt_version_get(prompt=prompt, version=version)
    except NotFound as exc:
        raise _not_found(exc) from None
    values = {var: request.POST.get(f"var:{var}", "") for var in found.variables}
    try:
        rendered, error = template_render(found.template, values), None
    except ValidationFailed as exc:
        rendered, error = None, exc.message
    return render(
        request,
        "prompts/_preview.html",
        {"rendered": rendered, "is_chat": isinstance(rendered, list), "error": error},
    )


@project_page(Role.MEMBER)
@require_POST
def label_move(request: HttpRequest, access: ProjectAccess, name: str) -> HttpResponse:
    form = LabelMoveForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a label and a version.")
        return redirect(_prompt_url(access, name))
    label, number = form.cleaned_data["label"].strip(), form.cleaned_data["version"]
    try:
        event = services.prompt_label_move(
            project=access.project, name=name, label=label, version=number, actor=services.Actor.from_access(access)
        )
    except NotFound as exc:
        raise _not_found(exc) from None
    except ValidationFailed as exc:
        messages.error(request, exc.message)
        return redirect(_prompt_url(access, name))
    if event is None:
        messages.info(request, f"{label} already points at v{number}.")
    elif event.from_version is None:
        messages.success(request, f"Created label {label} at v{number}.")
    else:
        messages.success(request, f"Moved {label} from v{event.from_version} to v{number}.")
    return redirect(_prompt_url(access, name))


def _two_versions(request: HttpRequest, prompt: Prompt) -> tuple[Any, Any]:
    try:
        a, b = int(request.GET.get("a", "")), int(request.GET.get("b", ""))
        return (
            selectors.prompt_version_get(prompt=prompt, version=a),
            selectors.prompt_version_get(prompt=prompt, version=b),
        )
    except ValueError:
        raise Http404("Choose two versions: ?a=<version>&b=<version>.") from None
    except NotFound as exc:
        raise _not_found(exc) from None


@project_page(Role.VIEWER)
def version_diff(request: HttpRequest, access: ProjectAccess, name: str) -> HttpResponse:
    prompt = _prompt_or_404(access, name)
    a, b = _two_versions(request, prompt)
    return render(
        request,
        "prompts/diff.html",
        {"prompt": prompt, "diff": selectors.version_diff(a=a, b=b), "versions": _version_numbers(prompt)},
    )


def _version_numbers(prompt: Prompt) -> list[int]:
    return list(range(prompt.latest_version, 0, -1))


@project_page(Role.VIEWER)
def version_compare(request: HttpRequest, access: ProjectAccess, name: str) -> HttpResponse:
    prompt = _prompt_or_404(access, name)
    a, b = _two_versions(request, prompt)
    window = selectors.time_range(request.GET.get("range"))
    comparison = selectors.version_comparison(
        project=access.project, prompt=prompt, a=a.version, b=b.version, window=window
    )
    unit, series = selectors.version_timeseries(
        project=access.project, prompt=prompt, versions=[a.version, b.version], window=window
    )
    return render(
        request,
        "prompts/compare.html",
        {
            "prompt": prompt,
            "a": a,
            "b": b,
            "comparison": comparison,
            "window": window,
            "ranges": list(selectors.RANGES),
            "versions": _version_numbers(prompt),
            "min_per_arm": selectors.stats.MIN_PER_ARM,
            "figure": charts.metrics_over_time_figure(
                series, unit=unit, title=f"v{a.version} (A) vs v{b.version} (B), last {window.key}"
            )
            if series
            else None,
        },
    )
