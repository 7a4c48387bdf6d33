"""manage.py experiment_run: start a run in-process with a progress bar, follow one, errors."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from experiments.models import Experiment
from tests.experiments.support import connect, make_dataset, make_prompt
from tests.integration.fake_openai import FakeOpenAIServer

pytestmark = pytest.mark.django_db(transaction=True)  # the inline run's thread has its own connection


def test_inline_run_shows_progress_and_summary(world):
    with FakeOpenAIServer() as fake:
        connect(world.project, fake.base_url)
        make_dataset(world.project)
        make_prompt(world.project)
        out, err = StringIO(), StringIO()
        call_command("experiment_run", "--project", world.project.slug, "--dataset", "golden", "--prompt", "qa",
                     "--model", "echo", "--evaluator", "exact_match", "--inline", stdout=out, stderr=err)
    exp = Experiment.objects.get()
    assert exp.status == "done" and exp.done_count == 3
    assert f"experiment {exp.pk} done: 3/3 items, 0 failed" in out.getvalue()
    assert "exact_match: 1.000 (n=3)" in out.getvalue()
    assert "3/3" in err.getvalue()  # the tqdm bar reached the end
    followed = StringIO()
    call_command("experiment_run", "--project", world.project.slug, "--follow", str(exp.pk), stdout=followed,
                 stderr=StringIO())
    assert f"experiment {exp.pk} done" in followed.getvalue()


def test_errors_name_the_problem(world):
    with pytest.raises(CommandError, match="no project"):
        call_command("experiment_run", "--project", "nope", "--follow", "1")
    with pytest.raises(CommandError, match="No dataset named"):
        call_command("experiment_run", "--project", world.project.slug, "--dataset", "x", "--prompt", "y")
