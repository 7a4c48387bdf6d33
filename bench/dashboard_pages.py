"""Dashboard pages benchmark: the overview and cost pages as a user gets them.

    .venv/bin/python bench/dashboard_pages.py [--traces 250000] [--reps 10] [--smoke]

Same data and setup as bench/dashboards.py (its `load`: four projects over the last 30
days, 4 spans per trace, thumbs / ratings / hallucination / rephrase scores, 6 models
one of which has no price, so the cost page has unpriced spans to explain), rollups built
once with the beat task's function, metadata key `customer` rolled up. Then each page is
a logged-in GET through Django's test Client (middleware, auth, every metrics query,
the cost page's extra reads, plotly JSON and template rendering; everything but the
network) on the largest project (55 % of the traces), 2 warm-ups and `--reps` timed
requests; p50 / p95 in ms and the page size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._django import django_start  # noqa: E402
from bench.dashboards import PROJECT_SHARES, load  # noqa: E402


def time_get(client, url: str, reps: int) -> tuple[float, float, int]:
    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.content[:500])
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95, len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=250_000)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="a tiny run (2,000 traces, 2 reps) that checks it works")
    args = parser.parse_args()
    if args.smoke:
        args.traces, args.reps = 2_000, 2

    with tempfile.TemporaryDirectory(prefix="spyglass-bench-") as tmp:
        database_url = django_start(tmp)
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client, override_settings

        from dashboards.rollups import rollup_config_set, rollups_refresh
        from dashboards.services import chart_add, dashboard_create
        from projects.services import project_create

        owner = get_user_model().objects.create_user("bench", password="bench")
        projects = {name: project_create(name=f"Bench {name}", owner=owner, slug=f"bench-{name}")[0]
                    for name in PROJECT_SHARES}  # fmt: skip
        print(f"loading {args.traces:,} traces into {len(projects)} projects", flush=True)
        data = load(database_url, {n: p.pk for n, p in projects.items()}, args.traces)
        for project in projects.values():
            rollup_config_set(project=project, metadata_keys=["customer"])
        t0 = time.perf_counter()
        rollups_refresh()
        print(f"  rollups built in {time.perf_counter() - t0:.1f} s", flush=True)
        with connection.cursor() as cursor:
            for table in ("dashboards_tracerollup", "dashboards_scorerollup", "dashboards_actorrollup"):
                cursor.execute(f"ANALYZE {table}")
        big = projects["big"]
        board = dashboard_create(project=big, name="PM board", user=owner)
        for title, measure, agg, group_by, chart_type in (
            ("Traces", "traces", "count", [], "line"),
            ("Cost by customer", "cost_usd", "sum", ["metadata.customer"], "bar"),
            ("p95 latency by model", "latency_ms", "p95", ["model"], "line"),
            ("Thumbs-up rate", "score:user_thumbs", "rate", [], "number"),
            ("Cost per user", "cost_usd", "sum", ["user_id"], "histogram"),
        ):
            chart_add(dashboard=board, title=title, measure=measure, agg=agg, group_by=group_by, top=20,
                      interval="" if chart_type in ("number", "histogram", "bar") else "auto", filters=[],
                      chart_type=chart_type)

        client = Client()
        client.login(username="bench", password="bench")
        base = f"/p/{big.slug}"
        scenarios = [
            ("overview 24 h", f"{base}/overview/?range=24h"),
            ("overview 7 d", f"{base}/overview/?range=7d"),
            ("overview 30 d", f"{base}/overview/?range=30d"),
            ("overview 7 d, filter model=gpt-4o", f"{base}/overview/?range=7d&model=gpt-4o"),
            ("cost 7 d", f"{base}/cost/?range=7d"),
            ("cost 30 d + metadata key customer", f"{base}/cost/?range=30d&key=customer"),
            ("saved dashboard (5 charts) 30 d", f"{base}/dashboards/{board.pk}/?range=30d"),
        ]
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM tracing_trace WHERE project_id = %s", [big.pk])
            big_traces = cursor.fetchone()[0]
        print(f"\n{args.traces:,} traces / {data['spans']:,} spans / {data['scores']:,} scores in 4 projects; pages "
              f"of the largest ({big_traces:,} traces); {args.reps} timed GETs each (Django test Client)\n")
        print(f"| {'page':<40} | rollups p50 | rollups p95 | raw p50 | raw p95 | KiB |")
        print(f"|{'-' * 42}|------------:|------------:|--------:|--------:|----:|")
        for label, url in scenarios:
            r50, r95, size = time_get(client, url, args.reps)
            with override_settings(SPYGLASS_ROLLUPS_ENABLED=False):
                w50, w95, _ = time_get(client, url, max(2, args.reps // 2))
            print(f"| {label:<40} | {r50:11.0f} | {r95:11.0f} | {w50:7.0f} | {w95:7.0f} | {size // 1024:3d} |",
                  flush=True)
        # Where an overview's time goes: each chart alone (rollups on), 30 days.
        from datetime import UTC, datetime, timedelta

        from dashboards.charts import PageCounts, Window, auto_interval, chart_render
        from dashboards.views import overview_specs
        from explorer.filters import TraceFilter

        end = datetime.now(UTC)
        start = end - timedelta(days=30)
        window = Window(start=start, end=end, interval=auto_interval(start, end), filter=TraceFilter(),
                        range_key="30d")
        print("\noverview 30 d, each chart alone with rollups (p50 ms of 3):")
        for spec in overview_specs():
            times = []
            for _ in range(3):
                t = time.perf_counter()
                chart_render(project=big, spec=spec, window=window, counts=PageCounts(big, window))
                times.append((time.perf_counter() - t) * 1000)
            print(f"  {statistics.median(times):7.1f}  {spec.key}", flush=True)
        connection.close()


if __name__ == "__main__":
    main()
