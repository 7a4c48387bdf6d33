"""Settings are read from the environment in one module and start nothing when imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _import_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**base, "SPYGLASS_DATA_DIR": str(tmp_path / "data"), **env},
    )


def test_importing_settings_without_urls_starts_no_server_and_says_what_to_do(tmp_path):
    result = _import_settings(tmp_path)

    assert result.returncode != 0
    assert "DATABASE_URL and REDIS_URL are not set" in result.stderr
    assert "make run" in result.stderr
    assert not (tmp_path / "data").exists()  # no embedded PostgreSQL or Redis was started


def test_settings_import_with_urls_set(tmp_path):
    result = _import_settings(tmp_path, DATABASE_URL="postgres://u@127.0.0.1:1/x", REDIS_URL="redis://127.0.0.1:1/0")

    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "data").exists()


def test_no_app_module_reads_the_environment_itself():
    readers = []
    for path in ROOT.glob("*/**/*.py"):
        parts = path.relative_to(ROOT).parts
        if parts[0] in ("config", "tests", "bench", "sdk", ".venv", ".data") or "migrations" in parts:
            continue
        text = path.read_text()
        for needle in ("os.environ.get(", "os.getenv(", "os.environ["):
            if needle in text:
                readers.append(f"{path.relative_to(ROOT)}: {needle}")
    assert readers == [], "read settings from django.conf.settings (config/settings.py) instead"
