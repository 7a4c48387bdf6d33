"""pytest plugin (pytest.ini: `-p tests.pytest_services`): the servers a test run uses.

Loaded before pytest-django reads the settings, which start nothing themselves: the run
gets a PostgreSQL of the test suite's own and a private Redis (config.embedded
.ensure_test_services), unless DATABASE_URL / REDIS_URL point elsewhere (CI against
external servers). The private Redis is stopped when the run ends.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

_RUN_DIR: list[Path] = []


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args) -> None:
    from config import embedded

    run_dir = Path(tempfile.mkdtemp(prefix="spyglass-test-"))
    _RUN_DIR.append(run_dir)
    embedded.ensure_test_services(run_dir)


def pytest_unconfigure(config) -> None:
    from config import embedded

    embedded.redis_stop_if_started_here()
    for run_dir in _RUN_DIR:
        shutil.rmtree(run_dir, ignore_errors=True)
