"""PII detection: which kinds of personal data or secrets a text contains, and where.

Regexes find candidates; checksums (Luhn for cards, mod-97 for IBANs) and entropy
reject look-alikes, so an order number is not reported as a card. Evidence carries
the kind, offsets and a masked form only — the matched value is never stored, or the
scores table would itself become a PII store.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

VERSION = "pii-1"

KINDS = ("email", "phone", "credit_card", "iban", "api_key", "us_ssn", "uk_nino")


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int
    masked: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": self.start, "end": self.end, "masked": self.masked}


_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})*\.[^\W\d_]{2,24}\b", re.UNICODE)
# 13–19 digits, optionally grouped by single spaces or dashes.
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_SSN = re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
_NINO = re.compile(r"\b(?![DFIQUV])[A-Z](?![DFIOQUV])[A-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
# International (+CC ...) or grouped national numbers; digits are counted afterwards.
_PHONE = re.compile(
    r"(?<![\w+])\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{1,4}){1,6}(?![\w-])"
    # Without a country code, single-digit groups are too often just lists of numbers.
    r"|(?<![\w+])(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![\w-])"
    r"|(?<![\w+])\+\d{8,14}(?!\w)"
)
_KEY_PREFIXED = re.compile(
    r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"
    r"|(?:AKIA|ASIA)[A-Z0-9]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{36,}"
    r"|github_pat_[A-Za-z0-9_]{40,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,})"
)
# Long opaque tokens: reported only when their entropy says "random", not "word".
_TOKEN = re.compile(r"(?<![\w/+=-])[A-Za-z0-9_+/=-]{32,}(?![\w/+=-])")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _iban_ok(raw: str) -> bool:
    iban = raw.replace(" ", "")
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    numeric = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(numeric) % 97 == 1


def _entropy(token: str) -> float:
    counts = Counter(token)
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _looks_random(token: str) -> bool:
    # Random base64/hex keys have ~4–6 bits per char and mix letters with digits;
    # identifiers like "very_long_function_name_here" do not.
    has_digit = any(ch.isdigit() for ch in token)
    has_alpha = any(ch.isalpha() for ch in token)
    return has_digit and has_alpha and _entropy(token) >= 4.0


def mask(value: str, kind: str) -> str:
    """A form that shows what was found without revealing it."""
    if kind == "email":
        local, _, domain = value.partition("@")
        return f"{local[:1]}•••@{domain[:1]}•••"
    if kind in ("credit_card", "iban", "phone", "us_ssn", "uk_nino"):
        tail = re.sub(r"\W", "", value)[-2:] if kind != "credit_card" else re.sub(r"\D", "", value)[-4:]
        return "•••" + tail
    return value[:4] + "•••"  # api keys: the prefix names the provider, nothing more


def pii_find(text: str, *, kinds: tuple[str, ...] = KINDS) -> list[Finding]:
    """All PII findings in `text`, in order, without overlaps (checked kinds win)."""
    if not text:
        return []
    found: list[Finding] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    def add(kind: str, m: re.Match) -> None:
        if kind in kinds and free(m.start(), m.end()):
            found.append(Finding(kind, m.start(), m.end(), mask(m.group(), kind)))
            taken.append((m.start(), m.end()))

    # Most specific first: a checksum-valid card must not also count as a phone.
    for m in _KEY_PREFIXED.finditer(text):
        add("api_key", m)
    for m in _EMAIL.finditer(text):
        add("email", m)
    for m in _IBAN.finditer(text):
        if _iban_ok(m.group()):
            add("iban", m)
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and _luhn_ok(digits) and len(set(digits)) > 1:
            add("credit_card", m)
    for m in _SSN.finditer(text):
        add("us_ssn", m)
    for m in _NINO.finditer(text):
        add("uk_nino", m)
    for m in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        # Dates ("2024-01-15") and versions have separators too; require phone length
        # and either a leading + or a separator pattern of a dialable number.
        if 9 <= len(digits) <= 15 and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", m.group()):
            add("phone", m)
    for m in _TOKEN.finditer(text):
        if _looks_random(m.group()):
            add("api_key", m)
    return sorted(found, key=lambda f: f.start)


def pii_summary(findings: list[Finding]) -> dict[str, Any]:
    """Evidence for a score: kinds with counts and every finding's offsets (masked)."""
    return {
        "kinds": dict(sorted(Counter(f.kind for f in findings).items())),
        "findings": [f.as_dict() for f in findings[:50]],
        "version": VERSION,
    }
