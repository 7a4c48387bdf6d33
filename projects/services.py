"""Writes for projects, memberships and API keys."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from config.errors import NotFound, ValidationFailed
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


def membership_set(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationFailed(f"Unknown role {role!r}; expected one of {', '.join(Role.values)}.")
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership
