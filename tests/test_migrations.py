"""Migrations keep data: a database of the schema before the apps were split (every model
in `feedback`), holding rows of every kind, migrates to today's schema with every row,
relation and value intact.

The test database is taken back to that schema with Django's own migration executor,
filled through the historical models, and migrated forward again (also on failure, so
later tests find the schema they expect).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
# The schema of main before the split: feedback held scores, annotation and evaluation.
BEFORE_SPLIT = [
    ("feedback", "0001_initial"),
    ("scores", None),
    ("annotation", None),
    ("evaluation", None),
]
BEFORE_SPLIT_FULL = [("feedback", "0005_span_embeddings"), ("scores", None), ("annotation", None), ("evaluation", None)]


def _migrate(targets) -> object:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    if targets is None:
        targets = executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    # The state at these nodes (an app "unapplied", None, has no state to add).
    return executor.loader.project_state([t for t in targets if t[1] is not None]).apps


def _seed_old_schema(old) -> dict:
    """Rows of every kind feedback held, with their relations, through historical models."""
    User = old.get_model("auth", "User")
    Project = old.get_model("projects", "Project")
    project = Project.objects.get(slug="before-split")
    reviewer = User.objects.create(username="old-reviewer")
    Trace = old.get_model("tracing", "Trace")
    Trace.objects.create(project=project, trace_id="ab" * 16, start_time=T0, end_time=T0, name="t")
    ScoreConfig = old.get_model("feedback", "ScoreConfig")
    helpfulness = ScoreConfig.objects.get(project=project, name="helpfulness")
    queue = old.get_model("feedback", "AnnotationQueue").objects.create(project=project, name="q", created_by=reviewer)
    queue.score_configs.add(helpfulness)
    queue.assignees.add(reviewer)
    item = old.get_model("feedback", "QueueItem").objects.create(queue=queue, project=project, trace_id="ab" * 16,
                                                                   position=1, done_count=1)
    old.get_model("feedback", "QueueReview").objects.create(item=item, project=project, reviewer=reviewer,
                                                            status="done")
    score_id = uuid.uuid4()
    old.get_model("feedback", "Score").objects.create(
        id=score_id, project=project, trace_id="ab" * 16, name="helpfulness", value=4, data_type="numeric",
        source="annotation", author=reviewer, config=helpfulness, queue=queue, comment="fine", metadata={"k": 1})
    Comment = old.get_model("feedback", "Comment")
    parent = Comment.objects.create(project=project, trace_id="ab" * 16, author=reviewer, body="first")
    Comment.objects.create(project=project, trace_id="ab" * 16, author=reviewer, body="reply", parent=parent)
    old.get_model("feedback", "InteractionEvent").objects.create(project=project, trace_id="ab" * 16, name="copy")
    old.get_model("feedback", "SessionSignalState").objects.create(project=project, session_id="s", closed=True,
                                                                   last_activity_at=T0, computed_at=T0)
    old.get_model("feedback", "JudgeSettings").objects.create(project=project, enabled=True, model="m",
                                                              rubrics=["helpfulness"], updated_by=reviewer)
    old.get_model("feedback", "JudgeCall").objects.create(project=project, trace_id="ab" * 16, rubric="helpfulness",
                                                          status="ok", created_at=T0)
    old.get_model("feedback", "TraceScoring").objects.create(project=project, trace_id="ab" * 16, status="scored",
                                                             scored_at=T0, trace_updated_at=T0)
    old.get_model("feedback", "TraceEmbedding").objects.create(project=project, trace_id="ab" * 16, span_id="",
                                                               kind="input", embedding=[0.5] * 384)
    old.get_model("feedback", "EvaluatorSettings").objects.create(project=project, config={"pii": {"enabled": False}})
    return {"score_id": score_id, "queue_id": queue.pk, "config_id": helpfulness.pk}


def test_splitting_feedback_into_apps_keeps_every_row_and_relation():
    try:
        old = _migrate(BEFORE_SPLIT)
        # A project from before score configs: feedback 0002 must backfill its defaults.
        old.get_model("projects", "Project").objects.create(name="Before split", slug="before-split")
        old = _migrate(BEFORE_SPLIT_FULL)
        seeded = _seed_old_schema(old)
        ContentType.objects.get_or_create(app_label="feedback", model="score")
    finally:
        _migrate(None)

    from annotation.models import AnnotationQueue, Comment, QueueItem, QueueReview
    from evaluation.models import EvaluatorSettings, JudgeCall, JudgeSettings, TraceEmbedding, TraceScoring
    from feedback.models import InteractionEvent, SessionSignalState
    from projects.models import Project
    from scores.models import Score, ScoreConfig

    project = Project.objects.get(slug="before-split")
    assert ScoreConfig.objects.filter(project=project).count() == 7  # the backfilled defaults
    score = Score.objects.get(pk=seeded["score_id"])
    assert (score.value, score.comment, score.metadata, score.author.username) == (4, "fine", {"k": 1}, "old-reviewer")
    assert score.config_id == seeded["config_id"] and score.queue_id == seeded["queue_id"]
    queue = AnnotationQueue.objects.get(pk=seeded["queue_id"])
    assert [c.name for c in queue.score_configs.all()] == ["helpfulness"]
    assert [u.username for u in queue.assignees.all()] == ["old-reviewer"]
    item = QueueItem.objects.get(queue=queue)
    assert QueueReview.objects.get(item=item).status == "done"
    reply = Comment.objects.get(body="reply")
    assert reply.parent.body == "first"
    assert InteractionEvent.objects.get(project=project).name == "copy"
    assert SessionSignalState.objects.get(project=project).closed
    assert JudgeSettings.objects.get(project=project).rubrics == ["helpfulness"]
    assert JudgeCall.objects.get(project=project).status == "ok"
    assert TraceScoring.objects.get(project=project).status == "scored"
    assert list(TraceEmbedding.objects.get(project=project).embedding[:2]) == [0.5, 0.5]
    assert EvaluatorSettings.objects.get(project=project).config == {"pii": {"enabled": False}}
    # The tables carry their app's name now, and the content type followed its model.
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('scores_score'), to_regclass('feedback_score')")
        assert cursor.fetchone() == ("scores_score", None)
    assert ContentType.objects.filter(app_label="scores", model="score").exists()
    assert not ContentType.objects.filter(app_label="feedback", model="score").exists()
    # The queue id on a score is a plain id now: deleting a queue leaves its scores.
    queue.delete()
    assert Score.objects.filter(pk=seeded["score_id"]).exists()


# --- integrity rules (scores 0003, annotation 0003, prompts 0002, evaluation 0003) --------

BEFORE_INTEGRITY = [
    ("scores", "0002_rename_tables"),
    ("annotation", "0002_rename_tables"),
    ("prompts", "0001_initial"),
    ("evaluation", "0002_rename_tables"),
]
T1 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


def _seed_rule_breakers(old) -> dict:
    """Rows that today's rules refuse, as a database from before them may hold."""
    Project = old.get_model("projects", "Project")
    project = Project.objects.create(name="Before rules", slug="before-rules")
    other = Project.objects.create(name="Other", slug="before-rules-other")
    User = old.get_model("auth", "User")
    alice, bob = User.objects.create(username="rules-alice"), User.objects.create(username="rules-bob")
    ScoreConfig = old.get_model("scores", "ScoreConfig")
    ScoreConfig.objects.filter(project__in=[project, other]).delete()  # no defaults needed here
    helpfulness = ScoreConfig.objects.create(project=project, name="helpfulness", data_type="numeric",
                                             min_value=1, max_value=5)
    inverted = ScoreConfig.objects.create(project=project, name="inverted", data_type="numeric",
                                          min_value=5, max_value=1)
    empty = ScoreConfig.objects.create(project=project, name="empty", data_type="numeric",
                                       min_value=3, max_value=3)

    Score = old.get_model("scores", "Score")
    trace, span = "ab" * 16, "cd" * 8
    ids = {}

    def score(key, when, **fields):
        row = {"project": project, "trace_id": trace, "name": "user_thumbs", "source": "end_user",
               "data_type": "boolean", "value": 1.0, **fields}
        ids[key] = Score.objects.create(**row).pk
        # auto_now stamps every save with now; the history being modelled is older.
        Score.objects.filter(pk=ids[key]).update(created_at=when, updated_at=when)

    score("thumbs_first_down", T0, value=0.0, comment="wrong")
    score("thumbs_latest_up", T2, value=1.0)
    score("thumbs_middle_down", T1, value=0.0)
    score("span_thumbs", T0, span_id=span, value=0.0)
    score("rating_old", T0, name="user_rating", data_type="numeric", value=1.0)
    score("rating_new", T1, name="user_rating", data_type="numeric", value=5.0)
    score("api_1", T0, source="api", name="note")
    score("api_2", T1, source="api", name="note")
    score("nan", T0, source="evaluator", name="hallucination", data_type="numeric", value=float("nan"))
    score("half_boolean", T0, source="evaluator", name="pii_output", value=0.5)
    score("text_with_value", T0, name="user_comment", data_type="text", value=3.0, comment="too long")
    score("annotation", T0, source="annotation", name="helpfulness", data_type="numeric", value=4.0,
          author=alice, config=helpfulness)

    # A queue holding trace A three times, reviewed on two of its copies.
    Queue = old.get_model("annotation", "AnnotationQueue")
    QueueItem = old.get_model("annotation", "QueueItem")
    QueueReview = old.get_model("annotation", "QueueReview")
    queue = Queue.objects.create(project=project, name="twice")
    trace_a, trace_b, trace_c = "a" * 32, "b" * 32, "c" * 32
    positions = [(trace_a, 0), (trace_b, 0), (trace_a, 1), (trace_c, 0), (trace_a, 0)]
    items = [QueueItem.objects.create(queue=queue, project=project, trace_id=t, position=i + 1, done_count=done)
             for i, (t, done) in enumerate(positions)]
    QueueReview.objects.create(item=items[0], project=project, reviewer=alice, status="claimed")
    QueueReview.objects.create(item=items[2], project=project, reviewer=alice, status="done")
    QueueReview.objects.create(item=items[4], project=project, reviewer=bob, status="skipped")
    single = Queue.objects.create(project=project, name="fine")
    QueueItem.objects.create(queue=single, project=project, trace_id=trace_a, position=1)

    # A label of one prompt pointing at another prompt's version.
    Prompt = old.get_model("prompts", "Prompt")
    PromptVersion = old.get_model("prompts", "PromptVersion")
    PromptLabel = old.get_model("prompts", "PromptLabel")
    versions = {}
    for name in ("ours", "theirs"):
        prompt = Prompt.objects.create(project=project, name=name, latest_version=1)
        versions[name] = PromptVersion.objects.create(project=project, prompt=prompt, version=1, template="t")
    PromptLabel.objects.create(project=project, prompt=versions["ours"].prompt, name="production",
                               version=versions["theirs"])
    PromptLabel.objects.create(project=project, prompt=versions["ours"].prompt, name="staging",
                               version=versions["ours"])

    JudgeSettings = old.get_model("evaluation", "JudgeSettings")
    JudgeSettings.objects.create(project=project, sample_rate=1.5)
    JudgeSettings.objects.create(project=other, sample_rate=float("nan"))
    EvaluatorSettings = old.get_model("evaluation", "EvaluatorSettings")
    EvaluatorSettings.objects.create(project=project, config={"groundedness": {"sample_rate": "all", "threshold": 0.4}})
    EvaluatorSettings.objects.create(project=other, config={"groundedness": {"sample_rate": 0.25}})
    return {"project": project.pk, "other": other.pk, "ids": ids, "queue": queue.pk, "single": single.pk,
            "items": [i.pk for i in items], "configs": (inverted.pk, empty.pk), "alice": alice.pk, "bob": bob.pk}


def test_integrity_migrations_repair_a_database_that_breaks_the_rules_then_enforce_them():
    try:
        old = _migrate(BEFORE_INTEGRITY)
        seeded = _seed_rule_breakers(old)
    finally:
        _migrate(None)

    from annotation.models import QueueItem, QueueReview
    from evaluation.models import EvaluatorSettings, JudgeSettings
    from prompts.models import PromptLabel
    from scores.models import Score, ScoreConfig

    ids = seeded["ids"]
    left = set(Score.objects.filter(project_id=seeded["project"]).values_list("pk", flat=True))
    # End users: the latest of each (trace, span, name) stays; API series are untouched.
    kept = {"thumbs_latest_up", "span_thumbs", "rating_new", "api_1", "api_2", "text_with_value", "annotation"}
    assert left == {ids[k] for k in kept}
    assert Score.objects.get(pk=ids["thumbs_latest_up"]).value == 1.0
    # Unreadable values are gone; a text score keeps its words and loses its stray value.
    text = Score.objects.get(pk=ids["text_with_value"])
    assert (text.value, text.comment) == (None, "too long")
    inverted, empty = (ScoreConfig.objects.get(pk=pk) for pk in seeded["configs"])
    assert (inverted.min_value, inverted.max_value) == (1, 5)
    assert (empty.min_value, empty.max_value) == (3, None)

    # The queue holds each trace once, in first-seen order, with the finished review kept.
    items = list(QueueItem.objects.filter(queue_id=seeded["queue"]).order_by("position"))
    assert [(i.position, i.trace_id) for i in items] == [(1, "a" * 32), (2, "b" * 32), (3, "c" * 32)]
    merged = items[0]
    assert merged.pk == seeded["items"][2]  # the copy that had a completed review
    reviews = {(r.reviewer_id, r.status) for r in QueueReview.objects.filter(item=merged)}
    assert reviews == {(seeded["alice"], "done"), (seeded["bob"], "skipped")}
    assert merged.done_count == 1
    assert QueueItem.objects.filter(queue_id=seeded["single"]).count() == 1

    assert set(PromptLabel.objects.filter(prompt__name="ours").values_list("name", flat=True)) == {"staging"}
    rates = dict(JudgeSettings.objects.values_list("project_id", "sample_rate"))
    assert (rates[seeded["project"]], rates[seeded["other"]]) == (1.0, 0.0)
    configs = dict(EvaluatorSettings.objects.values_list("project_id", "config"))
    assert configs[seeded["project"]] == {"groundedness": {"threshold": 0.4}}
    assert configs[seeded["other"]] == {"groundedness": {"sample_rate": 0.25}}

    # And from now on the database refuses what it just repaired.
    with pytest.raises(IntegrityError, match="score_one_end_user_per_target"), transaction.atomic():
        Score.objects.create(project_id=seeded["project"], trace_id="ab" * 16, name="user_thumbs",
                             source="end_user", data_type="boolean", value=0.0)
    with pytest.raises(IntegrityError, match="queue_item_unique_trace"), transaction.atomic():
        QueueItem.objects.create(queue_id=seeded["queue"], project_id=seeded["project"], trace_id="b" * 32,
                                 position=9)
