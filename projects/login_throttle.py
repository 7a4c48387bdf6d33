"""Failed log-ins, counted per username and per client address, refused past a limit.

Each failed password check is a row (LoginFailure); a username with
SPYGLASS_LOGIN_MAX_FAILURES_PER_USER failures, or an address with
SPYGLASS_LOGIN_MAX_FAILURES_PER_ADDRESS, within SPYGLASS_LOGIN_WINDOW_SECONDS is refused
until the oldest of those failures leaves the window. Rows live in the database, not
in a per-process cache, so the limits hold across every gunicorn worker and machine.

Two hooks cover every password form (the log-in page and the admin's):
- ThrottledModelBackend refuses to even check the password while a limit is reached, so
  a guess made during the lock-out tells the attacker nothing;
- the user_login_failed signal records each real failure.
The log-in page asks `login_wait_seconds` first to answer 429 with a message.

Trade-off, as with django-axes: whoever knows a username can lock it out for the window
by failing on purpose. A successful log-in clears the username's failures.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from projects.models import LoginFailure

# Marks a request refused by the throttle, so its refusal is not counted as a failure
# (which would extend the lock-out for as long as an attacker keeps trying).
_THROTTLED_ATTR = "_spyglass_login_throttled"


def client_address(request: HttpRequest | None) -> str:
    # REMOTE_ADDR, not X-Forwarded-For: the header is client-controlled unless a trusted
    # proxy rewrites it, and a limit keyed on it could be dodged by inventing values.
    if request is None:
        return "unknown"
    return request.META.get("REMOTE_ADDR") or "unknown"


def _normalized(username: str) -> str:
    # Case-folded so "Admin" and "admin" share one budget.
    return (username or "").strip().lower()[:150]


def login_wait_seconds(*, username: str, address: str) -> int:
    """Seconds until this username and address may try again; 0 = now."""
    window = timedelta(seconds=settings.SPYGLASS_LOGIN_WINDOW_SECONDS)
    now = timezone.now()
    wait = 0
    for field, value, limit in (
        ("username", _normalized(username), settings.SPYGLASS_LOGIN_MAX_FAILURES_PER_USER),
        ("address", address, settings.SPYGLASS_LOGIN_MAX_FAILURES_PER_ADDRESS),
    ):
        # The limit-th most recent failure: once it leaves the window, fewer than
        # `limit` remain and a new attempt is allowed.
        recent = (
            LoginFailure.objects.filter(**{field: value}, created_at__gt=now - window)
            .order_by("-created_at")
            .values_list("created_at", flat=True)[limit - 1 : limit]
        )
        for moment in recent:
            wait = max(wait, int((moment + window - now).total_seconds()) + 1)
    return wait


def login_failure_record(*, username: str, address: str) -> None:
    now = timezone.now()
    LoginFailure.objects.create(username=_normalized(username), address=address[:64], created_at=now)
    # Keep the table as small as the window: rows past it never count again.
    cutoff = now - timedelta(seconds=settings.SPYGLASS_LOGIN_WINDOW_SECONDS)
    LoginFailure.objects.filter(created_at__lt=cutoff).delete()


def login_failures_clear(*, username: str) -> None:
    LoginFailure.objects.filter(username=_normalized(username)).delete()


def throttled_message(wait: int) -> str:
    minutes = max(1, -(-wait // 60))
    return (
        f"Too many failed log-ins for this username or from this address. Try again in {minutes} "
        f"minute{'s' if minutes != 1 else ''}."
    )


class ThrottledModelBackend(ModelBackend):
    """Django's username/password backend, closed while a limit is reached."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field(), "")
        if login_wait_seconds(username=username or "", address=client_address(request)):
            if request is not None:
                setattr(request, _THROTTLED_ATTR, True)
            raise PermissionDenied("login throttled")  # stops authenticate() for every backend
        return super().authenticate(request, username=username, password=password, **kwargs)

    @staticmethod
    def _username_field() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD


@receiver(user_login_failed, dispatch_uid="spyglass.login_throttle.record")
def _record_failure(sender, credentials: dict, request: HttpRequest | None = None, **kwargs) -> None:
    if request is not None and getattr(request, _THROTTLED_ATTR, False):
        return
    login_failure_record(username=credentials.get("username", ""), address=client_address(request))
