"""The scoring backlog page (/p/<slug>/settings/scoring): every role reads the backlog,
the lag, the skipped counts and the policy; only admins change the policy; a skipped
trace says why on its page; the evaluator settings page counts the skipped ones."""

from __future__ import annotations

import time

import pytest

from evaluation import backlog, fair_queue
from evaluation.models import BacklogMode, BacklogPolicy
from tests.helpers import ingest_trace
from tests.helpers import session_client as browser

pytestmark = pytest.mark.django_db


def url(world) -> str:
    return f"/p/{world.project.slug}/settings/scoring"


def policy_form(**overrides) -> dict:
    return {"mode": "sample", "threshold": "500", "sample_rate": "0.2", "cap": "800", **overrides}


def _skip(world, n: int):
    """n traces skipped by a 0% sample, through a real turn."""
    BacklogPolicy.objects.update_or_create(project=world.project, defaults={
        "mode": BacklogMode.SAMPLE, "threshold": 0, "sample_rate": 0.0})
    traces = [ingest_trace(world.project, start_ns=time.time_ns() - 60 * 10**9) for _ in range(n)]
    fair_queue.traces_enqueue(project_id=world.project.pk, trace_pks=[t.pk for t in traces])
    turn = fair_queue.turn_take(batch=n)
    backlog.turn_run(turn)
    fair_queue.turn_done(claimant=turn.claimant, trace_pks=turn.trace_pks)
    return traces


def test_every_role_reads_the_backlog_and_only_admins_change_the_policy(world):
    fair_queue.traces_enqueue(project_id=world.project.pk, trace_pks=[ingest_trace(world.project).pk])
    page = browser(world.viewer).get(url(world)).content.decode()
    assert "Waiting: <strong>1</strong> trace of this project" in page
    assert "Lag: the oldest has waited <strong>" in page
    assert 'id="backlog-readonly"' in page and "disabled" in page and "Save</button>" not in page
    assert browser(world.member).post(url(world), policy_form()).status_code == 403
    assert not BacklogPolicy.objects.filter(project=world.project).exists()

    admin_page = browser(world.owner).get(url(world)).content.decode()
    assert "Save</button>" in admin_page and 'id="backlog-readonly"' not in admin_page
    response = browser(world.owner).post(url(world), policy_form())
    assert response.status_code == 302
    row = BacklogPolicy.objects.get(project=world.project)
    assert (row.mode, row.threshold, row.sample_rate, row.cap, row.updated_by) == ("sample", 500, 0.2, 800, world.owner)
    page = browser(world.reviewer).get(url(world)).content.decode()
    assert "Policy: <strong>sample</strong>, above 500 waiting traces, a 20% sample is scored." in page
    assert "below the threshold: every trace is scored" in page


@pytest.mark.parametrize(("field", "value", "message"), [
    ("mode", "random", "Select a valid choice"),
    ("sample_rate", "1.5", "less than or equal to 1"),
    ("cap", "0", "greater than or equal to 1"),
    ("threshold", "-1", "greater than or equal to 0"),
])
def test_a_bad_policy_is_refused_and_names_the_field(world, field, value, message):
    response = browser(world.owner).post(url(world), policy_form(**{field: value}))
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page.split(f'id="id_{field}')[1] if field != "mode" else message in page
    assert not BacklogPolicy.objects.filter(project=world.project).exists()


def test_the_service_refuses_nan(world):
    from config.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="sample_rate"):
        backlog.backlog_policy_save(project=world.project, user=world.owner, mode="sample", threshold=1,
                                    sample_rate=float("nan"), cap=1)


def test_skipped_traces_are_counted_and_explained(world):
    traces = _skip(world, 3)
    page = browser(world.viewer).get(url(world)).content.decode()
    assert "Skipped by the policy: <strong>3</strong> traces\n      in the last 24 hours" in page
    assert "3 since the project began" in page
    trace_page = browser(world.viewer).get(f"/p/{world.project.slug}/traces/{traces[0].trace_id}/").content.decode()
    section = trace_page.split('id="scores-evaluator"')[1].split("</section>")[0]
    assert "the project's backlog policy skipped this trace" in section
    assert "Backlog: skipped: 3 traces were waiting for scores; backlog policy &#x27;sample&#x27; scores 0%" in section
    settings_page = browser(world.owner).get(f"/p/{world.project.slug}/settings/evaluators").content.decode()
    assert "<strong>0</strong> pending, <strong>3</strong> skipped by the backlog policy" in settings_page
    assert ('Backlog policy <strong>sample</strong>:\n      <strong class="error-text">3</strong> traces of the last '
            '24 hours skipped,\n      3 ever.') in settings_page
