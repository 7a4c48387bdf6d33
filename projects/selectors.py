"""Reads for projects and memberships."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from projects.models import ApiKey, Membership, Project


def projects_for_user(user: AbstractBaseUser) -> QuerySet[Project]:
    return Project.objects.filter(memberships__user=user).order_by("name")


def membership_for(*, user: AbstractBaseUser, project: Project) -> Membership | None:
    return Membership.objects.filter(user=user, project=project).first()


def api_keys_for(project: Project) -> QuerySet[ApiKey]:
    """The project's keys, newest first, with their creator (one query)."""
    return ApiKey.objects.filter(project=project).select_related("created_by").order_by("-created_at")


def members_for(project: Project) -> QuerySet[Membership]:
    """The project's memberships with their users, by username (one query)."""
    return Membership.objects.filter(project=project).select_related("user").order_by("user__username")
