"""Start an experiment (or follow one) from the command line, with a progress bar.

    python manage.py experiment_run --project demo --dataset support-golden --prompt support-answer \\
        [--label staging | --prompt-version 4] [--model gpt-4o-mini] [--split test] [--evaluator exact_match ...] \\
        [--concurrency 8] [--cost-cap 2.00] [--inline]
    python manage.py experiment_run --project demo --follow 12

The run goes to the Celery workers (queue `experiments`) and the bar follows its progress
until it finishes; `--inline` runs it in this process instead (no worker needed). Ctrl-C
while following asks the run to cancel.
"""

from __future__ import annotations

import threading
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from tqdm import tqdm

from config.errors import DomainError
from experiments import runner, selectors, services
from experiments.models import Experiment
from projects.models import Project

POLL_SECONDS = 1.0


def _run_inline(experiment_id: int) -> None:
    try:
        runner.experiment_execute(experiment_id)
    finally:
        connections.close_all()  # this thread's own connection; left open it would outlive the run


class Command(BaseCommand):
    help = "Run a prompt version over a dataset version (an experiment) and show its progress."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="the project's slug")
        parser.add_argument("--follow", type=int, help="only follow this experiment id")
        parser.add_argument("--dataset")
        parser.add_argument("--dataset-version", type=int)
        parser.add_argument("--split", choices=["train", "test"])
        parser.add_argument("--prompt")
        parser.add_argument("--label")
        parser.add_argument("--prompt-version", type=int)
        parser.add_argument("--model", default="")
        parser.add_argument("--name", default="")
        parser.add_argument("--evaluator", action="append", default=[], help="repeatable, e.g. exact_match")
        parser.add_argument("--concurrency", type=int, default=4)
        parser.add_argument("--rate-limit", type=int, help="call starts per minute")
        parser.add_argument("--cost-cap", help="USD")
        parser.add_argument("--cost-per-call", help="USD, for unpriced models")
        parser.add_argument("--inline", action="store_true", help="run here instead of on a worker")

    def handle(self, *args, **options) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"--project: no project with slug {options['project']!r}.")
        try:
            if options["follow"]:
                exp = selectors.experiment_get(project=project, experiment_id=options["follow"])
            else:
                if not options["dataset"] or not options["prompt"]:
                    raise CommandError("--dataset and --prompt are required to start a run (or --follow ID).")
                exp = services.experiment_create(project=project, spec=services.ExperimentSpec(
                    dataset=options["dataset"], dataset_version=options["dataset_version"], split=options["split"],
                    prompt=options["prompt"], prompt_label=options["label"], prompt_version=options["prompt_version"],
                    model=options["model"], name=options["name"], evaluators=options["evaluator"],
                    concurrency=options["concurrency"], rate_limit_per_minute=options["rate_limit"],
                    cost_cap_usd=options["cost_cap"], cost_per_call_usd=options["cost_per_call"]),
                    inline=options["inline"])
                self.stdout.write(f"experiment {exp.pk}: {exp.total} items, traces tagged {exp.tag}")
        except DomainError as exc:
            raise CommandError(exc.message) from None
        worker = None
        if options["inline"] and not options["follow"]:
            worker = threading.Thread(target=_run_inline, args=(exp.pk,), daemon=True)
            worker.start()
        exp = self._follow(exp.pk)
        if worker is not None:
            worker.join()
            exp.refresh_from_db()
        self.stdout.write(f"experiment {exp.pk} {exp.status}{f' ({exp.stop_reason})' if exp.stop_reason else ''}: "
                          f"{exp.done_count}/{exp.total} items, {exp.failed_count} failed, "
                          f"cost USD {exp.cost_usd:.4f}{f'; {exp.error}' if exp.error else ''}")
        for m in selectors.metric_summaries(experiment=exp):
            mean = "—" if m.mean is None else f"{m.mean:.3f}"
            self.stdout.write(f"  {m.name}: {mean} (n={m.n})")

    def _follow(self, experiment_id: int) -> Experiment:
        exp = Experiment.objects.get(pk=experiment_id)
        with tqdm(total=exp.total, unit="item", desc=f"experiment {exp.pk}", file=self.stderr) as bar:
            try:
                while True:
                    exp.refresh_from_db()
                    bar.set_postfix(status=exp.status, failed=exp.failed_count, usd=f"{exp.cost_usd:.4f}")
                    bar.update(exp.done_count - bar.n)
                    if exp.finished:
                        return exp
                    time.sleep(POLL_SECONDS)
            except KeyboardInterrupt:
                services.experiment_cancel(experiment=exp)
                self.stderr.write("cancel requested; the run stops between items")
                raise
