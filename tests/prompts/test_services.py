from __future__ import annotations

import itertools
import threading

import pytest
from django.db import IntegrityError, connection, transaction

from config.errors import Conflict, NotFound, ValidationFailed
from prompts import selectors, services
from prompts.models import Prompt, PromptLabel, PromptLabelEvent, PromptVersion
from tests.prompts.conftest import ACTOR, add_version


def test_first_version_creates_the_prompt_and_infers_its_type(world):
    v1 = add_version(world.project, "support-answer", [{"role": "user", "content": "{{q}}"}])
    prompt = Prompt.objects.get(project=world.project, name="support-answer")
    assert (prompt.type, prompt.latest_version, v1.version, v1.variables) == ("chat", 1, 1, ["q"])


def test_versions_are_numbered_and_latest_is_implicit(world):
    add_version(world.project, "p", "one")
    add_version(world.project, "p", "two {{x}}", labels=["staging"])
    prompt = selectors.prompt_get(project=world.project, name="p")
    assert selectors.labels_by_version(prompt=prompt) == {2: ["staging", "latest"]}
    assert selectors.prompt_resolve(project=world.project, name="p", label="latest").version.template == "two {{x}}"


def test_default_fetch_is_production_when_it_exists_else_latest(world):
    add_version(world.project, "p", "one")
    add_version(world.project, "p", "two")
    assert selectors.prompt_resolve(project=world.project, name="p").version.version == 2
    services.prompt_label_move(project=world.project, name="p", label="production", version=1, actor=ACTOR)
    resolved = selectors.prompt_resolve(project=world.project, name="p")
    assert (resolved.version.version, resolved.labels) == (1, ["production"])


def test_stale_base_version_is_a_conflict_and_writes_nothing(world):
    add_version(world.project, "p", "one")
    add_version(world.project, "p", "two", base_version=1)
    with pytest.raises(Conflict) as err:
        add_version(world.project, "p", "three from stale one", base_version=1)
    assert "based on v1" in err.value.message and "now at v2" in err.value.message
    assert err.value.status == 409 and err.value.detail == {"base_version": 1, "latest_version": 2}
    assert PromptVersion.objects.filter(prompt__name="p").count() == 2


def test_creating_an_existing_prompt_as_new_is_a_conflict(world):
    add_version(world.project, "p", "one")
    with pytest.raises(Conflict, match="already exists"):
        add_version(world.project, "p", "again", base_version=0)


def test_chat_template_cannot_be_added_to_a_text_prompt(world):
    add_version(world.project, "p", "one")
    with pytest.raises(ValidationFailed, match="is a text prompt"):
        add_version(world.project, "p", [{"role": "user", "content": "x"}])


@pytest.mark.parametrize("label", ["latest", "Prod", "has space", ""])
def test_bad_labels_are_refused(world, label):
    add_version(world.project, "p", "one")
    with pytest.raises(ValidationFailed):
        services.prompt_label_move(project=world.project, name="p", label=label, version=1, actor=ACTOR)


def test_label_history_records_moves_and_rollback_is_a_move_back(world):
    for text in ("one", "two", "three"):
        add_version(world.project, "p", text)
    actor = services.Actor(user=world.member, name="member")
    for target in (1, 3, 3, 1):  # the second move to 3 moves nothing and is not recorded
        services.prompt_label_move(project=world.project, name="p", label="production", version=target, actor=actor)
    prompt = selectors.prompt_get(project=world.project, name="p")
    history = [(e.from_version, e.to_version, e.actor_name) for e in selectors.prompt_label_history(prompt=prompt)]
    assert history == [(3, 1, "member"), (1, 3, "member"), (None, 1, "member")]
    assert selectors.prompt_labels(prompt=prompt) == {"production": 1}


def test_moving_to_a_missing_version_or_prompt_is_not_found(world):
    add_version(world.project, "p", "one")
    with pytest.raises(NotFound, match="no version 7"):
        services.prompt_label_move(project=world.project, name="p", label="production", version=7, actor=ACTOR)
    with pytest.raises(NotFound):
        services.prompt_label_move(project=world.project, name="nope", label="production", version=1, actor=ACTOR)


def test_prompts_are_scoped_to_their_project(world):
    add_version(world.project, "p", "ours")
    with pytest.raises(NotFound):
        selectors.prompt_get(project=world.other_project, name="p")


def test_a_label_cannot_point_at_a_version_of_another_prompt(world):
    ours = add_version(world.project, "ours", "ours v1", labels=["production"])
    theirs = add_version(world.project, "theirs", "theirs v1")
    label = PromptLabel.objects.get(prompt=ours.prompt, name="production")

    # Straight to the table, past the services: the composite foreign key refuses both.
    with pytest.raises(IntegrityError, match="prompt_label_version_of_its_prompt"), transaction.atomic():
        PromptLabel.objects.filter(pk=label.pk).update(version=theirs)
    with pytest.raises(IntegrityError, match="prompt_label_version_of_its_prompt"), transaction.atomic():
        PromptLabel.objects.create(project=world.project, prompt=ours.prompt, name="staging", version=theirs)

    assert PromptLabel.objects.get(pk=label.pk).version == ours


def test_label_moves_through_the_services_stay_within_each_prompt(world):
    for name in ("a", "b"):
        for text in ("one", "two"):
            add_version(world.project, name, f"{name} {text}", labels=["production", "staging"])
    services.prompt_label_move(project=world.project, name="a", label="production", version=1, actor=ACTOR)
    services.prompt_label_move(project=world.project, name="b", label="staging", version=1, actor=ACTOR)

    labels = {(lb.prompt.name, lb.name): (lb.version.prompt.name, lb.version.version)
              for lb in PromptLabel.objects.select_related("prompt", "version__prompt")}
    assert labels == {
        ("a", "production"): ("a", 1), ("a", "staging"): ("a", 2),
        ("b", "production"): ("b", 2), ("b", "staging"): ("b", 1),
    }


def _run_in_threads(count: int, work) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:  # collected and asserted on by the test
            errors.append(exc)
        finally:
            connection.close()  # each thread opened its own connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return errors


@pytest.mark.django_db(transaction=True)
def test_concurrent_label_moves_form_one_unbroken_chain(world):
    for i in range(1, 9):
        add_version(world.project, "p", f"version {i}")
    services.prompt_label_move(project=world.project, name="p", label="production", version=1, actor=ACTOR)

    def move(i: int) -> None:
        services.prompt_label_move(project=world.project, name="p", label="production", version=2 + i, actor=ACTOR)

    assert _run_in_threads(7, move) == []
    events = list(PromptLabelEvent.objects.filter(prompt__name="p").order_by("created_at", "id"))
    # Each move saw the previous one: from_version always equals the prior to_version.
    # Without the row lock two threads read "from v1" and the chain forks.
    chain = [(e.from_version, e.to_version) for e in events]
    assert len(chain) == 8
    for (_, previous_to), (from_version, _) in itertools.pairwise(chain):
        assert from_version == previous_to
    prompt = Prompt.objects.get(name="p")
    assert selectors.prompt_labels(prompt=prompt)["production"] == chain[-1][1]


@pytest.mark.django_db(transaction=True)
def test_concurrent_edits_of_the_same_base_produce_one_version_and_conflicts(world):
    add_version(world.project, "p", "base")

    def edit(i: int) -> None:
        add_version(world.project, "p", f"edit {i}", base_version=1)

    errors = _run_in_threads(6, edit)
    assert len(errors) == 5 and all(isinstance(e, Conflict) for e in errors)
    versions = PromptVersion.objects.filter(prompt__name="p").values_list("version", flat=True)
    assert sorted(versions) == [1, 2]


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_versions_of_a_new_prompt_do_not_fail(world):
    errors = _run_in_threads(5, lambda i: add_version(world.project, "fresh", f"v from {i}"))
    assert errors == []
    versions = PromptVersion.objects.filter(prompt__name="fresh").values_list("version", flat=True)
    assert sorted(versions) == [1, 2, 3, 4, 5]
