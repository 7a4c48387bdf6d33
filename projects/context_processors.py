"""Navigation data for the base layout: the current project and the switcher list."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from projects.selectors import projects_for_user


def navigation(request) -> dict:
    # Only a logged-in person has projects to switch between. An API page rendered for a
    # key-authenticated request (the API docs with `Authorization: Bearer sk-...`) has
    # DRF's ApiKeyUser as request.user, which no membership can point at.
    user = getattr(request, "user", None)
    if not isinstance(user, AbstractBaseUser) or not user.is_authenticated:
        return {}
    access = getattr(request, "access", None)
    return {
        "access": access,
        "current_project": access.project if access else None,
        # Lazy: evaluated only when the template renders the switcher.
        "nav_projects": projects_for_user(request.user),
    }
