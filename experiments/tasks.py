"""Celery entry point of experiment runs (queue `experiments`)."""

from __future__ import annotations

from celery import shared_task

from experiments.runner import experiment_execute


# Time limits sized for a long run (the default 5 minutes fit scoring, not a 10,000-item
# experiment); a redelivered message resumes the run where it stopped (runner._claim).
@shared_task(acks_late=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 60)
def experiment_run(experiment_id: int) -> None:
    experiment_execute(experiment_id)
