"""Reads for projects and memberships."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from projects.models import Membership, Project


def projects_for_user(user: AbstractBaseUser) -> QuerySet[Project]:
    return Project.objects.filter(memberships__user=user).order_by("name")


def membership_for(*, user: AbstractBaseUser, project: Project) -> Membership | None:
    return Membership.objects.filter(user=user, project=project).first()
