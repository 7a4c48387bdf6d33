"""Implicit-feedback signals, pure logic (feedback/implicit.py): scripted sessions with a
fake embedder whose cosines are chosen by the test, so each rule is tested on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedback import implicit
from feedback.implicit import Event, Turn, levenshtein, phrase_match, session_signals, user_message_of

T0 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=2)  # long after every scripted session: abandon is decidable
SOON = T0 + timedelta(minutes=5)  # sessions still live


def vec(cosine_to_x: float, axis: int = 1) -> np.ndarray:
    """A unit vector whose cosine with [1, 0, 0] is `cosine_to_x`."""
    v = np.zeros(3, dtype=np.float32)
    v[0] = cosine_to_x
    v[axis] = np.sqrt(max(0.0, 1 - cosine_to_x**2))
    return v


class FakeEmbedder:
    """Messages not in the table embed on the x axis (cosine 1 with each other)."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(texts)
        return np.stack([self.table.get(t, vec(1.0)) for t in texts])


def session(*messages: str, answers: tuple[str, ...] = ()) -> list[Turn]:
    return [
        Turn(
            trace_id=f"{i:032x}",
            start_time=T0 + timedelta(minutes=2 * i),
            end_time=T0 + timedelta(minutes=2 * i, seconds=3),
            user_message=message,
            answer=answers[i] if i < len(answers) else f"answer {i}",
        )
        for i, message in enumerate(messages)
    ]


def run(turns, events=(), *, table=None, now=LATER, positive=frozenset()):
    return session_signals(turns, list(events), embed=FakeEmbedder(table or {}), now=now, positive_trace_ids=positive)


def names(found, trace_id=None) -> set[str]:
    return {s.name for s in found if trace_id is None or s.trace_id == trace_id}


def only(found, name):
    matching = [s for s in found if s.name == name]
    assert len(matching) == 1, found
    return matching[0]


# --- rephrase / follow-up -----------------------------------------------------------------


def test_a_rephrased_question_marks_the_previous_answer_with_the_pair_and_cosine():
    turns = session("How do I reset my password?", "I forgot my password, how can I change it?")
    table = {turns[0].user_message: vec(1.0), turns[1].user_message: vec(0.9)}

    found = run(turns, table=table)

    rephrase = only(found, "rephrase")
    assert rephrase.trace_id == turns[0].trace_id and rephrase.value == 1
    assert rephrase.evidence["previous"] == "How do I reset my password?"
    assert rephrase.evidence["next"] == "I forgot my password, how can I change it?"
    assert rephrase.evidence["cosine"] == pytest.approx(0.9, abs=1e-3)
    assert rephrase.evidence["next_trace_id"] == turns[1].trace_id
    assert "follow_up" not in names(found)


def test_a_new_topic_is_neither_rephrase_nor_follow_up():
    turns = session("How do I reset my password?", "What are your opening hours?")
    found = run(turns, table={turns[1].user_message: vec(0.05)})
    assert not names(found) & {"rephrase", "follow_up"}


@pytest.mark.parametrize(
    "message",
    [
        "Another question: how do I reset my password for the API?",
        "Andere Frage: wie setze ich das Passwort zurück?",
        "Autre question : comment réinitialiser le mot de passe ?",
        "Otra pregunta: ¿cómo restablezco la contraseña?",
        "別の質問ですが、パスワードのリセットは？",
        "Thanks! How do I reset my password?",
    ],
)
def test_similar_wording_with_a_new_topic_or_thanks_marker_is_not_a_rephrase(message):
    turns = session("How do I reset my password?", message)
    found = run(turns, table={message: vec(0.95)})
    assert "rephrase" not in names(found)


def test_a_verbatim_repeat_is_a_rephrase_whatever_the_embedding():
    turns = session("Where is my order?", "where is my order?")
    found = run(turns, table={"Where is my order?": vec(1.0), "where is my order?": vec(0.2)})
    assert only(found, "rephrase").evidence["cosine"] == 1.0


def test_a_related_question_is_a_follow_up_not_a_rephrase():
    turns = session("How do I cancel my subscription?", "Will I keep access until the end of the month?")
    found = run(turns, table={turns[1].user_message: vec(0.45)})
    follow_up = only(found, "follow_up")
    assert follow_up.trace_id == turns[0].trace_id and follow_up.evidence["cosine"] == pytest.approx(0.45, abs=1e-3)
    assert "rephrase" not in names(found)


def test_a_moderately_similar_statement_is_not_a_follow_up():
    turns = session("How do I cancel my subscription?", "I cancelled it already last month")
    found = run(turns, table={turns[1].user_message: vec(0.45)})
    assert "follow_up" not in names(found)


def test_messages_are_embedded_once_per_session():
    turns = session("a?", "b?", "c?")
    embedder = FakeEmbedder({})
    session_signals(turns, [], embed=embedder, now=SOON)
    assert embedder.calls == [["a?", "b?", "c?"]]


# --- phrases ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "message", "language"),
    [
        ("thanks", "Thanks, that helped!", "en"),
        ("thanks", "Super, danke!", "de"),
        ("thanks", "Merci beaucoup", "fr"),
        ("thanks", "¡Muchas gracias!", "es"),
        ("thanks", "ありがとうございます", "ja"),
        ("frustration", "This is useless.", "en"),
        ("frustration", "Das funktioniert immer noch nicht", "de"),
        ("frustration", "Ça ne marche pas du tout", "fr"),
        ("frustration", "No funciona, ya te lo dije", "es"),
        ("frustration", "全然役に立たない", "ja"),
        ("escalate", "Can I talk to a human please?", "en"),
        ("escalate", "Ich möchte mit einem Menschen sprechen", "de"),
        ("escalate", "Je veux parler à un conseiller", "fr"),
        ("escalate", "Quiero hablar con un agente", "es"),
        ("escalate", "オペレーターに繋いでください", "ja"),
        ("escalate", "agent", "en"),
    ],
)
def test_reaction_phrases_in_five_languages_judge_the_previous_answer(kind, message, language):
    turns = session("My parcel has not arrived, where is it?", message)
    found = run(turns, table={message: vec(0.0)}, now=SOON)

    signal = only(found, kind)
    assert signal.trace_id == turns[0].trace_id  # the answer the user reacted to
    assert signal.evidence["language"] == language and signal.evidence["message"] == message
    assert signal.evidence["message_trace_id"] == turns[1].trace_id


@pytest.mark.parametrize(
    "message",
    ["No thanks, I'll wait", "Nein danke", "Non merci", "No, gracias", "Thanks for nothing"],
)
def test_declining_is_not_thanks(message):
    assert phrase_match("thanks", message) is None


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("escalate", "What does the travel agent field on the booking mean?"),
        ("escalate", "How many support tickets can I open?"),
        ("frustration", "Is this the right way to do it?"),
        ("thanks", "How do I thank a colleague in the app?"),
    ],
)
def test_ordinary_questions_do_not_trigger_phrases(kind, message):
    assert phrase_match(kind, message) is None


def test_thanks_in_advance_in_the_first_message_judges_nothing():
    found = run(session("Thanks in advance! How do I export to CSV?"), now=SOON)
    assert "thanks" not in names(found)


def test_escalation_in_the_first_message_stays_on_its_own_turn():
    turns = session("I want to speak with a real person")
    assert only(run(turns, now=SOON), "escalate").trace_id == turns[0].trace_id


# --- events -------------------------------------------------------------------------------


def ev(turn: Turn, name: str, *, minutes: float = 1, value=None, text=None) -> Event:
    return Event(turn.trace_id, name, turn.end_time + timedelta(minutes=minutes), value=value, text=text)


def test_copy_regenerate_and_escalate_events_become_signals_on_their_trace():
    turns = session("q1?", "q2 is something else entirely")
    events = [ev(turns[0], "regenerate"), ev(turns[0], "regenerate", minutes=1.5), ev(turns[1], "copy"),
              ev(turns[1], "escalate")]  # fmt: skip

    found = run(turns, events, table={"q2 is something else entirely": vec(0.0)}, now=SOON)

    assert names(found, turns[0].trace_id) == {"regenerate"}
    assert only(found, "regenerate").evidence == {
        "detector": "event", "events": 2, "first_at": events[0].created_at.isoformat()
    }  # fmt: skip
    assert names(found, turns[1].trace_id) == {"copy", "escalate"}


def test_no_events_no_event_signals():
    found = run(session("q1?"), now=SOON)
    assert found == []


def test_dwell_time_is_the_longest_read():
    turns = session("q?")
    found = run(turns, [ev(turns[0], "dwell_ms", value=1200.0), ev(turns[0], "dwell_ms", value=5400.0)], now=SOON)
    dwell = only(found, "dwell_ms")
    assert dwell.value == 5400.0 and dwell.evidence["events"] == 2


def test_edit_scores_the_levenshtein_distance_to_the_final_edit():
    turns = session("q?", answers=("Refunds are accepted within 30 days.",))
    events = [
        ev(turns[0], "edit", text="draft"),
        ev(turns[0], "edit", minutes=2, text="Refunds are accepted within 14 days."),
    ]

    edit = only(run(turns, events, now=SOON), "edit")

    assert edit.value == 2  # "30" -> "14"
    assert edit.evidence["distance"] == 2 and edit.evidence["events"] == 2
    assert edit.evidence["similarity"] == pytest.approx(1 - 2 / 36, abs=1e-4)


def test_a_escalate_event_and_phrase_on_one_trace_are_one_signal_with_both_evidences():
    turns = session("Where is my parcel?", "Let me talk to a human")
    found = run(turns, [ev(turns[0], "escalate")], table={"Let me talk to a human": vec(0.0)}, now=SOON)
    escalate = only(found, "escalate")
    assert {escalate.evidence["detector"], escalate.evidence["more"][0]["detector"]} == {"event", "phrase"}


# --- abandon ------------------------------------------------------------------------------


def test_the_last_answer_is_abandoned_after_the_idle_threshold():
    turns = session("Where is my parcel?", "It still has not arrived, where is it?")
    last_end = turns[-1].end_time

    assert "abandon" not in names(run(turns, now=last_end + timedelta(minutes=29)))
    abandon = only(run(turns, now=last_end + timedelta(minutes=31)), "abandon")
    assert abandon.trace_id == turns[-1].trace_id
    assert abandon.evidence["threshold_minutes"] == 30 and abandon.evidence["idle_minutes"] == 31


def test_the_abandon_threshold_is_configurable():
    turns = session("q?")
    params = implicit.SignalParams(abandon_after=timedelta(minutes=5))
    found = session_signals(turns, [], embed=FakeEmbedder({}), now=turns[0].end_time + timedelta(minutes=6),
                            params=params)  # fmt: skip
    assert "abandon" in names(found)


def test_a_copied_or_upvoted_last_answer_is_not_abandoned():
    turns = session("q?")
    assert "abandon" not in names(run(turns, [ev(turns[0], "copy")]))
    assert "abandon" not in names(run(turns, positive=frozenset({turns[0].trace_id})))


def test_ending_with_thanks_is_not_abandoning():
    turns = session("Where is my parcel?", "Thanks, bye!")
    assert "abandon" not in names(run(turns, table={"Thanks, bye!": vec(0.0)}))


def test_a_late_event_keeps_the_session_alive():
    turns = session("q?")
    dwell = ev(turns[0], "dwell_ms", minutes=25, value=100.0)
    assert "abandon" not in names(run(turns, [dwell], now=turns[0].end_time + timedelta(minutes=40)))


def test_an_abandon_event_from_the_browser_counts_at_once():
    turns = session("q1?", "q2?")
    found = run(turns, [ev(turns[0], "abandon")], now=SOON)
    assert only(found, "abandon").trace_id == turns[0].trace_id


# --- helpers ------------------------------------------------------------------------------


def test_user_message_is_read_from_json_message_lists():
    raw = '[{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi there"}]'
    assert user_message_of(raw) == "hi there"
    assert user_message_of('{"question": "why?"}') == "why?"
    assert user_message_of("plain text") == "plain text"
    assert user_message_of("[not json") == "[not json"
    assert user_message_of(None) == ""


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("", "", 0), ("abc", "", 3), ("kitten", "sitting", 3), ("flaw", "lawn", 2), ("日本語", "日本", 1)],
)
def test_levenshtein_known_values(a, b, distance):
    assert levenshtein(a, b) == distance == levenshtein(b, a)


def _reference_levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abcé日 ", max_size=25), st.text(alphabet="abcé日 ", max_size=25))
def test_levenshtein_matches_the_textbook_dynamic_programme(a, b):
    assert levenshtein(a, b) == _reference_levenshtein(a, b)
