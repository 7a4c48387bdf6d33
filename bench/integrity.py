"""What the integrity rules cost: the score write path, and the migrations on a big table.

    .venv/bin/python bench/integrity.py [--scores 1000000] [--writes 100] [--rounds 11] [--smoke]

1. Migrations (scores 0003, annotation 0003, prompts 0002, evaluation 0003) on a
   database holding `--scores` scores, ~6% of them end-user thumbs of which one in ten
   has a duplicate to remove. Each migration runs in one transaction and holds its
   table's lock throughout, so its wall time is how long writes to that table wait.
2. One score write through scores.services.score_upsert, median per call over
   `--rounds` interleaved rounds of `--writes` calls each, all in the same run. Every
   call commits, as a request does; once waiting for the WAL flush (as deployed) and
   once with synchronous_commit off, which shows the work without the flush wait:
   - end_user: what a thumbs is now (look-up by target, then insert or update);
   - api: the same thumbs written as main wrote end-user scores (insert, no look-up);
   each with the constraint trigger score_fits_config on and off (the 5 CHECKs stay on:
   they cost a comparison or two per row). "insert" writes fresh traces, "repeat"
   writes the same traces again (end_user: an update; api: another row).
Everything runs against a throw-away embedded Postgres in a temp dir.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._django import django_start  # noqa: E402 - needs ROOT on the path

BEFORE_INTEGRITY = [
    ("scores", "0002_rename_tables"),
    ("annotation", "0002_rename_tables"),
    ("prompts", "0001_initial"),
    ("evaluation", "0002_rename_tables"),
]
INTEGRITY = [("scores", "0003_integrity"), ("annotation", "0003_integrity"), ("prompts", "0002_integrity"),
             ("evaluation", "0003_integrity")]  # fmt: skip


def load_scores(database_url: str, project_id: int, n: int) -> int:
    """COPY n scores: evaluator numbers, some end-user thumbs, some of those twice."""
    import psycopg

    now = datetime.now(UTC)
    duplicates = 0
    with psycopg.connect(database_url) as conn, conn.cursor().copy(
        "COPY scores_score (id, project_id, trace_id, name, value, data_type, source, comment, metadata, "
        "created_at, updated_at) FROM STDIN"
    ) as out:
        for i in range(n):
            trace_id = f"{i:032x}"
            if i % 16 == 0:  # ~6% of traces get a thumbs, like bench/explorer.py
                out.write_row((uuid.uuid4(), project_id, trace_id, "user_thumbs", 1.0, "boolean", "end_user", "",
                               "{}", now, now))  # fmt: skip
                if i % 160 == 0:
                    duplicates += 1
                    out.write_row((uuid.uuid4(), project_id, trace_id, "user_thumbs", 0.0, "boolean", "end_user",
                                   "", "{}", now, now))  # fmt: skip
            else:
                out.write_row((uuid.uuid4(), project_id, trace_id, "hallucination", (i % 100) / 100, "numeric",
                               "evaluator", "", "{}", now, now))  # fmt: skip
    return duplicates


def time_migrations() -> list[tuple[str, float]]:
    from django.core.management import call_command

    timings = []
    for app, name in INTEGRITY:
        t0 = time.perf_counter()
        call_command("migrate", app, name, verbosity=0)
        timings.append((f"{app} {name}", time.perf_counter() - t0))
    return timings


def time_writes(project, writes: int, rounds: int, *, wait_for_flush: bool) -> dict[tuple[str, str, str], list]:
    """ms per score_upsert call for (source, trigger, insert|repeat), one figure per round.

    Each call commits on its own, as one feedback request does. wait_for_flush=False sets
    synchronous_commit off for the session: the commit no longer waits for the WAL flush,
    which otherwise dominates and hides what the look-up and the trigger cost. (Not one
    transaction around a round: past 64 savepoints Postgres's subtransaction cache
    overflows and every visibility check slows down, which would measure that instead.)
    """
    from django.db import connection

    from scores.services import score_upsert

    with connection.cursor() as cursor:
        cursor.execute(f"SET synchronous_commit = {'on' if wait_for_flush else 'off'}")
    samples: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(rounds):
        for trigger in ("on", "off"):
            with connection.cursor() as cursor:
                action = "ENABLE" if trigger == "on" else "DISABLE"
                cursor.execute(f"ALTER TABLE scores_score {action} TRIGGER score_fits_config")
            for source in ("end_user", "api"):
                traces = [uuid.uuid4().hex for _ in range(writes)]
                for phase in ("insert", "repeat"):
                    t0 = time.perf_counter()
                    for i, trace_id in enumerate(traces):
                        score_upsert(project=project, trace_id=trace_id, name="user_thumbs", value=i % 2 == 0,
                                     source=source)  # fmt: skip
                    elapsed = time.perf_counter() - t0
                    samples.setdefault((source, trigger, phase), []).append(1000 * elapsed / writes)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE scores_score ENABLE TRIGGER score_fits_config")
        cursor.execute("SET synchronous_commit = on")
    return samples


def print_writes(title: str, samples: dict[tuple[str, str, str], list], writes: int) -> None:
    rounds = len(next(iter(samples.values())))
    print(f"\n{title}: ms per call, median (min–max) of {rounds} rounds x {writes} writes")
    print("source    trigger   insert                 repeat")
    for source in ("end_user", "api"):
        for trigger in ("on", "off"):
            cells = []
            for phase in ("insert", "repeat"):
                values = samples[source, trigger, phase]
                cells.append(f"{statistics.median(values):6.3f} ({min(values):.3f}–{max(values):.3f})")
            print(f"{source:<9} {trigger:<8} {cells[0]:<22} {cells[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scores", type=int, default=1_000_000, help="scores in the table the migrations repair")
    parser.add_argument("--writes", type=int, default=100, help="score writes per round and kind")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run that only checks the script works (make test); not a measurement")
    args = parser.parse_args()
    if args.smoke:
        args.scores, args.writes, args.rounds = 2_000, 5, 2

    with tempfile.TemporaryDirectory(prefix="spyglass-bench-") as tmp:
        database_url = django_start(tmp)
        from django.contrib.auth import get_user_model
        from django.db import connection

        from projects.services import project_create

        owner = get_user_model().objects.create_user("bench", password="bench")
        project, _ = project_create(name="Bench", owner=owner, slug="bench")
        from django.db.migrations.executor import MigrationExecutor

        MigrationExecutor(connection).migrate(BEFORE_INTEGRITY)
        t0 = time.perf_counter()
        duplicates = load_scores(database_url, project.pk, args.scores)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE scores_score")
            cursor.execute("SELECT count(*) FROM scores_score")
            total = cursor.fetchone()[0]
        print(f"loaded {total:,} scores ({duplicates:,} duplicate thumbs) in {time.perf_counter() - t0:.1f} s")

        print("\nmigration                      wall s")
        for name, seconds in time_migrations():
            print(f"{name:<30} {seconds:7.2f}")
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM scores_score")
            left = cursor.fetchone()[0]
        print(f"scores left: {left:,} (removed {total - left:,})")

        for title, wait in (("commit waits for the WAL flush (as deployed)", True), ("synchronous_commit off", False)):
            samples = time_writes(project, args.writes, args.rounds, wait_for_flush=wait)
            print_writes(title, samples, args.writes)

if __name__ == "__main__":
    main()
