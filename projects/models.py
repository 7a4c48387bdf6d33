from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    REVIEWER = "reviewer", "Reviewer"
    VIEWER = "viewer", "Viewer"


# Higher rank can do everything a lower rank can.
ROLE_RANK = {Role.VIEWER: 0, Role.REVIEWER: 1, Role.MEMBER: 2, Role.ADMIN: 3}


def role_at_least(role: str, required: str) -> bool:
    return ROLE_RANK[Role(role)] >= ROLE_RANK[Role(required)]


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


def hash_secret(secret: str) -> str:
    # Secrets are 256-bit random strings, so a fast unsalted hash is safe and keeps the
    # per-request key lookup an index probe instead of a deliberate slow KDF.
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKey(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True, default="")
    public_key = models.CharField(max_length=64, unique=True)
    secret_hash = models.CharField(max_length=64, unique=True)
    secret_hint = models.CharField(max_length=16, help_text="Last characters of the secret, for recognition.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.public_key} ({self.project})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class LoginFailure(models.Model):
    """One failed password check (projects/login_throttle.py counts them)."""

    username = models.CharField(max_length=150)
    address = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["username", "created_at"], name="loginfail_user_time"),
            models.Index(fields=["address", "created_at"], name="loginfail_addr_time"),
            models.Index(fields=["created_at"], name="loginfail_time"),
        ]

    def __str__(self) -> str:
        return f"failed log-in {self.username!r} from {self.address} at {self.created_at:%Y-%m-%d %H:%M:%S}"
