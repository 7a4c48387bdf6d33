"""seed_demo drives the real SDK: in-process, and over HTTP to a live server."""

import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from feedback.models import InteractionEvent
from scores.models import Score
from tracing.models import Span, Trace


def seeded(project) -> dict:
    traces = Trace.objects.filter(project=project)
    return {
        "traces": traces.count(),
        "models": set(traces.exclude(model=None).values_list("model", flat=True)),
        "unpriced": traces.filter(unpriced_spans__gt=0).count(),
        "errors": traces.filter(status="error").count(),
        "multi_turn_sessions": traces.values("session_id").distinct().count() < traces.count(),
        "prompt_versions": set(traces.values_list("prompt_version", flat=True)),
        "plans": {m.get("plan") for m in traces.values_list("metadata", flat=True)},
        "with_documents": Span.objects.filter(project=project, kind="retriever").exclude(documents=[]).count(),
        "thumbs": Score.objects.filter(project=project, name="user_thumbs").count(),
        "events": set(InteractionEvent.objects.filter(project=project).values_list("name", flat=True)),
    }


@pytest.mark.django_db(transaction=True)
def test_seed_demo_in_process_builds_a_realistic_history(world):
    out = StringIO()
    call_command("seed_demo", "--project", world.project.slug, "--traces", "120", "--days", "5", stdout=out)

    facts = seeded(world.project)
    assert facts["traces"] == 120
    assert {"gpt-4o-mini", "claude-3-5-haiku-latest", "gemini-2.0-flash"} <= facts["models"]
    assert facts["unpriced"] > 0  # the self-hosted model is never given an invented price
    assert facts["errors"] > 0 and facts["multi_turn_sessions"]
    assert len(facts["prompt_versions"]) >= 2 and facts["plans"] >= {"free", "pro"}
    assert facts["with_documents"] == 120
    assert facts["thumbs"] > 0 and {"copy", "dwell_ms"} <= facts["events"]
    assert "Seeded 120 traces" in out.getvalue()
    from prompts.models import PromptVersion

    versions = PromptVersion.objects.filter(prompt__project=world.project, prompt__name="support-answer")
    assert sorted(versions.values_list("version", flat=True)) == [1, 2, 3]


@pytest.mark.django_db(transaction=True)
def test_seed_demo_if_empty_leaves_a_seeded_project_alone(world):
    call_command("seed_demo", "--project", world.project.slug, "--traces", "10", "--days", "1", stdout=StringIO())
    out = StringIO()
    call_command("seed_demo", "--project", world.project.slug, "--if-empty", stdout=out)
    assert "already has traces" in out.getvalue()
    assert Trace.objects.filter(project=world.project).count() == 10


@pytest.mark.django_db(transaction=True)
def test_seed_demo_over_http_uses_the_sdk_exporter_and_feedback_client(world, live_server):
    call_command(
        "seed_demo", "--project", world.project.slug, "--traces", "30", "--days", "2",
        "--url", live_server.url, "--secret-key", world.key.secret_key, "--public-key", world.key.public_key,
        stdout=StringIO(),
    )
    assert Trace.objects.filter(project=world.project).count() == 30
    # Feedback is sent by the SDK's background client; give it a moment to drain.
    deadline = time.monotonic() + 20
    while not InteractionEvent.objects.filter(project=world.project).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert InteractionEvent.objects.filter(project=world.project).exists()


def test_seed_demo_refuses_bad_arguments(world):
    with pytest.raises(CommandError, match="No project"):
        call_command("seed_demo", "--project", "nope")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("seed_demo", "--project", world.project.slug, "--traces", "0")
    with pytest.raises(CommandError, match="--public-key"):
        call_command("seed_demo", "--project", world.project.slug, "--url", "http://x", "--secret-key", "s")
