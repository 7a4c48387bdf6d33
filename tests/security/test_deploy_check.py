"""`manage.py check --deploy` is clean with the production settings the README documents,
and names what is missing with the development defaults."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "k3v9-Zq7!pW2rT8#mX4yB6nL1sD5fG0hJ-production-like-secret-value",
    "SPYGLASS_INSECURE_DEV_SECRET": "0",
    "ALLOWED_HOSTS": "spyglass.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://spyglass.example.com",
    "SPYGLASS_SECURE_COOKIES": "1",
    "SPYGLASS_SSL_REDIRECT": "1",
    "SPYGLASS_HSTS_SECONDS": "31536000",
    "SPYGLASS_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SPYGLASS_HSTS_PRELOAD": "1",
    "SPYGLASS_TRUST_X_FORWARDED_PROTO": "1",
}


def check_deploy(extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    # Not the test run's own switches: browser tests set DJANGO_ALLOW_ASYNC_UNSAFE, which
    # production must not (async.E001).
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPYGLASS_", "SECRET_KEY", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"))}
    # The test run's own servers: `check` needs the settings to load, not to connect.
    env.update(DATABASE_URL=os.environ["DATABASE_URL"], REDIS_URL=os.environ["REDIS_URL"], **extra_env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = check_deploy(PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_names_what_the_development_defaults_lack():
    result = check_deploy({})
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W009", "security.W012", "security.W016"):
        assert warning in result.stderr + result.stdout, warning
