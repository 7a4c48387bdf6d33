"""The project's retention page: how long traces are kept (admins edit, everyone reads),
and what the last run deleted."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from config.errors import ValidationFailed
from projects.auth import ProjectAccess
from projects.models import Role
from projects.pages import project_page
from retention.models import MAX_DAYS, RetentionMode
from retention.selectors import retention_last_run, retention_policy_get
from retention.services import retention_policy_save


class RetentionForm(forms.Form):
    mode = forms.ChoiceField(choices=RetentionMode.choices, widget=forms.RadioSelect, label="Keep traces")
    days = forms.IntegerField(min_value=1, max_value=MAX_DAYS, required=False, label="Days (with “Delete after”)")

    def clean(self) -> dict:
        data = super().clean()
        if data.get("mode") == RetentionMode.DAYS and data.get("days") is None:
            self.add_error("days", "Give the number of days to keep (1 or more).")
        elif data.get("mode") != RetentionMode.DAYS:
            data["days"] = None  # the other modes keep no number
        return data


@require_http_methods(["GET", "POST"])
@project_page(Role.VIEWER)
def retention_settings(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    current = retention_policy_get(project=access.project)
    can_edit = access.can(Role.ADMIN)
    if request.method == "POST" and not can_edit:
        raise PermissionDenied(f"Only admins of {access.project.name} change its retention.")
    form = RetentionForm(request.POST or None, initial={"mode": current["mode"], "days": current["days"]})
    if not can_edit:
        for field in form.fields.values():
            field.disabled = True
    if request.method == "POST" and form.is_valid():
        try:
            retention_policy_save(project=access.project, mode=form.cleaned_data["mode"],
                                  days=form.cleaned_data["days"], user=request.user)
        except ValidationFailed as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Retention saved. The next run (at most every few minutes) applies it.")
            return redirect("retention-settings", project_slug=access.project.slug)
    context = {"form": form, "current": current, "can_edit": can_edit,
               "last_run": retention_last_run(project=access.project)}
    return render(request, "retention/settings.html", context, status=400 if form.errors else 200)
