"""Full-text search over a trace's input and output (the `q` filter, text mode)."""

from __future__ import annotations

import re

from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

# Scripts written without spaces between words. The 'simple' text-search parser turns a
# run of them into one lexeme ("東京の天気は晴れです" is a single token), so a word inside
# can't be found through the tsvector; for queries in these scripts we match substrings.
_UNSPACED_SCRIPT = re.compile(
    "[\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs
    "\uac00-\ud7af"  # Hangul (particles attach to words, so prefixes miss)
    "\uff66-\uff9f]"  # half-width Katakana
)


# What the 'simple' parser treats as word characters, near enough: letters and digits
# of any script. The underscore splits words there too.
_WORD = re.compile(r"[^\W_]+")


SEARCH_MAX_WORDS = 16


# The indexed document (migration 0004): keep these two in step.
SEARCH_DOCUMENT = 'tracing_search_document("tracing_trace"."input", "tracing_trace"."output")'


def search_mode(text: str) -> str:
    """'words' (indexed full-text search) or 'substring' (scan) for a search text."""
    return "substring" if _UNSPACED_SCRIPT.search(text) else "words"


def search_condition(text: str) -> Q | RawSQL:
    """A filter for traces whose input or output contains `text`.

    Words mode: every word must occur as a word prefix ("refund" finds "refunds"), in
    any order, case-insensitively, through the GIN index trace_search_gin. No stemming,
    so the result does not depend on guessing the language of each trace.
    Substring mode (scripts without spaces): case-insensitive substring of the input or
    output. Unindexed, but the list walks traces newest first and stops at one page of
    matches, so frequent terms are fast; a rare term within a wide time range scans it.
    """
    text = text.strip()
    if search_mode(text) == "substring":
        return Q(input__icontains=text) | Q(output__icontains=text)
    words = _WORD.findall(text)[:SEARCH_MAX_WORDS]
    if not words:
        # Only punctuation: nothing can match a word search; fall back to the substring.
        return Q(input__icontains=text) | Q(output__icontains=text)
    # Words contain only letters/digits, so quoting them cannot break the tsquery syntax.
    query = " & ".join(f"'{word}':*" for word in words)
    return RawSQL(
        f"{SEARCH_DOCUMENT} @@ to_tsquery('simple'::regconfig, %s)", (query,), output_field=BooleanField()
    )
