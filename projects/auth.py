"""The one place that turns a request into (project, role).

Every API view and page goes through `project_access` (API) or the page decorator in
projects.views, so a queryset is never built without a project to scope it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from rest_framework import authentication, exceptions

from config.errors import NotFound, PermissionDenied
from projects.models import ApiKey, Membership, Project, Role, hash_secret, role_at_least

# last_used_at is informational; writing it on every ingest request would turn each
# read-mostly key lookup into a row update (and a hot-row lock under parallel clients).
LAST_USED_GRANULARITY = timedelta(minutes=1)

# What a secret key may do inside its project: everything a member can.
SECRET_KEY_ROLE = Role.MEMBER


class KeyAuthError(Exception):
    """The request carried no usable API key; the message says why."""


def api_key_from_authorization(header: str | None) -> ApiKey:
    """Resolve `Authorization: Bearer <secret>` or `Basic base64(public:secret)`."""
    if not header:
        raise KeyAuthError(
            "Missing Authorization header: send 'Authorization: Bearer <secret key>' "
            "or Basic auth with '<public key>:<secret key>'."
        )
    scheme, _, credentials = header.partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    public_key: str | None = None
    if scheme == "bearer":
        secret = credentials
    elif scheme == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise KeyAuthError("Basic credentials are not valid base64 of '<public key>:<secret key>'.") from None
        public_key, sep, secret = decoded.partition(":")
        if not sep:
            raise KeyAuthError("Basic credentials must be '<public key>:<secret key>'.")
    else:
        raise KeyAuthError(f"Unsupported Authorization scheme {scheme!r}; use Bearer or Basic.")
    if not secret:
        raise KeyAuthError("Empty secret key.")
    key = ApiKey.objects.select_related("project").filter(secret_hash=hash_secret(secret)).first()
    if key is None or (public_key is not None and key.public_key != public_key):
        raise KeyAuthError("Unknown API key.")
    if key.revoked_at is not None:
        raise KeyAuthError(f"API key {key.public_key} was revoked at {key.revoked_at.isoformat()}.")
    _touch_last_used(key)
    return key


def _touch_last_used(key: ApiKey) -> None:
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_GRANULARITY:
        # Conditional update: many concurrent requests, at most one write per window.
        ApiKey.objects.filter(pk=key.pk).exclude(last_used_at__gt=now - LAST_USED_GRANULARITY).update(
            last_used_at=now
        )
        key.last_used_at = now


class ApiKeyUser:
    """request.user for key-authenticated API calls (not a Django user)."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, key: ApiKey):
        self.key = key

    def __str__(self) -> str:
        return f"api-key:{self.key.public_key}"


class SecretKeyAuthentication(authentication.BaseAuthentication):
    """DRF authentication with a project's secret key (Bearer or Basic)."""

    def authenticate(self, request):
        header = request.headers.get("Authorization")
        if not header:
            return None  # fall through to session auth
        try:
            key = api_key_from_authorization(header)
        except KeyAuthError as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        return ApiKeyUser(key), key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="spyglass"'


@dataclass(frozen=True)
class ProjectAccess:
    project: Project
    role: str
    user: AbstractBaseUser | None = None
    api_key: ApiKey | None = None

    def can(self, required_role: str) -> bool:
        return role_at_least(self.role, required_role)

    def require(self, required_role: str) -> None:
        if not self.can(required_role):
            raise PermissionDenied(f"This needs the {required_role} role in project {self.project.slug}.")


def project_access(request, *, required_role: str = Role.VIEWER) -> ProjectAccess:
    """Resolve the project of an API request and check the caller's role in it.

    Key auth: the key's project. Session auth: `?project=<slug>` (or the
    `X-Spyglass-Project` header), defaulting to the user's only project. A project the
    user does not belong to is reported as not found, so its existence does not leak.
    """
    if isinstance(request.auth, ApiKey):
        access = ProjectAccess(project=request.auth.project, role=SECRET_KEY_ROLE, api_key=request.auth)
    else:
        user = request.user
        slug = request.query_params.get("project") or request.headers.get("X-Spyglass-Project")
        memberships = Membership.objects.select_related("project").filter(user=user)
        if slug:
            membership = memberships.filter(project__slug=slug).first()
            if membership is None:
                raise NotFound(f"No project {slug!r} among your projects.")
        else:
            found = list(memberships[:2])
            if len(found) != 1:
                raise NotFound("Name the project with ?project=<slug> (you belong to several or none).")
            membership = found[0]
        access = ProjectAccess(project=membership.project, role=membership.role, user=user)
    access.require(required_role)
    return access
