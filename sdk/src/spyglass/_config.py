"""Configuration: explicit arguments win, then ``SPYGLASS_*`` environment variables.

Bad environment values never raise: the SDK runs inside someone else's app, so a typo in
an env var degrades to the default with one warning instead of crashing the process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._log import warn_once

MaskFn = Callable[[Any], Any]

DEFAULT_MAX_FIELD_CHARS = 20_000
DEFAULT_EXPORT_TIMEOUT = 5.0

_TRUE = {"1", "true", "on"}
_FALSE = {"0", "false", "off"}


@dataclass(frozen=True)
class Config:
    host: str | None
    public_key: str | None
    secret_key: str | None
    service_name: str
    environment: str | None
    release: str | None
    sample_rate: float
    mask: MaskFn | None
    enabled: bool
    max_field_chars: int
    export_timeout: float

    @property
    def traces_endpoint(self) -> str | None:
        return f"{self.host}/v1/traces" if self.host else None

    @property
    def feedback_endpoint(self) -> str | None:
        return f"{self.host}/api/v1/feedback" if self.host else None


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    warn_once(f"env:{name}", "spyglass: ignoring %s=%r (expected true/false); using %s", name, raw, default)
    return default


def _env_float(name: str) -> float | None:
    raw = _env(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        warn_once(f"env:{name}", "spyglass: ignoring %s=%r (expected a number)", name, raw)
        return None


def _clamp_rate(rate: float) -> float:
    if not 0.0 <= rate <= 1.0:
        warn_once("sample_rate", "spyglass: sample_rate %r is outside [0, 1]; clamping", rate)
    return min(max(float(rate), 0.0), 1.0)


def resolve(
    *,
    host: str | None,
    public_key: str | None,
    secret_key: str | None,
    service_name: str | None,
    environment: str | None,
    release: str | None,
    sample_rate: float | None,
    mask: MaskFn | None,
    enabled: bool | None,
    max_field_chars: int | None,
    export_timeout: float | None,
) -> Config:
    """Merge explicit arguments with the environment into one immutable Config."""
    host = host or _env("SPYGLASS_HOST")
    if sample_rate is None:
        sample_rate = _env_float("SPYGLASS_SAMPLE_RATE")
    return Config(
        host=host.rstrip("/") if host else None,
        public_key=public_key or _env("SPYGLASS_PUBLIC_KEY"),
        secret_key=secret_key or _env("SPYGLASS_SECRET_KEY"),
        service_name=(
            service_name or _env("SPYGLASS_SERVICE_NAME") or _env("OTEL_SERVICE_NAME") or "unknown_service"
        ),
        environment=environment or _env("SPYGLASS_ENVIRONMENT"),
        release=release or _env("SPYGLASS_RELEASE"),
        sample_rate=_clamp_rate(1.0 if sample_rate is None else sample_rate),
        mask=mask,
        enabled=_env_bool("SPYGLASS_ENABLED", True) if enabled is None else bool(enabled),
        max_field_chars=max(int(max_field_chars or DEFAULT_MAX_FIELD_CHARS), 64),
        export_timeout=float(export_timeout or DEFAULT_EXPORT_TIMEOUT),
    )
