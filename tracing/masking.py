"""PII masking at ingest: replace secrets in span and log text before anything is stored.

A project turns on detectors (emails, phone numbers, card numbers, IBANs, API keys) and
adds its own regular expressions. The masker runs on the decoded OTLP data, the one
place every stored text comes from: spans' attributes, events, names and resources,
and log records. Inputs, outputs, messages, documents, trace summaries, embeddings'
source text and evaluator evidence are all derived from those values afterwards, so
none of them can hold the raw secret.

Card numbers and IBANs are confirmed by their checksums (Luhn, ISO 7064 mod 97), so an
order number of sixteen digits is not masked while a real card number is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tracing.otlp.types import RawLogRecord, RawSpan

# Custom patterns are compiled from user input: bound them so one cannot be a novel.
MAX_CUSTOM_PATTERNS = 20
MAX_PATTERN_LENGTH = 500


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_ok(match: re.Match) -> bool:
    digits = re.sub(r"[ -]", "", match.group(0))
    return 13 <= len(digits) <= 19 and _luhn_ok(digits)


def _iban_ok(match: re.Match) -> bool:
    compact = re.sub(r"\s", "", match.group(0)).upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


@dataclass(frozen=True)
class Detector:
    kind: str
    label: str  # what the settings page calls it
    pattern: re.Pattern
    confirm: Callable[[re.Match], bool] | None = None

    @property
    def placeholder(self) -> str:
        return f"[{self.kind.upper()}]"


# Order matters: a card number inside an IBAN-looking run is checked as an IBAN first,
# and API keys go before phone numbers, whose digit runs they may contain.
DETECTORS: tuple[Detector, ...] = (
    Detector("email", "Email addresses",
             re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")),
    Detector("api_key", "API keys and tokens (sk-…, AKIA…, ghp_…, xox…-, AIza…, Bearer …)",
             re.compile(
                 r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"
                 r"|\bAKIA[0-9A-Z]{16}\b"
                 r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
                 r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"
                 r"|\bAIza[0-9A-Za-z_-]{35}"
                 r"|(?<=Bearer )[A-Za-z0-9._~+/-]{20,}=*"
             )),
    Detector("iban", "IBANs (checksum verified)",
             re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"), _iban_ok),
    Detector("card", "Payment card numbers (Luhn verified)",
             re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), _card_ok),
    # International (+…), North American (555) 123-4567 / 555-123-4567, and national
    # numbers with a trunk 0 (not inside a longer run of digit groups); dates and plain
    # counts have none of these shapes.
    Detector("phone", "Phone numbers",
             re.compile(
                 r"(?<![\w+])\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}(?!\w)"
                 r"|(?<![\w(])(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\w)"
                 r"|(?<![\w.])(?<!\d[ .-])0\d{2,4}[ /.-]?\d{3,4}[ .-]?\d{3,4}(?![\w.]|[ .-]\d)"
             ), lambda m: 8 <= sum(c.isdigit() for c in m.group(0)) <= 15),
)
DETECTOR_KINDS = tuple(d.kind for d in DETECTORS)
_BY_KIND = {d.kind: d for d in DETECTORS}


class PatternError(ValueError):
    """A custom pattern that cannot be used; the message says why."""


def custom_pattern_check(name: str, pattern: str) -> re.Pattern:
    """Compile one custom rule or raise PatternError naming what is wrong."""
    if not re.fullmatch(r"[A-Za-z0-9_]{1,40}", name or ""):
        raise PatternError(f"rule name {name!r}: use 1 to 40 letters, digits or underscores")
    if not pattern or len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"rule {name}: the pattern must have 1 to {MAX_PATTERN_LENGTH} characters")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise PatternError(f"rule {name}: not a valid regular expression ({exc})") from None
    if compiled.search(""):
        raise PatternError(f"rule {name}: the pattern matches empty text, so it would mask nothing useful")
    return compiled


class Masker:
    """The compiled rules of one project; `text` masks a string, `value` any decoded value."""

    def __init__(self, kinds: Iterable[str], custom: Iterable[dict[str, str]] = ()) -> None:
        chosen = set(kinds)
        self.rules: list[tuple[re.Pattern, str, Callable[[re.Match], bool] | None]] = [
            (d.pattern, d.placeholder, d.confirm) for d in DETECTORS if d.kind in chosen
        ]
        for rule in custom:
            compiled = custom_pattern_check(rule["name"], rule["pattern"])
            self.rules.append((compiled, f"[{rule['name'].upper()}]", None))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def text(self, text: str) -> str:
        for pattern, placeholder, confirm in self.rules:
            if confirm is None:
                text = pattern.sub(placeholder, text)
            else:
                text = pattern.sub(lambda m, p=placeholder, c=confirm: p if c(m) else m.group(0), text)
        return text

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value

    def span(self, raw: RawSpan) -> None:
        raw.name = self.text(raw.name)
        if raw.status_message:
            raw.status_message = self.text(raw.status_message)
        raw.attributes = self.value(raw.attributes)
        raw.resource = self.value(raw.resource)
        for event in raw.events:
            event.name = self.text(event.name)
            event.attributes = self.value(event.attributes)

    def log_record(self, record: RawLogRecord) -> None:
        record.body = self.value(record.body)
        record.attributes = self.value(record.attributes)
        record.resource = self.value(record.resource)


def detector_label(kind: str) -> str:
    return _BY_KIND[kind].label


# Compiled rules per project, rebuilt when the settings row changes (its updated_at).
_compiled: dict[int, tuple[Any, Masker]] = {}


def project_masker(project_id: int) -> Masker | None:
    """The masker for a project's next batch, or None when it masks nothing.

    One small indexed read per batch keeps every ingest process current within a batch of
    a settings change, without a cache to invalidate across processes."""
    from tracing.models import MaskingSettings

    row = MaskingSettings.objects.filter(project_id=project_id).values_list("updated_at", "kinds", "custom").first()
    if row is None:
        return None
    updated_at, kinds, custom = row
    cached = _compiled.get(project_id)
    if cached is None or cached[0] != updated_at:
        cached = (updated_at, Masker(kinds, custom))
        _compiled[project_id] = cached
    return cached[1] or None
