"""The project's privacy page: what is masked at ingest (tracing/masking.py)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from config.errors import ValidationFailed
from projects.auth import ProjectAccess
from projects.models import Role
from projects.pages import project_page
from tracing.masking import DETECTORS
from tracing.selectors import masking_settings_get
from tracing.services import masking_settings_save


class MaskingForm(forms.Form):
    kinds = forms.MultipleChoiceField(
        choices=[(d.kind, d.label) for d in DETECTORS], required=False,
        widget=forms.CheckboxSelectMultiple, label="Mask these at ingest",
    )
    custom = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4, "placeholder": r"order_id: ORD-\d{6}"}),
        label="Custom rules, one per line as name: regular expression",
    )

    def clean_custom(self) -> list[dict[str, str]]:
        rules = []
        for number, line in enumerate(self.cleaned_data["custom"].splitlines(), start=1):
            if not line.strip():
                continue
            name, colon, pattern = line.partition(":")
            if not colon:
                raise forms.ValidationError(f"line {number}: write it as name: regular expression")
            rules.append({"name": name.strip(), "pattern": pattern.strip()})
        return rules


@require_http_methods(["GET", "POST"])
@project_page(Role.ADMIN)
def masking_settings(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    current = masking_settings_get(project=access.project)
    custom = "\n".join(f"{rule['name']}: {rule['pattern']}" for rule in current["custom"])
    initial = {"kinds": current["kinds"], "custom": custom}
    form = MaskingForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            masking_settings_save(project=access.project, kinds=form.cleaned_data["kinds"],
                                  custom=form.cleaned_data["custom"])
        except ValidationFailed as exc:
            form.add_error("custom", exc.message)
        else:
            messages.success(request, "Masking saved. It applies to data received from now on.")
            return redirect("tracing-masking-settings", project_slug=access.project.slug)
    return render(request, "tracing/masking_settings.html", {"form": form, "is_default": current["default"]},
                  status=400 if form.errors else 200)
