"""Experiments benchmark: the runner's overhead beyond the model's own time.

    .venv/bin/python bench/experiments.py [--items 500] [--delay-ms 50] [--concurrency 8] [--reps 3] [--smoke]

Starts a throwaway embedded Postgres (deleted on exit), a dataset of `--items` items and
a prompt, and the local fake OpenAI-compatible server (tests/integration/fake_openai.py)
answering every call after `--delay-ms`. Each repetition runs a fresh experiment with
`experiments.runner.experiment_execute` in-process (what the Celery task calls): the
threads, the rate limiter (off), a trace per item through the ingest path, the
exact_match evaluator, result rows and progress. The broker announcement after each
ingest batch is skipped (no Celery here; it is one publish per 25 items).

Model time = items x delay / concurrency (the floor with perfect parallelism);
overhead = wall time - model time. Target: overhead < 10 s for 500 items, 50 ms, 8.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: only that it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.items, args.reps = 40, 1
    with tempfile.TemporaryDirectory(prefix="spyglass-bench-") as tmp:
        django_start(tmp)
        from decimal import Decimal

        from django.contrib.auth import get_user_model

        import experiments.services
        import tracing.services
        from datasets.services import ItemIn, dataset_create, items_add
        from evaluation.judge import judge_settings_save
        from experiments import runner
        from experiments.models import ExperimentResult
        from experiments.services import ExperimentSpec, experiment_create
        from projects.services import project_create
        from prompts.services import Actor, prompt_version_create
        from tests.integration.fake_openai import FakeOpenAIServer
        from tracing.models import Trace

        tracing.services._enqueue_pipeline = lambda project_id, trace_pks: None  # no broker in-process
        experiments.services._enqueue = lambda experiment_id: None  # run below, in-process
        owner = get_user_model().objects.create_user(username="bench", password="x")
        project, _ = project_create(name="Bench", owner=owner)
        dataset = dataset_create(project=project, name="bench")
        items_add(dataset=dataset, items=[ItemIn(f"question {i}: where is parcel {i * 7919}?", f"Q: question {i}")
                                          for i in range(args.items)], change={"kind": "items"})
        prompt_version_create(project=project, name="qa", template="Q: {{input}}", actor=Actor(user=None, name="b"),
                              base_version=0)
        model_s = args.items * args.delay_ms / 1000 / args.concurrency
        walls = []
        with FakeOpenAIServer() as fake:
            fake.delay_seconds = args.delay_ms / 1000
            judge_settings_save(project=project, user=None, enabled=False, base_url=fake.base_url, model="echo",
                                api_key="sk-bench", sample_rate=0, daily_budget_usd=Decimal(1), rubrics=[])
            for rep in range(args.reps):
                exp = experiment_create(project=project, spec=ExperimentSpec(
                    dataset="bench", prompt="qa", model="echo", evaluators=["exact_match"],
                    concurrency=args.concurrency, name=f"rep {rep}"))
                start = time.perf_counter()
                runner.experiment_execute(exp.pk)
                walls.append(time.perf_counter() - start)
                exp.refresh_from_db()
                assert exp.status == "done" and exp.done_count == args.items, (exp.status, exp.done_count)
                assert ExperimentResult.objects.filter(experiment=exp, error="").count() == args.items
                assert Trace.objects.filter(project=project, tags__contains=[exp.tag]).count() == args.items
                print(f"rep {rep}: wall {walls[-1]:.2f} s, overhead {walls[-1] - model_s:.2f} s", flush=True)
        wall = statistics.median(walls)
        print(f"\n{args.items} items, model {args.delay_ms:.0f} ms per call, concurrency {args.concurrency}, "
              f"{args.reps} runs")
        print("| measure | median |")
        print("|---|---|")
        print(f"| wall time | {wall:.2f} s |")
        print(f"| model time (items x delay / concurrency) | {model_s:.2f} s |")
        print(f"| overhead beyond model time (target < 10 s) | {wall - model_s:.2f} s |")
        print(f"| per item overhead | {(wall - model_s) / args.items * 1000:.1f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
