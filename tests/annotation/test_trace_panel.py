"""The trace page's annotation panel: include template, htmx endpoints, comments,
span annotation and the role matrix (feedback/views.py trace_*, templatetags)."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.test import Client, RequestFactory

from annotation.models import Comment
from annotation.services import comment_create
from feedback.services import feedback_record
from projects.auth import ProjectAccess
from scores.models import Score, Source
from tests.helpers import ROLE_USERS, config


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def urls(world, trace) -> dict[str, str]:
    base = f"/p/{world.project.slug}/traces/{trace.trace_id}"
    return {"panel": f"{base}/feedback", "annotate": f"{base}/annotate", "comments": f"{base}/comments"}


def render_include(world, trace, user, role: str) -> str:
    """What the tracing app's trace page gets from `{% include "annotation/_trace_panel.html" %}`."""
    request = RequestFactory().get("/")
    request.user = user
    access = ProjectAccess(project=world.project, role=role, user=user)
    return render_to_string("annotation/_trace_panel.html", {"access": access, "trace": trace}, request=request)


def test_include_renders_configs_scores_events_and_comments(world, trace):
    feedback_record(project=world.project, trace_id=trace.trace_id, kind="feedback", name="thumbs", value="down")
    feedback_record(project=world.project, trace_id=trace.trace_id, kind="event", name="edit", value="Refunds: 14 days")
    comment_create(
        project=world.project, trace_id=trace.trace_id, author=world.member, body="Looks like a stale policy doc"
    )

    html = render_include(world, trace, world.reviewer, "reviewer")

    assert 'id="feedback-panel"' in html
    for name in ("helpfulness", "factual_accuracy", "relevance", "safety"):
        assert f"<legend>{name}</legend>" in html
    assert "<legend>preferred</legend>" not in html and "<legend>user_rating</legend>" not in html
    # Scores are listed once, in the trace page's "Scores & feedback" section (explorer),
    # not again in the panel.
    assert "user_thumbs" not in html
    assert "Refunds: 14 days" in html
    assert "Looks like a stale policy doc" in html and "member" in html
    assert f'hx-post="/p/{world.project.slug}/traces/{trace.trace_id}/annotate"' in html
    assert "Span: chat gpt-4o-mini #1" in html  # span targets for span annotation


def test_viewer_sees_the_panel_without_forms(world, trace):
    html = render_include(world, trace, world.viewer, "viewer")

    assert "Comments" in html and "/annotate" not in html and "/comments" not in html


def test_htmx_annotate_returns_the_refreshed_panel(world, trace):
    helpfulness, safety = config(world.project, "helpfulness"), config(world.project, "safety")

    response = browser(world.reviewer).post(
        urls(world, trace)["annotate"],
        {f"score_{helpfulness.pk}": "2", f"score_{safety.pk}": "1", "comment": "vague"},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # a partial for hx-swap
    assert 'value="2" checked' in html
    # The trace page's score section is refreshed out of band with the new scores.
    assert '<section class="scores card" id="trace-scores" aria-labelledby="scores-h" hx-swap-oob="outerHTML">' in html
    annotation = html.split('id="scores-annotation"', 1)[1].split("</section>", 1)[0]
    assert "<code>helpfulness</code>" in annotation and "<code>safety</code>" in annotation
    scores = {s.name: s for s in Score.objects.all()}
    assert scores["helpfulness"].value == 2.0 and scores["helpfulness"].comment == "vague"
    assert scores["safety"].author == world.reviewer and scores["safety"].source == Source.ANNOTATION


def test_panel_page_without_htmx_lists_the_scores_once(world, trace):
    feedback_record(project=world.project, trace_id=trace.trace_id, kind="feedback", name="thumbs", value="down")

    html = browser(world.viewer).get(urls(world, trace)["panel"]).content.decode()

    assert html.count("<code>user_thumbs</code>") == 1
    assert 'id="feedback-panel"' in html and "hx-swap-oob" not in html


def test_comment_does_not_refresh_the_scores(world, trace):
    response = browser(world.reviewer).post(urls(world, trace)["comments"], {"body": "hm"}, HTTP_HX_REQUEST="true")

    assert 'id="trace-scores"' not in response.content.decode()


def test_annotating_a_span(world, trace):
    relevance = config(world.project, "relevance")
    span_id = trace.root_span_id

    browser(world.reviewer).post(
        urls(world, trace)["annotate"], {"span_id": span_id, f"score_{relevance.pk}": "5"}, HTTP_HX_REQUEST="true"
    )

    assert Score.objects.get().span_id == span_id


def test_invalid_annotation_shows_the_reason_in_the_panel(world, trace):
    relevance = config(world.project, "relevance")

    htmx = browser(world.reviewer).post(
        urls(world, trace)["annotate"], {f"score_{relevance.pk}": "9"}, HTTP_HX_REQUEST="true"
    )
    plain = browser(world.reviewer).post(urls(world, trace)["annotate"], {})

    assert htmx.status_code == 200 and "outside &#x27;relevance&#x27;" in htmx.content.decode()
    assert plain.status_code == 400 and "choose at least one value" in plain.content.decode()
    assert not Score.objects.exists()


def test_threaded_comments(world, trace):
    client = browser(world.reviewer)
    client.post(urls(world, trace)["comments"], {"body": "Why did it cite the old policy?"}, HTTP_HX_REQUEST="true")
    parent = Comment.objects.get()

    response = client.post(
        urls(world, trace)["comments"],
        {"body": "Retriever index is stale", "parent_id": parent.pk},
        HTTP_HX_REQUEST="true",
    )

    reply = Comment.objects.exclude(pk=parent.pk).get()
    assert reply.parent == parent and reply.author == world.reviewer
    html = response.content.decode()
    assert html.index("Why did it cite") < html.index("Retriever index is stale")


def test_reply_to_a_reply_joins_the_thread(world, trace):
    root = comment_create(project=world.project, trace_id=trace.trace_id, author=world.member, body="a")
    reply = comment_create(
        project=world.project, trace_id=trace.trace_id, author=world.member, body="b", parent_id=root.pk
    )

    nested = comment_create(
        project=world.project, trace_id=trace.trace_id, author=world.member, body="c", parent_id=reply.pk
    )

    assert nested.parent == root


def test_empty_comment_is_refused(world, trace):
    response = browser(world.reviewer).post(urls(world, trace)["comments"], {"body": "  "}, HTTP_HX_REQUEST="true")

    assert "must not be empty" in response.content.decode()
    assert not Comment.objects.exists()


def test_unknown_trace_is_404(world):
    client = browser(world.reviewer)
    base = f"/p/{world.project.slug}/traces/{'0' * 32}"

    assert client.get(f"{base}/feedback").status_code == 404
    assert client.post(f"{base}/comments", {"body": "x"}).status_code == 404
    assert client.get(f"/p/{world.project.slug}/traces/nothex/feedback").status_code == 404


STATUS = {
    # owner, member, reviewer, viewer, outsider
    "panel": (200, 200, 200, 200, 404),
    "annotate": (200, 200, 200, 403, 404),
    "comments": (200, 200, 200, 403, 404),
}


@pytest.mark.parametrize("endpoint", STATUS)
@pytest.mark.parametrize("who", range(len(ROLE_USERS)))
def test_role_matrix_for_the_panel(world, trace, endpoint, who):
    client = browser(getattr(world, ROLE_USERS[who]))
    helpfulness = config(world.project, "helpfulness")
    url = urls(world, trace)[endpoint]

    if endpoint == "panel":
        response = client.get(url, HTTP_HX_REQUEST="true")
    elif endpoint == "annotate":
        response = client.post(url, {f"score_{helpfulness.pk}": "3"}, HTTP_HX_REQUEST="true")
    else:
        response = client.post(url, {"body": "hello"}, HTTP_HX_REQUEST="true")

    assert response.status_code == STATUS[endpoint][who]
    wrote = Score.objects.exists() or Comment.objects.exists()
    assert wrote == (endpoint != "panel" and STATUS[endpoint][who] == 200)


def test_panel_queries_are_bounded(world, trace, django_assert_max_num_queries):
    for i in range(10):
        comment_create(project=world.project, trace_id=trace.trace_id, author=world.member, body=f"c{i}")
        feedback_record(project=world.project, trace_id=trace.trace_id, kind="event", name="copy")
    client = browser(world.viewer)
    client.get(urls(world, trace)["panel"], HTTP_HX_REQUEST="true")

    with django_assert_max_num_queries(10):  # session, user, membership, trace + 5 panel reads
        client.get(urls(world, trace)["panel"], HTTP_HX_REQUEST="true")
