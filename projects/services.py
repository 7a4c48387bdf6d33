"""Writes for projects, memberships and API keys."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from config.errors import NotFound, ValidationFailed
from projects import signals
from projects.models import ApiKey, Membership, Project, Role, hash_secret


@dataclass(frozen=True)
class IssuedKey:
    """An API key right after creation: the only moment the secret is known."""

    key: ApiKey
    secret_key: str

    @property
    def public_key(self) -> str:
        return self.key.public_key


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "project"
    slug, n = base, 1
    while Project.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def project_create(*, name: str, owner: AbstractBaseUser, slug: str | None = None) -> tuple[Project, IssuedKey]:
    """Create a project with `owner` as admin and a first API key."""
    name = name.strip()
    if not name:
        raise ValidationFailed("Project name must not be empty.", detail={"name": "required"})
    if slug is not None and Project.objects.filter(slug=slug).exists():
        raise ValidationFailed(f"A project with slug {slug!r} already exists.", detail={"slug": "taken"})
    project = Project.objects.create(name=name, slug=slug or _unique_slug(name))
    Membership.objects.create(project=project, user=owner, role=Role.ADMIN)
    issued = api_key_create(project=project, created_by=owner, name="default")
    # Apps above projects add what a new project starts with (scores: default score
    # configs), in this transaction.
    signals.project_created.send(sender=Project, project=project)
    return project, issued


def api_key_create(*, project: Project, created_by: AbstractBaseUser | None = None, name: str = "") -> IssuedKey:
    secret = "sk-sg-" + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        project=project,
        name=name,
        public_key="pk-sg-" + secrets.token_urlsafe(16),
        secret_hash=hash_secret(secret),
        secret_hint=secret[-4:],
        created_by=created_by,
    )
    return IssuedKey(key=key, secret_key=secret)


def api_key_revoke(*, project: Project, key_id: int) -> ApiKey:
    key = ApiKey.objects.filter(project=project, pk=key_id).first()
    if key is None:
        raise NotFound("No such API key in this project.")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


LAST_ADMIN_MESSAGE = (
    "{username} is the last admin of {project}: make someone else an admin first, "
    "so the project keeps someone who can manage keys and members."
)


def _lock_admins(project: Project) -> list[int]:
    """User ids of the project's admins, row-locked until the transaction ends.

    The lock serializes concurrent demotions: two admins each removing the other at
    the same moment would otherwise both see "one other admin left" and both succeed.
    """
    return list(
        Membership.objects.select_for_update()
        .filter(project=project, role=Role.ADMIN)
        .order_by("pk")
        .values_list("user_id", flat=True)
    )


def _ensure_not_last_admin(project: Project, membership: Membership) -> None:
    if membership.role == Role.ADMIN and _lock_admins(project) == [membership.user_id]:
        raise ValidationFailed(
            LAST_ADMIN_MESSAGE.format(username=membership.user.get_username(), project=project.name),
            code="last_admin",
        )


@transaction.atomic
def membership_set(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    """Add `user` to the project with `role`, or change their role.

    Refuses to demote the project's last admin (ValidationFailed, code last_admin).
    """
    if role not in Role.values:
        raise ValidationFailed(f"Unknown role {role!r}; expected one of {', '.join(Role.values)}.")
    existing = Membership.objects.select_for_update().filter(project=project, user=user).first()
    if existing is not None and role != Role.ADMIN:
        _ensure_not_last_admin(project, existing)
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def membership_remove(*, project: Project, membership_id: int) -> Membership:
    """Remove a member; never the last admin. Another project's membership is NotFound."""
    membership = (
        Membership.objects.select_for_update().select_related("user").filter(project=project, pk=membership_id).first()
    )
    if membership is None:
        raise NotFound("No such member in this project.")
    _ensure_not_last_admin(project, membership)
    membership.delete()
    return membership


def member_add(*, project: Project, username: str, role: str) -> Membership:
    """Add an existing user, found by username, to the project."""
    from django.contrib.auth import get_user_model

    username = username.strip()
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise ValidationFailed(
            f"No user named {username!r}. They need an account first (an administrator creates it).",
            detail={"username": "unknown"},
        )
    if Membership.objects.filter(project=project, user=user).exists():
        raise ValidationFailed(f"{username} is already a member; change their role in the table instead.")
    return membership_set(project=project, user=user, role=role)


def project_rename(*, project: Project, name: str) -> Project:
    """Change the display name; the slug (and so every URL and key) stays the same."""
    name = name.strip()
    if not name:
        raise ValidationFailed("Project name must not be empty.", detail={"name": "required"})
    if len(name) > Project._meta.get_field("name").max_length:
        raise ValidationFailed("Project name is too long (at most 200 characters).", detail={"name": "too_long"})
    project.name = name
    project.save(update_fields=["name"])
    return project
