"""Pages: home (the user's projects). Login/logout are Django's auth views."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from projects.selectors import projects_for_user


@login_required
def home(request):
    projects = projects_for_user(request.user).prefetch_related("memberships")
    rows = []
    for project in projects:
        role = next((m.role for m in project.memberships.all() if m.user_id == request.user.pk), None)
        rows.append({"project": project, "role": role})
    return render(request, "projects/home.html", {"rows": rows})
