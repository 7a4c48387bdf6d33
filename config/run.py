"""`make run`: start what is missing, prepare the database, run web + worker + beat.

Embedded Postgres/Redis are started here (once) and their URLs exported, so the three
child processes share them; when the process supervisor returns (Ctrl-C), leaving this
process stops the embedded servers it started.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from honcho.manager import Manager

BASE_DIR = Path(__file__).resolve().parent.parent


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(BASE_DIR))
    from config import embedded

    embedded.ensure_services()

    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("bootstrap_demo")
    # A newcomer's first login should show a full app, so an empty demo project is
    # seeded once; later runs leave it alone.
    call_command("seed_demo", "--if-empty")

    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    manager = Manager()
    manager.add_process(
        "web",
        f"{bindir}/gunicorn config.wsgi --bind {host}:{port} --workers {os.environ.get('WEB_CONCURRENCY', '3')} "
        # Threads let a process answer 503 to ingest beyond SPYGLASS_MAX_INGEST_INFLIGHT
        # while its other requests work (config/inflight.py); WEB_THREADS=1 is sync workers.
        f"--threads {os.environ.get('WEB_THREADS', '4')} "
        "--access-logfile - --graceful-timeout 10",
        env=env,
        cwd=str(BASE_DIR),
    )
    manager.add_process(
        "worker",
        f"{bindir}/celery -A config worker -Q {','.join(settings.CELERY_WORKER_QUEUES)} "
        f"--concurrency {os.environ.get('CELERY_CONCURRENCY', '1')} -l info",
        env=env,
        cwd=str(BASE_DIR),
    )
    manager.add_process(
        "beat",
        f"{bindir}/celery -A config beat -l info",
        env=env,
        cwd=str(BASE_DIR),
    )
    manager.loop()
    return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
