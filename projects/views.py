"""Pages: home (the user's projects), the project root, and project settings.

Login/logout are Django's auth views. Settings (keys, members, name) are admin-only:
they hand out credentials and access, so other roles get a 403 that says why.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from config.errors import DomainError, NotFound
from projects import login_throttle
from projects.auth import ProjectAccess
from projects.models import Membership, Role
from projects.pages import project_page
from projects.selectors import api_keys_for, members_for, projects_for_user
from projects.services import (
    api_key_create,
    api_key_revoke,
    member_add,
    membership_remove,
    membership_set,
    project_rename,
)

# Session key holding a just-created secret until the settings page shows it once.
# The session lives server-side (database); Django's message storage would put it in a
# (signed, not encrypted) cookie first, which is not where a secret belongs.
NEW_SECRET_SESSION_KEY = "spyglass.new_secret"


class LoginView(auth_views.LoginView):
    """Django's log-in page, refusing with 429 while failed attempts are over the limit
    (projects/login_throttle.py; its backend also guards the admin's log-in)."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        wait = login_throttle.login_wait_seconds(
            username=request.POST.get("username", ""), address=login_throttle.client_address(request)
        )
        if wait:
            message = login_throttle.throttled_message(wait)
            context = self.get_context_data(form=self.get_form_class()(request), throttled=message)
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        login_throttle.login_failures_clear(username=form.get_user().get_username())
        return super().form_valid(form)


@login_required
def home(request):
    projects = projects_for_user(request.user).prefetch_related("memberships")
    rows = []
    for project in projects:
        role = next((m.role for m in project.memberships.all() if m.user_id == request.user.pk), None)
        rows.append({"project": project, "role": role})
    return render(request, "projects/home.html", {"rows": rows})


@project_page(Role.VIEWER)
def project_root(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    # The overview (dashboards) is where a project starts; the explorer is in the nav.
    return redirect("dashboards-overview", project_slug=access.project.slug)


class KeyForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, strip=True)


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150, strip=True)
    role = forms.ChoiceField(choices=Role.choices)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ProjectNameForm(forms.Form):
    name = forms.CharField(max_length=200, strip=True)


def _settings_url(access: ProjectAccess) -> str:
    return reverse("project-settings", kwargs={"project_slug": access.project.slug})


def _form_errors(form: forms.Form) -> str:
    return " ".join(
        f"{'' if field == '__all__' else field + ': '}{e}" for field, errs in form.errors.items() for e in errs
    )


@project_page(Role.ADMIN)
def settings_page(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    # pop(): the secret is rendered on this one response and is gone from the session.
    new_secret = request.session.pop(NEW_SECRET_SESSION_KEY, None)
    keys = api_keys_for(access.project)
    members = list(members_for(access.project))
    admin_count = sum(1 for m in members if m.role == Role.ADMIN)
    context = {
        "keys": keys,
        "members": members,
        "admin_count": admin_count,
        "roles": Role.choices,
        "new_secret": new_secret,
        "name_form": ProjectNameForm(initial={"name": access.project.name}),
    }
    return render(request, "projects/settings.html", context)


def _run(request: HttpRequest, access: ProjectAccess, action, success: str) -> HttpResponse:
    """Call a service; report its domain error as a message on the settings page. An id
    in the URL that is not this project's (a key, a membership) is a 404, as on every
    other page: another project's ids are not acknowledged."""
    try:
        action()
    except NotFound as exc:
        raise Http404(exc.message) from None
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success)
    return redirect(_settings_url(access))


@require_POST
@project_page(Role.ADMIN)
def key_create(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    form = KeyForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect(_settings_url(access))
    issued = api_key_create(project=access.project, created_by=request.user, name=form.cleaned_data["name"])
    request.session[NEW_SECRET_SESSION_KEY] = {
        "public_key": issued.public_key,
        "secret_key": issued.secret_key,
        "name": issued.key.name,
    }
    return redirect(_settings_url(access))


@require_POST
@project_page(Role.ADMIN)
def key_revoke(request: HttpRequest, access: ProjectAccess, key_id: int) -> HttpResponse:
    return _run(
        request, access, lambda: api_key_revoke(project=access.project, key_id=key_id),
        "Key revoked: requests with it now get 401.",
    )  # fmt: skip


@require_POST
@project_page(Role.ADMIN)
def member_create(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    form = MemberAddForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect(_settings_url(access))
    data = form.cleaned_data
    return _run(
        request, access, lambda: member_add(project=access.project, username=data["username"], role=data["role"]),
        f"Added {data['username']} as {data['role']}.",
    )  # fmt: skip


@require_POST
@project_page(Role.ADMIN)
def member_role(request: HttpRequest, access: ProjectAccess, membership_id: int) -> HttpResponse:
    form = RoleForm(request.POST)
    membership = Membership.objects.filter(project=access.project, pk=membership_id).select_related("user").first()
    if membership is None:
        raise Http404("No such member in this project.")
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect(_settings_url(access))
    role = form.cleaned_data["role"]
    return _run(
        request, access, lambda: membership_set(project=access.project, user=membership.user, role=role),
        f"{membership.user.get_username()} is now {role}.",
    )  # fmt: skip


@require_POST
@project_page(Role.ADMIN)
def member_remove(request: HttpRequest, access: ProjectAccess, membership_id: int) -> HttpResponse:
    return _run(
        request, access, lambda: membership_remove(project=access.project, membership_id=membership_id),
        "Member removed.",
    )  # fmt: skip


@require_POST
@project_page(Role.ADMIN)
def project_name(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    form = ProjectNameForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect(_settings_url(access))
    return _run(
        request, access, lambda: project_rename(project=access.project, name=form.cleaned_data["name"]),
        "Project renamed.",
    )  # fmt: skip
