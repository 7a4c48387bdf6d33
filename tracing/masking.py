"""PII masking at ingest: replace secrets in span and log text before anything is stored.

A project turns on detectors (emails, phone numbers, card numbers, IBANs, API keys) and
adds its own regular expressions. The masker runs on the decoded OTLP data, the one
place every stored text comes from: spans' attributes, events, names and resources,
and log records. Inputs, outputs, messages, documents, trace summaries, embeddings'
source text and evaluator evidence are all derived from those values afterwards, so
none of them can hold the raw secret.

Card numbers and IBANs are confirmed by their checksums (Luhn, ISO 7064 mod 97), so an
order number of sixteen digits is not masked while a real card number is.

Custom patterns come from project admins and run on every ingested string, so they are
compiled by RE2 (google-re2), whose matching time is linear in the text: no pattern,
however written, can backtrack catastrophically and stall ingest. The price is RE2's
syntax, a safe subset of Python's: no backreferences and no lookaround; such a pattern
is refused with RE2's reason. Our own detectors use Python's `re` (they need lookbehind)
and are written without nested quantifiers.

A project that never saved its settings masks DEFAULT_KINDS (README, "Privacy").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import re2

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
    # A necessary condition for any match, checked first: most strings (JSON, ids, prose
    # without contacts) fail it in C-speed code and skip the costlier pattern entirely.
    gate: Callable[[str], bool] | None = None

    @property
    def placeholder(self) -> str:
        return f"[{self.kind.upper()}]"


_API_KEY_HINTS = ("sk-", "pk-", "rk-", "AKIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox", "AIza", "Bearer ")


def _digit_count(text: str) -> int:
    return sum(map(text.count, "0123456789"))


# Order matters: a card number inside an IBAN-looking run is checked as an IBAN first,
# and API keys go before phone numbers, whose digit runs they may contain.
DETECTORS: tuple[Detector, ...] = (
    Detector("email", "Email addresses",
             re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
             gate=lambda text: "@" in text),
    Detector("api_key", "API keys and tokens (sk-…, AKIA…, ghp_…, xox…-, AIza…, Bearer …)",
             re.compile(
                 r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"
                 r"|\bAKIA[0-9A-Z]{16}\b"
                 r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
                 r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"
                 r"|\bAIza[0-9A-Za-z_-]{35}"
                 r"|(?<=Bearer )[A-Za-z0-9._~+/-]{20,}=*"
             ), gate=lambda text: any(hint in text for hint in _API_KEY_HINTS)),
    Detector("iban", "IBANs (checksum verified)",
             re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"), _iban_ok),
    Detector("card", "Payment card numbers (Luhn verified)",
             re.compile(r"\d(?<![\d-]\d)(?:[ -]?\d){12,18}(?![\d-])"), _card_ok,
             gate=lambda text: _digit_count(text) >= 13),
    # International (+…), North American (555) 123-4567 / 555-123-4567, and national
    # numbers with a trunk 0 (not inside a longer run of digit groups); dates and plain
    # counts have none of these shapes.
    Detector("phone", "Phone numbers",
             re.compile(
                 r"\+(?<![\w+]\+)\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}(?!\w)"
                 r"|(?:\((?<![\w(]\()\d{3}\) ?|\d(?<![\w(]\d)\d{2}[ .-])\d{3}[ .-]\d{4}(?!\w)"
                 r"|0(?<![\w.]0)(?<!\d[ .-]0)\d{2,4}[ /.-]?\d{3,4}[ .-]?\d{3,4}(?![\w.]|[ .-]\d)"
             ), lambda m: 8 <= sum(c.isdigit() for c in m.group(0)) <= 15,
             gate=lambda text: _digit_count(text) >= 8),
)
DETECTOR_KINDS = tuple(d.kind for d in DETECTORS)
# Credentials and payment data by default: they never help to debug an LLM app, storing
# them puts the trace store in scope of PCI DSS and turns a leak of it into a breach of
# other systems, and their detectors are precise (fixed prefixes, checksums). Emails and
# phone numbers are often what a support conversation is about, and the phone detector
# is a heuristic, so a project opts into those.
DEFAULT_KINDS = ("api_key", "iban", "card")
_BY_KIND = {d.kind: d for d in DETECTORS}


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is the admin's form error, not a server log line
_RE2_OPTIONS.max_mem = 8 << 20  # bounds the compiled program; a pattern over it is refused


class PatternError(ValueError):
    """A custom pattern that cannot be used; the message says why."""


def custom_pattern_check(name: str, pattern: str) -> Any:
    """Compile one custom rule or raise PatternError naming what is wrong."""
    if not re.fullmatch(r"[A-Za-z0-9_]{1,40}", name or ""):
        raise PatternError(f"rule name {name!r}: use 1 to 40 letters, digits or underscores")
    if not pattern or len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"rule {name}: the pattern must have 1 to {MAX_PATTERN_LENGTH} characters")
    try:
        compiled = re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        hint = ("; RE2 has no backreferences or lookaround"
                if "escape" in reason or "perl operator" in reason else "")
        raise PatternError(f"rule {name}: not a valid regular expression ({reason}{hint})") from None
    if compiled.search(""):
        raise PatternError(f"rule {name}: the pattern matches empty text, so it would mask nothing useful")
    return compiled


class Masker:
    """The compiled rules of one project; `text` masks a string, `value` any decoded value."""

    def __init__(self, kinds: Iterable[str], custom: Iterable[dict[str, str]] = ()) -> None:
        chosen = set(kinds)
        self.rules: list[tuple[Any, str, Callable[[Any], bool] | None, Callable[[str], bool] | None]] = [
            (d.pattern, d.placeholder, d.confirm, d.gate) for d in DETECTORS if d.kind in chosen
        ]
        for rule in custom:
            compiled = custom_pattern_check(rule["name"], rule["pattern"])
            self.rules.append((compiled, f"[{rule['name'].upper()}]", None, None))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def text(self, text: str) -> str:
        for pattern, placeholder, confirm, gate in self.rules:
            if gate is not None and not gate(text):
                continue
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
    a settings change, without a cache to invalidate across processes. No row: the
    defaults."""
    from tracing.models import MaskingSettings

    row = MaskingSettings.objects.filter(project_id=project_id).values_list("updated_at", "kinds", "custom").first()
    updated_at, kinds, custom = row if row is not None else (None, DEFAULT_KINDS, [])
    cached = _compiled.get(project_id)
    if cached is None or cached[0] != updated_at:
        cached = (updated_at, Masker(kinds, custom))
        _compiled[project_id] = cached
    return cached[1] or None
