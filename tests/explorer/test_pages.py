"""Trace explorer pages (explorer/views.py): traces, a trace, sessions, users.

Traces are created through the production ingest path (OTLP JSON -> decoder ->
spans_ingest), so the pages are tested against rows exactly as ingest writes them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from scores.models import DataType, Score, Source
from tests import otlp_payloads as otlp
from tracing.models import Trace
from tracing.otlp.decode import decode_traces_json
from tracing.services import spans_ingest

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _ns(when: datetime) -> int:
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


def ingest(project, spans: list[dict]) -> None:
    decoded = decode_traces_json(otlp.traces_json(spans))
    assert decoded.rejected == 0, decoded.first_error
    spans_ingest(project=project, spans=decoded.spans)


def chat_trace(
    project,
    *,
    start: datetime = T0,
    name: str = "answer",
    question: str = "What is the refund policy?",
    answer: str = "Refunds within 30 days.",
    user: str | None = "user-ada",
    session: str | None = "sess-1",
    model: str = "gpt-4o-mini",
    latency_ms: int = 800,
    error: bool = False,
    root_status: int = 1,
    tags: list[str] | None = None,
    metadata: dict[str, str] | None = None,
    children: int = 1,
) -> str:
    """A root chain span with `children` LLM spans under it; returns the trace id.

    The root's OTel status is `root_status` (1 = OK, 0 = UNSET, as most instrumentations
    send) or ERROR with `error`; the children set none.
    """
    trace_id = otlp.new_trace_id()
    root_id = otlp.new_span_id()
    base = _ns(start)
    identity = {}
    if user:
        identity["user.id"] = user
    if session:
        identity["session.id"] = session
    root_attrs = {
        "openinference.span.kind": "CHAIN",
        "input.value": question,
        "output.value": answer,
        **identity,
    }
    if tags:
        root_attrs["tag.tags"] = tags
    if metadata:
        root_attrs["metadata"] = json.dumps(metadata)
    spans = [
        otlp.span(
            name,
            trace_id=trace_id,
            span_id=root_id,
            start=base,
            end=base + latency_ms * otlp.MS,
            attributes=root_attrs,
            status=(2, "upstream timeout") if error else root_status,
        )
    ]
    step = latency_ms * otlp.MS // (children + 1)
    for i in range(children):
        spans.append(
            otlp.span(
                f"chat {model}",
                trace_id=trace_id,
                parent=root_id,
                start=base + step * i,
                end=base + step * (i + 1),
                kind=otlp.SPAN_KIND_CLIENT,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": model,
                    "gen_ai.usage.input_tokens": 100,
                    "gen_ai.usage.output_tokens": 20,
                    "gen_ai.input.messages": json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": question}]}]
                    ),
                    "gen_ai.output.messages": json.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]
                    ),
                    **identity,
                },
            )
        )
    ingest(project, spans)
    return trace_id


def score(project, trace_id: str, name: str, value: float, *, source: str = Source.EVALUATOR, boolean=False,
          **fields):
    return Score.objects.create(
        project=project,
        trace_id=trace_id,
        name=name,
        value=value,
        data_type=DataType.BOOLEAN if boolean else DataType.NUMERIC,
        source=source,
        **fields,
    )


def thumbs(project, trace_id: str, up: bool):
    return score(project, trace_id, "user_thumbs", 1.0 if up else 0.0, source=Source.END_USER, boolean=True)


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def traces_url(world) -> str:
    return f"/p/{world.project.slug}/traces/"


def listed(response) -> list[str]:
    """Trace ids linked from the rows of a traces page, in order."""
    assert response.status_code == 200, response.content[:2000]
    html = response.content.decode()
    ids = []
    marker = "/traces/"
    for chunk in html.split('class="row-link" href="')[1:]:
        href = chunk.split('"', 1)[0]
        ids.append(href.split(marker, 1)[1].split("/", 1)[0])
    return ids


# --- access ---------------------------------------------------------------------------


def test_project_root_redirects_to_the_overview(world):
    # The overview is the landing page (dashboards); the explorer is one click away.
    response = login(world.viewer).get(f"/p/{world.project.slug}/")
    assert response.status_code == 302 and response["Location"] == f"/p/{world.project.slug}/overview/"


@pytest.mark.parametrize(
    "path",
    ["traces/", "sessions/", "users/", "traces/" + "0" * 32 + "/", "sessions/sess-1/", "users/user-ada/"],
)
def test_pages_of_another_project_are_404(world, path):
    chat_trace(world.project)
    response = login(world.outsider).get(f"/p/{world.project.slug}/{path}")
    assert response.status_code == 404


def test_pages_need_login(client, world):
    response = client.get(traces_url(world))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_trace_of_another_project_is_404_even_for_a_member_of_both(world):
    foreign = chat_trace(world.other_project)
    from projects.services import membership_set

    membership_set(project=world.other_project, user=world.viewer, role="viewer")
    response = login(world.viewer).get(f"{traces_url(world)}{foreign}/")
    assert response.status_code == 404


# --- trace list -------------------------------------------------------------------------


def test_list_shows_own_traces_newest_first_with_columns(world):
    old = chat_trace(world.project, start=T0, name="older")
    new = chat_trace(world.project, start=T0 + timedelta(minutes=1), name="newer", model="gpt-4o")
    chat_trace(world.other_project, start=T0 + timedelta(minutes=2), name="foreign")

    response = login(world.viewer).get(traces_url(world))

    assert listed(response) == [new, old]
    html = response.content.decode()
    assert "foreign" not in html
    assert "gpt-4o" in html and "user-ada" in html and "sess-1" in html
    assert "800 ms" in html  # latency
    assert ">120<" in html  # tokens: 100 in + 20 out of the one LLM span


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"user_id": "user-bob"}, ["bob"]),
        ({"session_id": "sess-2"}, ["bob"]),
        ({"model": "gpt-4o"}, ["bob"]),
        ({"status": "error"}, ["bob"]),
        ({"name": "ada-turn"}, ["ada"]),
        ({"tag": "beta"}, ["bob"]),
        ({"meta": "plan=pro"}, ["ada"]),
        ({"metadata.plan": "pro"}, ["ada"]),
        ({"range": "custom", "from": "2025-03-01T12:30", "to": "2025-03-01T13:30"}, ["bob"]),
    ],
)
def test_each_filter_narrows_the_list(world, params, expected):
    ids = {
        "ada": chat_trace(world.project, start=T0, name="ada-turn", metadata={"plan": "pro"}),
        "bob": chat_trace(
            world.project,
            start=T0 + timedelta(hours=1),
            name="bob-turn",
            user="user-bob",
            session="sess-2",
            model="gpt-4o",
            error=True,
            tags=["beta"],
        ),
    }
    response = login(world.viewer).get(traces_url(world), params)
    assert listed(response) == [ids[k] for k in expected]


def test_relative_time_range_is_resolved_when_the_page_is_opened(world):
    from django.utils import timezone

    recent = chat_trace(world.project, start=timezone.now() - timedelta(minutes=5))
    chat_trace(world.project, start=timezone.now() - timedelta(hours=3))
    assert listed(login(world.viewer).get(traces_url(world), {"range": "1h"})) == [recent]


@pytest.mark.parametrize(
    ("query", "who"),
    [
        ("Rückerstattung", "de"),  # German, mid-sentence
        ("rückerstattung", "de"),  # case-insensitive
        ("Rücker", "de"),  # word prefix
        ("возврат денег", "ru"),  # Russian, two words in any position
        ("返金", "ja"),  # Japanese: no spaces, found as a substring
        ("天気", "ja-output"),  # in the output
    ],
)
def test_full_text_search_finds_non_english_text(world, query, who):
    ids = {
        "de": chat_trace(world.project, question="Wie bekomme ich eine Rückerstattung für Bestellung 7?"),
        "ru": chat_trace(world.project, question="Как оформить возврат денег за заказ?"),
        "ja": chat_trace(world.project, question="注文の返金はできますか?"),
        "ja-output": chat_trace(world.project, answer="明日の東京の天気は晴れです。"),
        "en": chat_trace(world.project, question="Where is my parcel?"),
    }
    assert listed(login(world.viewer).get(traces_url(world), {"q": query})) == [ids[who]]


def test_search_uses_the_indexed_document_for_words(world):
    from django.db import connection

    from explorer.filters import TraceFilter
    from explorer.search import search_mode

    assert search_mode("Rückerstattung") == "words" and search_mode("返金") == "substring"
    sql = str(TraceFilter(search="refund").apply(world.project).query)
    assert "tracing_search_document" in sql
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'trace_search_gin'")
        assert "tracing_search_document(input, output)" in cursor.fetchone()[0]


def test_semantic_mode_explains_that_embeddings_are_missing(world):
    chat_trace(world.project)
    response = login(world.viewer).get(traces_url(world), {"q": "refunds", "mode": "semantic"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "semantic search needs embeddings" in html.lower()
    assert "scoring worker has processed" in html


def test_similar_traces_explains_that_embeddings_are_missing(world):
    trace_id = chat_trace(world.project)
    response = login(world.viewer).get(traces_url(world), {"similar_to": trace_id})
    assert "needs embeddings" in response.content.decode()


def test_score_conditions_and_feedback_filters(world):
    good = chat_trace(world.project, start=T0)
    bad = chat_trace(world.project, start=T0 + timedelta(minutes=1))
    silent = chat_trace(world.project, start=T0 + timedelta(minutes=2))
    score(world.project, good, "helpfulness", 5)
    score(world.project, bad, "helpfulness", 1)
    thumbs(world.project, bad, up=False)
    client = login(world.viewer)

    assert listed(client.get(traces_url(world), {"score": "helpfulness>=4"})) == [good]
    assert listed(client.get(traces_url(world), {"score": "helpfulness <= 2"})) == [bad]
    assert listed(client.get(traces_url(world), {"score": "helpfulness"})) == [bad, good]
    # Repeated conditions all hold (AND); a blank page input is no condition.
    assert listed(client.get(f"{traces_url(world)}?score=helpfulness>0&score=user_thumbs=0&score=")) == [bad]
    assert listed(client.get(traces_url(world), {"feedback": "yes"})) == [bad]
    assert listed(client.get(traces_url(world), {"feedback": "no"})) == [silent, good]


def test_rows_show_score_badges_and_thumbs(world):
    trace_id = chat_trace(world.project)
    score(world.project, trace_id, "helpfulness", 4)
    score(world.project, trace_id, "helpfulness", 5)
    thumbs(world.project, trace_id, up=True)
    html = login(world.viewer).get(traces_url(world)).content.decode()
    assert "helpfulness <b>4.5</b>" in html
    assert "👍" in html


def status_chip(html: str, trace_id: str) -> str:
    """The text of the status chip in the row of `trace_id`."""
    row = html.split(f"/traces/{trace_id}/", 1)[1].split("</tr>", 1)[0]
    return row.split('class="status status-', 1)[1].split(">", 1)[1].split("<", 1)[0]


def test_status_reads_ok_for_a_clean_trace_and_error_for_a_failed_one(world):
    # Most instrumentations never set a span status, so the stored OTel status is UNSET.
    clean = chat_trace(world.project, start=T0, root_status=0)
    failed = chat_trace(world.project, start=T0 + timedelta(minutes=1), error=True)
    assert Trace.objects.get(trace_id=clean).status == "unset"  # stored as OTel said
    client = login(world.viewer)

    html = client.get(traces_url(world)).content.decode()

    assert status_chip(html, clean) == "ok" and status_chip(html, failed) == "error"
    assert ">unset<" not in html
    # The filter keeps OTel's stored values: `unset` still finds the clean trace.
    assert listed(client.get(traces_url(world), {"status": "unset"})) == [clean]
    assert listed(client.get(traces_url(world), {"status": "error"})) == [failed]
    page = client.get(f"{traces_url(world)}{clean}/").content.decode()
    header = page.split('<header class="trace-head', 1)[1].split("</header>", 1)[0]
    assert '<span class="status status-ok" title="no span failed · OTel status: unset">ok</span>' in header
    failed_page = client.get(f"{traces_url(world)}{failed}/").content.decode()
    assert ">error</span>" in failed_page.split('<header class="trace-head', 1)[1].split("</header>", 1)[0]


def test_flagged_and_negative_chips_lead_and_passed_checks_fold(world):
    trace_id = chat_trace(world.project)
    # What the evaluators write on a trace whose answer is not grounded ...
    score(world.project, trace_id, "hallucination", 0.82, metadata={"flagged": True})
    score(world.project, trace_id, "toxicity_output", 0.91, metadata={"flagged": True})
    score(world.project, trace_id, "pii_input", 0, boolean=True)
    score(world.project, trace_id, "pii_output", 0, boolean=True)
    # ... the project's injection threshold is 0.8: the stored decision wins over the
    # registry's default 0.5.
    score(world.project, trace_id, "prompt_injection", 0.6, metadata={"flagged": False})
    # What the user did next, and what they said.
    score(world.project, trace_id, "rephrase", 1, source=Source.IMPLICIT, boolean=True)
    score(world.project, trace_id, "user_rating", 5, source=Source.END_USER)

    html = login(world.viewer).get(traces_url(world)).content.decode()

    cell = html.split('<td class="col-scores">', 1)[1].split("</td>", 1)[0]
    order = [cell.index(f"{name} <b>") for name in
             ("hallucination", "toxicity_output", "rephrase", "user_rating", "pii_input", "pii_output")]
    assert order == sorted(order)  # flagged, negative signal, the end user's praise, then the rest
    leading, folded = cell.split('<details class="more-scores">', 1)
    assert "⚠" in leading and 'class="badge tone-bad"' in leading and 'class="badge tone-good"' in leading
    for quiet in ("pii_input <b>no</b>", "pii_output <b>no</b>", "prompt_injection <b>0.6</b>"):
        assert quiet not in leading and quiet in folded
    # "+3", with the folded scores in the tooltip and behind a keyboard-operable <details>.
    assert '<summary title="pii_input no · pii_output no · prompt_injection 0.6">+3' in folded


def test_a_trace_with_only_passed_checks_shows_them_folded(world):
    trace_id = chat_trace(world.project)
    score(world.project, trace_id, "pii_input", 0, boolean=True)
    score(world.project, trace_id, "toxicity_input", 0.02, metadata={"flagged": False})

    html = login(world.viewer).get(traces_url(world)).content.decode()

    cell = html.split('<td class="col-scores">', 1)[1].split("</td>", 1)[0]
    assert cell.startswith('<details class="more-scores"><summary title="pii_input no · toxicity_input 0.02">2 scores')


def test_invalid_filters_are_explained_not_ignored(world):
    chat_trace(world.project)
    response = login(world.viewer).get(
        traces_url(world), {"range": "custom", "from": "yesterday", "score": "helpfulness>x", "meta": "novalue"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "Fix these filters" in html
    assert "not an ISO-8601 datetime" in html and "&#x27;yesterday&#x27;" in html
    assert "needs a number" in html
    assert "must look like key=value" in html
    assert listed(response) == []


def test_keyset_pages_cover_every_trace_once_in_time_and_latency_order(world, monkeypatch):
    from explorer import views

    monkeypatch.setattr(views, "PAGE_SIZE", 3)
    latencies = [500, 100, 900, 100, 300, 700, 100]
    ids = [chat_trace(world.project, start=T0 + timedelta(seconds=i), latency_ms=ms) for i, ms in enumerate(latencies)]
    client = login(world.viewer)
    for sort, expected in [
        ("-time", list(reversed(ids))),
        ("-latency", [ids[i] for i in sorted(range(7), key=lambda i: (-latencies[i], -i))]),
        ("latency", [ids[i] for i in sorted(range(7), key=lambda i: (latencies[i], i))]),
    ]:
        seen, cursor = [], None
        for _ in range(5):
            params = {"sort": sort, **({"cursor": cursor} if cursor else {})}
            response = client.get(traces_url(world), params, headers={"HX-Request": "true"} if cursor else {})
            seen += listed(response)
            html = response.content.decode()
            if "Load more" not in html:
                break
            cursor = html.split("cursor=", 1)[1].split('"', 1)[0].split("&", 1)[0]
        assert seen == expected, sort


def test_htmx_filter_request_returns_only_the_results(world):
    trace_id = chat_trace(world.project)
    response = login(world.viewer).get(
        traces_url(world), {"user_id": "user-ada"}, headers={"HX-Request": "true", "HX-Target": "results"}
    )
    html = response.content.decode()
    assert trace_id in html
    assert "<html" not in html and 'id="filters"' not in html


def test_filter_change_by_htmx_updates_the_queue_and_dataset_links(world):
    # htmx swaps only #results when a filter changes, so links that carry the filter must
    # live in that fragment; in the form they kept the filter the page was opened with.
    chat_trace(world.project)
    html = login(world.member).get(
        traces_url(world), {"user_id": "user-ada"}, headers={"HX-Request": "true", "HX-Target": "results"}
    ).content.decode()
    assert f'href="/p/{world.project.slug}/annotate/new?user_id=user-ada"' in html
    assert f'href="/p/{world.project.slug}/datasets/add/?user_id=user-ada"' in html


def test_row_links_carry_the_filter_to_the_trace_page(world):
    trace_id = chat_trace(world.project)
    html = login(world.viewer).get(traces_url(world), {"user_id": "user-ada"}).content.decode()
    assert f"/traces/{trace_id}/?user_id=user-ada" in html


def test_list_query_count_does_not_grow_with_rows(world, django_assert_max_num_queries):
    def page_queries() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        client = login(world.viewer)
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(traces_url(world)).status_code == 200
        return len(ctx.captured_queries)

    trace_id = chat_trace(world.project)
    score(world.project, trace_id, "helpfulness", 3)
    few = page_queries()
    for i in range(12):
        tid = chat_trace(world.project, start=T0 + timedelta(seconds=i + 1), user=f"u{i}", session=f"s{i}")
        score(world.project, tid, "helpfulness", 3)
        thumbs(world.project, tid, up=True)
    assert page_queries() == few
    client = login(world.viewer)
    with django_assert_max_num_queries(10):
        client.get(traces_url(world))


# --- trace page -------------------------------------------------------------------------


def test_trace_page_shows_tree_waterfall_and_selected_span(world):
    rag = otlp.llm_trace("openinference")
    ingest(world.project, rag.spans)
    url = f"{traces_url(world)}{rag.trace_id}/"
    client = login(world.viewer)

    html = client.get(url).content.decode()

    # Tree: the root first, its three children indented under it in start order.
    order = [html.index(f'data-span="{rag.span_ids[r]}"') for r in ("root", "retriever", "tool", "llm")]
    assert order == sorted(order)
    assert "padding-left: 14px" in html
    assert "width: 100.0%" in html or "width: 100%" in html  # the root spans the trace
    # Selected (root) span panel and trace-level facts.
    assert 'aria-current="true"' in html
    assert otlp.SESSION_ID in html and otlp.USER_ID in html
    assert f"/p/{world.project.slug}/annotate/?trace={rag.trace_id}" not in html  # viewers can't annotate
    assert f"/api/v1/traces/{rag.trace_id}?project={world.project.slug}" in html  # copy as JSON

    llm = client.get(f"{url}?span={rag.span_ids['llm']}").content.decode()
    assert "Messages" in llm and otlp.ANSWER in llm and "role-system" in llm
    retriever = client.get(f"{url}spans/{rag.span_ids['retriever']}/").content.decode()
    assert "Retrieved documents (3)" in retriever and "kb-207" in retriever and "0.870" in retriever
    assert "Raw attributes" in retriever and "<html" not in retriever


def test_reviewer_sees_the_annotate_link(world):
    trace_id = chat_trace(world.project)
    html = login(world.reviewer).get(f"{traces_url(world)}{trace_id}/").content.decode()
    assert f"/p/{world.project.slug}/annotate/?trace={trace_id}" in html


def test_error_span_shows_its_status_message_and_exception_event(world):
    trace_id = otlp.new_trace_id()
    span_id = otlp.new_span_id()
    ingest(
        world.project,
        [
            otlp.span(
                "tool call",
                trace_id=trace_id,
                span_id=span_id,
                status=(2, "upstream timeout"),
                events=[
                    {
                        "name": "exception",
                        "attributes": {"exception.type": "TimeoutError", "exception.message": "read timed out"},
                    }
                ],
            )
        ],
    )
    html = login(world.viewer).get(f"{traces_url(world)}{trace_id}/").content.decode()
    assert "upstream timeout" in html and "TimeoutError: read timed out" in html


def test_previous_and_next_follow_the_filtered_list(world):
    a = chat_trace(world.project, start=T0, user="u1")
    chat_trace(world.project, start=T0 + timedelta(minutes=1), user="other")
    b = chat_trace(world.project, start=T0 + timedelta(minutes=2), user="u1")
    c = chat_trace(world.project, start=T0 + timedelta(minutes=3), user="u1")
    html = login(world.viewer).get(f"{traces_url(world)}{b}/?user_id=u1").content.decode()
    prev_href = html.split('id="prev-trace" href="', 1)[1].split('"', 1)[0]
    next_href = html.split('id="next-trace" href="', 1)[1].split('"', 1)[0]
    assert prev_href == f"{traces_url(world)}{c}/?user_id=u1"  # newer: above it in the list
    assert next_href == f"{traces_url(world)}{a}/?user_id=u1"


def test_trace_page_lists_each_score_once_grouped_by_source(world):
    trace_id = chat_trace(world.project, session="sess-9")
    score(world.project, trace_id, "user_thumbs", 0, source=Source.END_USER, boolean=True, comment="wrong dates")
    score(world.project, trace_id, "hallucination", 0.8765, comment="1 of 2 sentences unsupported",
          metadata={"flagged": True, "threshold": 0.5, "unsupported": []})
    score(world.project, trace_id, "pii_output", 1, boolean=True,
          metadata={"findings": [{"kind": "email", "masked": "a•••@x.org", "start": 3, "end": 12}]})
    score(world.project, trace_id, "rephrase", 1, source=Source.IMPLICIT, boolean=True,
          metadata={"detector": "embedding", "cosine": 0.93, "next": "when do refunds arrive?"})
    score(world.project, trace_id, "helpfulness", 2, source=Source.ANNOTATION, author=world.reviewer)
    score(world.project, trace_id, "csat_import", 4, source=Source.API)

    html = login(world.viewer).get(f"{traces_url(world)}{trace_id}/").content.decode()

    groups = ["end_user", "evaluator", "implicit", "annotation", "api"]
    starts = [html.index(f'id="scores-{g}"') for g in groups]
    assert starts == sorted(starts)  # end users, evaluators, implicit signals, annotation, API
    section = {g: html[start:].split("</section>", 1)[0] for g, start in zip(groups, starts, strict=True)}
    expected = {"end_user": "user_thumbs", "evaluator": "hallucination", "implicit": "rephrase",
                "annotation": "helpfulness", "api": "csat_import"}
    for group, name in expected.items():
        assert f"<code>{name}</code>" in section[group]
    for name in (*expected.values(), "pii_output", "0.8765", "wrong dates"):
        assert html.count(name) == 1, name  # no chips, evaluator panel and table repeating it
    # The evidence stays, next to its score.
    assert "a•••@x.org" in section["evaluator"] and "1 of 2 sentences unsupported" in section["evaluator"]
    assert "“when do refunds arrive?”" in section["implicit"] and "cosine" in section["implicit"]
    assert "👎 down" in section["end_user"] and "reviewer" in section["annotation"]
    # hallucination, PII found, the rephrase, the thumbs down, the reviewer's 2 of 5
    assert "5 flagged or negative" in html


def test_trace_page_says_which_sources_have_no_scores(world):
    trace_id = chat_trace(world.project, session=None)
    html = login(world.reviewer).get(f"{traces_url(world)}{trace_id}/").content.decode()
    assert "No feedback from end users on this trace." in html
    assert "Not scored yet" in html and "it belongs to no session" in html
    assert "No annotations yet; score this trace in the annotation panel below." in html
    assert 'id="scores-api"' not in html  # shown only when a script sent scores


def test_trace_page_query_count_is_bounded_for_a_200_span_trace(world, django_assert_max_num_queries):
    trace_id = chat_trace(world.project, children=199, latency_ms=20_000)
    score(world.project, trace_id, "helpfulness", 4)
    client = login(world.viewer)
    # 9 of the explorer's own (auth 3, trace, spans, scores once, neighbours 2, switcher),
    # the evaluators' status (1) and the annotation panel (4, reusing the scores),
    # independent of the span count.
    with django_assert_max_num_queries(14):
        response = client.get(f"{traces_url(world)}{trace_id}/?user_id=user-ada")
    assert response.content.decode().count('class="wf-row ') == 200


def test_annotation_panel_is_included_when_the_annotation_app_provides_it(world, settings, tmp_path):
    (tmp_path / "annotation").mkdir()
    (tmp_path / "annotation" / "_trace_panel.html").write_text("PANEL for {{ trace.trace_id }}")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}]
    trace_id = chat_trace(world.project)
    assert f"PANEL for {trace_id}" in login(world.viewer).get(f"{traces_url(world)}{trace_id}/").content.decode()


# --- sessions and users -----------------------------------------------------------------


def test_sessions_list_and_conversation(world):
    from django.utils import timezone

    now = timezone.now()
    first = chat_trace(world.project, start=now - timedelta(minutes=10), question="Hi, where is order 7?",
                       answer="It ships tomorrow.")  # fmt: skip
    second = chat_trace(world.project, start=now - timedelta(minutes=9), question="Can I change the address?",
                        answer="Yes, until it ships.")  # fmt: skip
    chat_trace(world.project, start=now - timedelta(minutes=1), session="sess-other", user="user-bob")
    thumbs(world.project, second, up=False)
    client = login(world.viewer)

    html = client.get(f"/p/{world.project.slug}/sessions/").content.decode()
    assert html.index("sess-other") < html.index("sess-1")  # most recently active first
    assert "👎 1" in html

    page = client.get(f"/p/{world.project.slug}/sessions/sess-1/").content.decode()
    assert (
        page.index("Hi, where is order 7?") < page.index("It ships tomorrow.") < page.index("Can I change the address?")
    )
    assert f"/traces/{first}/" in page and f"/traces/{second}/" in page
    assert "bubble user" in page and "bubble assistant" in page


def test_sessions_keyset_pagination(world, monkeypatch):
    from django.utils import timezone

    from explorer import selectors

    now = timezone.now()
    for i in range(5):
        chat_trace(world.project, start=now - timedelta(minutes=i), session=f"s-{i}")
    page = selectors.sessions_list(project=world.project, limit=2)
    seen = [r.session_id for r in page.rows]
    while page.next_cursor:
        page = selectors.sessions_list(
            project=world.project, limit=2, cursor=selectors.keyset_token_decode(page.next_cursor)
        )
        seen += [r.session_id for r in page.rows]
    assert seen == [f"s-{i}" for i in range(5)]


def test_users_list_and_user_page_with_feedback_rates(world):
    from django.utils import timezone

    now = timezone.now()
    a = chat_trace(world.project, start=now - timedelta(minutes=3), user="user-ada", session="s1")
    b = chat_trace(world.project, start=now - timedelta(minutes=2), user="user-ada", session="s2")
    chat_trace(world.project, start=now - timedelta(minutes=1), user="user-ada", session="s2")
    chat_trace(world.project, start=now, user="user-bob", session="s3")
    thumbs(world.project, a, up=True)
    thumbs(world.project, b, up=False)
    client = login(world.viewer)

    html = client.get(f"/p/{world.project.slug}/users/").content.decode()
    assert html.index("user-bob") < html.index("user-ada")
    ada_row = html.split('href="/p/support-bot/users/user-ada/"', 1)[1].split("</tr>", 1)[0]
    assert "67%" in ada_row  # 2 of 3 traces got feedback
    assert "50%" in ada_row  # 1 of 2 thumbs up

    page = client.get(f"/p/{world.project.slug}/users/user-ada/").content.decode()
    assert page.count('class="row-link"') == 3
    assert "/sessions/s2/" in page and "/sessions/s1/" in page and "user-bob" not in page


def test_group_pages_query_count_is_bounded(world, django_assert_max_num_queries):
    from django.utils import timezone

    for i in range(8):
        tid = chat_trace(world.project, start=timezone.now() - timedelta(minutes=i), user=f"u{i}", session=f"s{i}")
        thumbs(world.project, tid, up=True)
    client = login(world.viewer)
    for path in ("sessions/", "users/", "sessions/s1/", "users/u1/"):
        with django_assert_max_num_queries(10):
            assert client.get(f"/p/{world.project.slug}/{path}").status_code == 200


def test_trace_rows_are_not_created_outside_ingest(world):
    # Guard for this module's helper: every trace above came through spans_ingest.
    chat_trace(world.project)
    assert Trace.objects.filter(project=world.project).get().span_count == 2
