"""Implicit-feedback signals: what an end user's next move says about an answer.

Pure logic — a session's turns and interaction events in, signals out — so every rule
is unit-testable without a database or a model (the embedder is passed in). The
service `feedback.services.session_signals_compute` loads a session, calls
`session_signals` and stores each signal as a `source=implicit` Score.

Attribution: a reaction in the user's message of turn k (a rephrase, "thanks", "this
is useless", "let me talk to a human") judges the *answer of turn k-1*, so the signal
is stored on turn k-1's trace — that is the trace (and prompt version) that earned it.
A reaction in the first message of a session has no previous answer and stays on its
own turn (escalate, frustration), or is ignored (thanks: "thanks in advance").
Events (copy, regenerate, edit, dwell_ms, escalate, abandon) already name their trace.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import orjson

from scores import names

# Every score name this module may produce. The service deletes stale ones among these
# (and only these) when a session is recomputed.
SIGNAL_NAMES = tuple(signal.name for signal in names.SIGNALS)

# Cosine similarity of two consecutive user messages (all-MiniLM-L6-v2, normalised).
# Tuned on half of tests/feedback/data/rephrase_pairs.jsonl (bench/eval_rephrase.py);
# the figures on the other half are in bench/README.md ("Implicit signals").
REPHRASE_THRESHOLD = 0.70
FOLLOW_UP_THRESHOLD = 0.15
ABANDON_AFTER = timedelta(minutes=30)

# Evidence is shown on the trace page and stored as jsonb; long messages are cut.
EXCERPT_CHARS = 300
# Levenshtein is O(n·m); answers longer than this are compared on their first part.
EDIT_MAX_CHARS = 8000

Embedder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Turn:
    trace_id: str
    start_time: datetime
    end_time: datetime
    user_message: str
    answer: str


@dataclass(frozen=True)
class Event:
    trace_id: str
    name: str
    created_at: datetime
    value: float | None = None
    text: str | None = None


@dataclass
class Signal:
    trace_id: str
    name: str
    value: float
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SignalParams:
    rephrase_threshold: float = REPHRASE_THRESHOLD
    follow_up_threshold: float = FOLLOW_UP_THRESHOLD
    abandon_after: timedelta = ABANDON_AFTER


# --- text normalisation and phrase lists ------------------------------------------------


def fold(text: str) -> str:
    """Case-, width- and accent-insensitive form for phrase matching.

    NFKD then dropping combining marks turns "Dankeschön" into "dankeschon" and "ＡＢＣ"
    into "abc", so users who type without accents still match. Patterns go through
    the same function, which keeps Japanese (whose voiced marks are also combining
    characters) consistent on both sides.
    """
    text = unicodedata.normalize("NFKD", text.replace("\u2019", "'").replace("\u2018", "'"))
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


# Per signal and language: regular expressions over folded text. Latin-script phrases
# use word boundaries; Japanese has no spaces, so its phrases match as substrings.
_PHRASES: dict[str, dict[str, list[str]]] = {
    "thanks": {
        "en": [r"\bthanks\b", r"\bthank (?:you|u)\b", r"\bthx\b", r"\bmuch appreciated\b",
               r"\bthat (?:helped|worked)\b", r"\b(?:works|working) now\b", r"\bperfect\b",
               r"\bgreat,? (?:thanks|that)\b"],
        "de": [r"\bdanke\b", r"\bvielen dank\b", r"\bdankeschon\b", r"\bhat (?:geklappt|geholfen)\b",
               r"\bsuper,? danke\b"],
        "fr": [r"\bmerci\b", r"\bparfait\b", r"\bca a marche\b", r"\bc'est bon,? merci\b"],
        "es": [r"\bgracias\b", r"\bperfecto\b", r"\bme (?:ha|has) ayudado\b", r"\bya funciona\b"],
        "ja": ["ありがとう", "有難う", "助かりました", "解決しました", "どうも"],
        "it": [r"\bgrazie\b"],
        "pt": [r"\bobrigad[oa]\b"],
        "nl": [r"\bbedankt\b", r"\bdank je\b"],
    },
    "frustration": {
        "en": [r"\buseless\b", r"\b(?:this|that|it) is (?:wrong|incorrect|nonsense)\b",
               r"\bthat'?s (?:wrong|not right)\b",
               r"\bnot helpful\b", r"\b(?:does ?n'?t|did ?n'?t|does not|did not) help\b", r"\bnot what i asked\b",
               r"\b(?:you'?re|you are) not listening\b", r"\bstupid\b", r"\bwtf\b", r"\bridiculous\b",
               r"\bfrustrat(?:ing|ed)\b", r"\b(?:still )?(?:does ?n'?t|does not|do ?n'?t) work\b",
               r"\bi (?:already|just) (?:said|told you|asked)\b", r"\bthanks for nothing\b", r"\bwaste of time\b"],
        "de": [r"\bnutzlos\b", r"\bunbrauchbar\b", r"\b(?:das|es) ist falsch\b", r"\bhilft (?:mir )?(?:nicht|nichts)\b",
               r"\bfunktioniert (?:immer noch |noch )?nicht\b", r"\bnicht (?:das|was) ich (?:gefragt|wollte)\b",
               r"\bbl(?:o|oe)d\b", r"\b(?:schon|bereits) (?:mal )?gesagt\b", r"\bfrustrierend\b",
               r"\bdanke fur nichts\b",
               r"\bzeitverschwendung\b"],
        "fr": [r"\binutile\b", r"\bc'est faux\b", r"\bca (?:ne )?marche (?:pas|toujours pas)\b",
               r"\bne fonctionne (?:pas|toujours pas)\b", r"\bn'aide pas\b", r"\bpas ce que j'ai demande\b",
               r"\bj'ai deja dit\b", r"\bnul\b", r"\bfrustrant\b", r"\bmerci pour rien\b", r"\bn'importe quoi\b"],
        "es": [r"\binutil\b", r"\bno sirve\b", r"\besta mal\b", r"\bno funciona\b", r"\bno (?:me )?ayuda\b",
               r"\bno es lo que (?:pregunte|pedi)\b", r"\bya te (?:lo )?dije\b", r"\bfrustrante\b",
               r"\bgracias por nada\b", r"\bperdida de tiempo\b"],
        "ja": ["役に立たない", "使えない", "違います", "間違って", "意味がない", "わかってない", "分かってない",
               "イライラ", "さっきも言った", "何度も言って", "動かない"],
    },
    "escalate": {
        "en": [r"\b(?:talk|speak|chat) (?:to|with) (?:a |an |some |your )?(?:human|person|real person|someone|agent|"
               r"representative|operator|support|manager)\b",
               r"\b(?:human|live|real|support) (?:agent|person|being|representative)\b",
               r"\bcustomer (?:service|support)\b", r"\bsupport (?:person|team|staff)\b",
               r"\b(?:connect|transfer) me\b",
               # a bare "agent" / "human please": "agent" inside a sentence is too often about something else
               r"^\W*(?:an? )?(?:human|agent|representative|operator)\W*(?:please|pls|now)?\W*$"],
        "de": [r"\b(?:mit )?(?:einem |einer )?(?:menschen|mitarbeiter(?:in)?|berater(?:in)?) sprechen\b",
               r"\b(?:echten|richtigen) menschen\b", r"\bkundendienst\b", r"\bkundenservice\b",
               r"\bsupport-?mitarbeiter\b", r"\b(?:verbinden sie mich|weiterleiten)\b"],
        "fr": [r"\bparler (?:a|avec) (?:un |une )?"
               r"(?:humain|personne|conseiller|conseillere|agent|operateur|quelqu'un)\b",
               r"\b(?:vrai|vraie) (?:humain|personne)\b", r"\bservice client\b"],
        "es": [r"\bhablar con (?:un |una |el |la )?(?:humano|persona|agente|representante|operador|alguien)\b",
               r"\bpersona real\b", r"\b(?:atencion|servicio) al cliente\b", r"\bagente humano\b"],
        "ja": ["人間と話", "人と話", "オペレーター", "担当者", "有人", "サポートに繋", "サポートにつな", "窓口"],
    },
    # A message that opens a new subject is not a rephrase, however similar its wording.
    "new_topic": {
        "en": [r"\b(?:new|another|different|unrelated|separate) question\b", r"\bunrelated\b", r"\bsomething else\b",
               r"\bby the way\b", r"\bbtw\b", r"\bon another note\b", r"\bchanging the subject\b"],
        "de": [r"\b(?:andere|neue|weitere) frage\b", r"\bnoch eine frage\b", r"\betwas anderes\b", r"\bubrigens\b"],
        "fr": [r"\b(?:autre|nouvelle) question\b", r"\bautre chose\b", r"\bau fait\b", r"\brien a voir\b"],
        "es": [r"\b(?:otra|nueva) pregunta\b", r"\botra cosa\b", r"\bpor cierto\b", r"\bcambiando de tema\b"],
        "ja": ["別の質問", "話は変わりますが", "ところで", "もう一つ質問", "ちなみに"],
    },
}

# Phrases that contain a thanks word but decline or mock: removed before matching thanks.
_NOT_THANKS = [r"\bno,? thanks?\b", r"\bno thank you\b", r"\bthanks for nothing\b", r"\bthanks in advance\b",
               r"\bnein,? danke\b", r"\bdanke fur nichts\b", r"\bnon,? merci\b", r"\bmerci pour rien\b",
               r"\bno,? gracias\b", r"\bgracias por nada\b"]  # fmt: skip

_QUESTION_START = (
    r"^(?:what|how|why|when|where|which|who|whom|whose|can|could|does|do|did|is|are|should|will|would|"
    r"was|wie|warum|wann|wo|welche[rsn]?|wer|kann|konnen|gibt|ist|sind|"
    r"que|quoi|comment|pourquoi|quand|ou|quel(?:le)?s?|est-ce|"
    r"como|por que|cuando|donde|cual(?:es)?|quien|puedo|hay|es)\b"
)


def _compile(patterns: Iterable[str]) -> list[tuple[str, re.Pattern[str]]]:
    return [(p, re.compile(fold(p))) for p in patterns]


_COMPILED = {
    kind: {lang: _compile(patterns) for lang, patterns in by_lang.items()} for kind, by_lang in _PHRASES.items()
}
_NOT_THANKS_RE = [re.compile(fold(p)) for p in _NOT_THANKS]
_QUESTION_RE = re.compile(_QUESTION_START)


@dataclass(frozen=True)
class PhraseMatch:
    kind: str
    language: str
    phrase: str  # the text that matched, as the user wrote it (folded)


def phrase_match(kind: str, text: str) -> PhraseMatch | None:
    """First phrase of `kind` ("thanks", "frustration", "escalate", "new_topic") in `text`."""
    folded = fold(text)
    if kind == "thanks":
        for pattern in _NOT_THANKS_RE:
            folded = pattern.sub(" ", folded)
    for language, patterns in _COMPILED[kind].items():
        for _, pattern in patterns:
            found = pattern.search(folded)
            if found:
                return PhraseMatch(kind, language, found.group(0).strip())
    return None


def is_question(text: str) -> bool:
    folded = fold(text).strip()
    if "?" in folded or "？" in text:
        return True
    if folded.endswith(("か", "ですか", "ますか", "の")):
        return True
    return bool(_QUESTION_RE.match(folded))


def user_message_of(raw: str | None) -> str:
    """The user's words from a trace's input, which some instrumentations store as JSON
    (a message list, or {"messages": [...]}, or {"question": ...}) rather than text."""
    if not raw:
        return ""
    text = raw.strip()
    if not text or text[0] not in "[{":
        return text
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if isinstance(data, dict):
        for key in ("input", "question", "query", "message", "prompt"):
            if isinstance(data.get(key), str):
                return data[key]
        data = data.get("messages", data)
    if isinstance(data, list):
        for message in reversed(data):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):  # multimodal parts: keep the text ones
                    return " ".join(p.get("text", "") for p in content if isinstance(p, dict)).strip()
    return text


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of characters).

    Row by row with numpy: a row's insertion chain D[j] = min_k≤j (T[k] + j - k) is a
    running minimum of T[k] - k, so each row is a handful of vector operations instead of
    a Python loop over characters (8k × 8k characters in well under a second).
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    target = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    columns = np.arange(len(b) + 1, dtype=np.int64)
    previous = columns.copy()
    for i, char in enumerate(a, start=1):
        substitution = previous[:-1] + (target != ord(char))
        best = np.empty_like(previous)
        best[0] = i
        best[1:] = np.minimum(previous[1:] + 1, substitution)
        previous = np.minimum.accumulate(best - columns) + columns
    return int(previous[-1])


# --- the signals ------------------------------------------------------------------------


def _excerpt(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


class _Collector:
    """Signals keyed by (trace, name): a second piece of evidence for the same signal
    (an escalate event *and* an escalate phrase) is kept beside the first."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Signal] = {}

    def add(self, trace_id: str, name: str, value: float, evidence: dict[str, Any]) -> None:
        key = (trace_id, name)
        if key in self.items:
            self.items[key].evidence.setdefault("more", []).append(evidence)
        else:
            self.items[key] = Signal(trace_id, name, value, evidence)


def session_signals(
    turns: Sequence[Turn],
    events: Sequence[Event],
    *,
    embed: Embedder,
    now: datetime,
    params: SignalParams = SignalParams(),
    positive_trace_ids: frozenset[str] = frozenset(),
) -> list[Signal]:
    """All signals of one session. `turns` in any order (sorted here by start time).

    `positive_trace_ids`: traces with explicit positive end-user feedback (thumbs up,
    4+ stars) — a user who said the answer was good did not abandon it.
    """
    turns = sorted(turns, key=lambda t: (t.start_time, t.trace_id))
    if not turns:
        return []
    out = _Collector()
    by_trace: dict[str, list[Event]] = {}
    for event in sorted(events, key=lambda e: e.created_at):
        by_trace.setdefault(event.trace_id, []).append(event)

    _conversation_signals(turns, embed, params, out)
    for turn in turns:
        _event_signals(turn, by_trace.get(turn.trace_id, []), out)
    _abandon(turns, events, now, params, positive_trace_ids, out)
    position = {t.trace_id: i for i, t in enumerate(turns)}
    return sorted(out.items.values(), key=lambda s: (position[s.trace_id], s.name))


def _conversation_signals(turns: Sequence[Turn], embed: Embedder, params: SignalParams, out: _Collector) -> None:
    messages = [t.user_message.strip() for t in turns]
    for k, turn in enumerate(turns):
        message = messages[k]
        if not message:
            continue
        judged = turns[k - 1] if k > 0 else turn
        for kind in ("escalate", "frustration", "thanks"):
            if kind == "thanks" and k == 0:
                continue  # "thanks in advance" judges nothing yet
            match = phrase_match(kind, message)
            if match:
                out.add(judged.trace_id, kind, 1, {
                    "detector": "phrase", "phrase": match.phrase, "language": match.language,
                    "message": _excerpt(message), "message_trace_id": turn.trace_id,
                })  # fmt: skip

    pairs = [(k - 1, k) for k in range(1, len(turns)) if messages[k - 1] and messages[k]]
    if not pairs:
        return
    vectors = np.asarray(embed(messages), dtype=np.float32)
    for previous, k in pairs:
        cosine = float(np.dot(vectors[previous], vectors[k]))
        if messages[previous].casefold() == messages[k].casefold():
            cosine = 1.0  # a verbatim repeat, whatever the model's rounding says
        kind = pair_kind(messages[k], cosine, params)
        evidence = {
            "detector": "embedding", "previous": _excerpt(messages[previous]), "next": _excerpt(messages[k]),
            "next_trace_id": turns[k].trace_id, "cosine": round(cosine, 4),
        }  # fmt: skip
        if kind == "rephrase":
            out.add(turns[previous].trace_id, "rephrase", 1, {**evidence, "threshold": params.rephrase_threshold})
        elif kind == "follow_up":
            out.add(turns[previous].trace_id, "follow_up", 1, {
                **evidence, "threshold": [params.follow_up_threshold, params.rephrase_threshold],
            })  # fmt: skip


def pair_kind(next_message: str, cosine: float, params: SignalParams = SignalParams()) -> str:
    """What the next user message is relative to the previous one: "rephrase" (asked
    again: the answer did not help), "follow_up" (a related new question) or "other"
    (new topic, thanks, small talk). Shared by the signals and bench/eval_rephrase.py,
    so the benchmark measures exactly the shipped rule."""
    if phrase_match("new_topic", next_message) or phrase_match("thanks", next_message):
        return "other"  # the user moved on (or was satisfied): not a failure of the answer
    if cosine >= params.rephrase_threshold:
        return "rephrase"
    if cosine >= params.follow_up_threshold and is_question(next_message):
        return "follow_up"
    return "other"


def _event_signals(turn: Turn, events: list[Event], out: _Collector) -> None:
    named: dict[str, list[Event]] = {}
    for event in events:
        named.setdefault(event.name, []).append(event)
    for name in ("copy", "regenerate", "escalate", "abandon"):
        if name in named:
            found = named[name]
            out.add(turn.trace_id, name, 1, {
                "detector": "event", "events": len(found), "first_at": found[0].created_at.isoformat(),
            })  # fmt: skip
    dwell = [e.value for e in named.get("dwell_ms", []) if e.value is not None]
    if dwell:
        # Several dwell reports for one answer (the page was reopened): the longest read
        # is the one that says the user engaged with it.
        out.add(turn.trace_id, "dwell_ms", max(dwell), {"detector": "event", "events": len(dwell),
                                                        "values": dwell[:10]})
    edits = [e for e in named.get("edit", []) if e.text]
    if edits:
        edited = edits[-1].text or ""  # the final version is what the user kept
        answer = turn.answer or ""
        truncated = len(answer) > EDIT_MAX_CHARS or len(edited) > EDIT_MAX_CHARS
        distance = levenshtein(answer[:EDIT_MAX_CHARS], edited[:EDIT_MAX_CHARS])
        longest = max(len(answer), len(edited), 1)
        out.add(turn.trace_id, "edit", distance, {
            "detector": "event", "distance": distance, "similarity": round(1 - distance / longest, 4),
            "answer_chars": len(answer), "edited_chars": len(edited), "edited": _excerpt(edited),
            "events": len(edits), "truncated": truncated,
        })  # fmt: skip


_POSITIVE_EVENTS = frozenset({"copy"})


def _abandon(
    turns: Sequence[Turn],
    events: Sequence[Event],
    now: datetime,
    params: SignalParams,
    positive_trace_ids: frozenset[str],
    out: _Collector,
) -> None:
    last = turns[-1]
    if (last.trace_id, "abandon") in out.items:
        return  # the SDK or the browser said so already
    activity = [t.end_time for t in turns] + [e.created_at for e in events]
    last_activity = max(activity)
    idle = now - last_activity
    if idle < params.abandon_after:
        return  # the user may still be typing; the periodic sweep comes back later
    positive = last.trace_id in positive_trace_ids or any(
        e.trace_id == last.trace_id and e.name in _POSITIVE_EVENTS for e in events
    )
    # "Thanks, bye" as the last message closes a conversation that went well.
    if positive or phrase_match("thanks", last.user_message):
        return
    out.add(last.trace_id, "abandon", 1, {
        "detector": "idle", "last_activity": last_activity.isoformat(),
        "idle_minutes": round(idle.total_seconds() / 60, 1),
        "threshold_minutes": round(params.abandon_after.total_seconds() / 60, 1),
    })  # fmt: skip


def last_activity(turns: Sequence[Turn], events: Sequence[Event]) -> datetime | None:
    """When the session last saw a message or an event (for the abandon sweep)."""
    times = [t.end_time for t in turns] + [e.created_at for e in events]
    return max(times) if times else None
