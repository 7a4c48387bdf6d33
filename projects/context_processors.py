"""Navigation data for the base layout: the current project and the switcher list."""

from __future__ import annotations

from projects.selectors import projects_for_user


def navigation(request) -> dict:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    access = getattr(request, "access", None)
    return {
        "access": access,
        "current_project": access.project if access else None,
        # Lazy: evaluated only when the template renders the switcher.
        "nav_projects": projects_for_user(request.user),
    }
