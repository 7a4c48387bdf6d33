"""Alerts benchmark: how long one evaluation tick takes over N rules.

    .venv/bin/python bench/alerts.py [--traces 250000] [--rules 100] [--reps 5] [--smoke]

Starts a throwaway embedded Postgres (bench/_django.py), loads the dashboards bench data
(bench/dashboards.py: four projects, 30 days, users with Zipf-like activity, metadata
customer / locale / tier, scores), builds the hourly rollups once with the beat task's
own function, then creates N rules spread over the projects from eight kinds (below, half
of them group_by rules) and times alerts.evaluation.alerts_evaluate, the function the
beat task `alerts-evaluate` calls each minute: the first tick (every state and event
created) and then `--reps` steady ticks. Also times one rule of each kind alone.
Nothing is delivered (rules have no channels): delivery is one Celery task per channel.

Prints one table: first tick, steady tick p50 / p95, per rule; and per kind p50.
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

# (label, spec) — thresholds are set so that some groups fire and most do not.
KINDS = [
    ("errors rate 1h", {"measure": "errors", "agg": "rate", "window_seconds": 3600, "alert_threshold": 0.05}),
    ("latency p95 15m", {"measure": "latency_ms", "agg": "p95", "window_seconds": 900, "alert_threshold": 4000}),
    ("traces count 5m (< 1)", {"measure": "traces", "agg": "count", "window_seconds": 300, "operator": "<",
                               "alert_threshold": 1, "min_observations": 0}),
    ("cost sum 24h, prod", {"measure": "cost_usd", "agg": "sum", "window_seconds": 86400, "alert_threshold": 50,
                            "filters": "environment=production"}),
    ("cost sum 24h by user_id", {"measure": "cost_usd", "agg": "sum", "window_seconds": 86400, "alert_threshold": 0.05,
                                 "warning_threshold": 0.02, "group_by": "user_id"}),
    ("latency p95 1h by model", {"measure": "latency_ms", "agg": "p95", "window_seconds": 3600,
                                 "alert_threshold": 3000, "group_by": "model"}),
    ("errors rate 24h by metadata.customer", {"measure": "errors", "agg": "rate", "window_seconds": 86400,
                                              "alert_threshold": 0.06, "group_by": "metadata.customer"}),
    ("thumbs rate 7d by prompt (<)", {"measure": "score:user_thumbs", "agg": "rate", "window_seconds": 7 * 86400,
                                      "operator": "<", "alert_threshold": 0.6, "min_observations": 5,
                                      "group_by": "prompt"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=250_000)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5, help="steady ticks timed")
    parser.add_argument("--smoke", action="store_true", help="tiny run (2,000 traces, 16 rules, 2 ticks)")
    args = parser.parse_args()
    if args.smoke:
        args.traces, args.rules, args.reps = 2_000, 16, 2

    with tempfile.TemporaryDirectory(prefix="spyglass-bench-") as tmp:
        database_url = django_start(tmp)
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.utils import timezone

        from alerts.evaluation import alerts_evaluate, rule_evaluate
        from alerts.models import AlertEvent, AlertRule, AlertState
        from alerts.services import RuleSpec, rule_create
        from bench.dashboards import PROJECT_SHARES, load
        from dashboards.rollups import rollup_config_set, rollups_refresh
        from projects.services import project_create

        owner = get_user_model().objects.create_user("bench", password="bench")
        projects = {name: project_create(name=f"Bench {name}", owner=owner, slug=f"bench-{name}")[0]
                    for name in PROJECT_SHARES}
        print(f"loading {args.traces:,} traces into {len(projects)} projects", flush=True)
        load(database_url, {n: p.pk for n, p in projects.items()}, args.traces)
        for project in projects.values():
            rollup_config_set(project=project, metadata_keys=["customer"])
        rollups_refresh()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE dashboards_tracerollup")

        names = list(projects)
        for i in range(args.rules):
            label, spec = KINDS[i % len(KINDS)]
            project = projects[names[i % len(names)]]
            rule_create(project=project, spec=RuleSpec(name=f"{label} #{i}", **spec))

        t0 = time.perf_counter()
        first = alerts_evaluate(budget_seconds=3600)
        first_ms = (time.perf_counter() - t0) * 1000
        states, events = AlertState.objects.count(), AlertEvent.objects.count()
        print(f"  first tick: {first.evaluated} rules in {first_ms:.0f} ms ({first.failed} failed); "
              f"{states} states, {events} events", flush=True)
        ticks = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            result = alerts_evaluate(budget_seconds=3600)
            ticks.append((time.perf_counter() - t0) * 1000)
            assert result.evaluated == args.rules and result.failed == 0, result
        ticks.sort()
        p50 = statistics.median(ticks)
        p95 = ticks[min(len(ticks) - 1, round(0.95 * (len(ticks) - 1)))]

        per_kind = []
        big = projects["big"]
        for label, spec in KINDS:
            rule = AlertRule.objects.select_related("project").filter(project=big, name__startswith=label).first()
            if rule is None:
                rule = rule_create(project=big, spec=RuleSpec(name=f"{label} (alone)", **spec))
                rule = AlertRule.objects.select_related("project").get(pk=rule.pk)
            times = []
            for _ in range(max(3, args.reps)):
                t0 = time.perf_counter()
                rule_evaluate(rule, now=timezone.now())
                times.append((time.perf_counter() - t0) * 1000)
            groups = AlertState.objects.filter(rule=rule).count()
            per_kind.append((label, statistics.median(times), groups))

        print()
        print(f"| {args.rules} rules over {args.traces:,} traces | ms |")
        print("|---|---|")
        print(f"| first tick (states created) | {first_ms:.0f} |")
        print(f"| steady tick p50 / p95 | {p50:.0f} / {p95:.0f} |")
        print(f"| per rule (p50 tick / rules) | {p50 / args.rules:.1f} |")
        print()
        print("| one rule of each kind, largest project | p50 ms | states |")
        print("|---|---|---|")
        for label, ms, groups in per_kind:
            print(f"| {label} | {ms:.1f} | {groups} |")


if __name__ == "__main__":
    main()
