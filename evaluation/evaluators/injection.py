"""Prompt-injection / jailbreak heuristics on the user's input.

Each rule is a pattern with a weight (how sure a match alone makes us); the score is
1 − Π(1 − weight) over the rules that matched, so several weak signals add up while
one strong one is enough. Rules cover English plus the languages our users write in
most (es, fr, de, pt, it, ru, zh, ja), because attackers switch language precisely to
dodge English-only filters. Base64/hex payloads are decoded and scanned again.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

VERSION = "injection-1"


@dataclass(frozen=True)
class Rule:
    id: str
    weight: float
    pattern: re.Pattern


def _rx(text: str) -> re.Pattern:
    return re.compile(text, re.IGNORECASE | re.UNICODE)


_PREV = r"(?:previous|prior|above|earlier|preceding|all|any|your|the|system)"
# Not "message": "ignore my typo in the previous message" is an apology, not an attack.
_INSTR = r"(?:instructions?|prompts?|rules|directions|guidelines|constraints)"

RULES: tuple[Rule, ...] = (
    Rule("ignore_instructions", 0.85, _rx(
        rf"\b(?:ignore|disregard|forget|skip|override|bypass|drop)\b(?:\W+\w+){{0,3}}?\W+{_PREV}\W+(?:\w+\W+){{0,2}}{_INSTR}"
    )),
    Rule("ignore_instructions_multilingual", 0.85, _rx(
        r"ignora\w*\s+(?:\w+\s+){0,3}instrucci|olvida\w*\s+(?:\w+\s+){0,3}instrucci"  # es
        r"|ignore[zr]\s+(?:\w+\s+){0,3}(?:instructions|consignes)"  # fr
        r"|oublie[zr]?\s+(?:\w+\s+){0,3}(?:instructions|consignes)"
        r"|ignorier\w*\s+(?:\w+\s+){0,3}(?:anweisungen|instruktionen|vorgaben)"  # de
        r"|vergiss\w*\s+(?:\w+\s+){0,3}anweisungen"
        r"|ignor[ae]\w*\s+(?:\w+\s+){0,3}(?:instruç|istruzion)|esque[cç]a\s+(?:\w+\s+){0,3}instruç"  # pt, it
        r"|игнорир\w*\s+(?:\w+\s+){0,3}(?:инструкц|указани)|забудь\s+(?:\w+\s+){0,3}(?:инструкц|указани)"  # ru
        r"|忽略.{0,8}(?:指令|指示|说明|提示)|无视.{0,8}(?:指令|指示|规则)"  # zh
        r"|(?:以前|前|上記)の.{0,6}(?:指示|命令).{0,6}(?:無視|忘れ)"  # ja
    )),
    Rule("system_prompt_exfiltration", 0.8, _rx(
        r"\b(?:reveal|show|print|repeat|output|display|tell me|give me|leak|dump"
        r"|what (?:is|are|was|were))\b"
        r"(?:\W+\w+){0,4}?\W+(?:system|initial|original|hidden|secret|developer)\W+(?:prompt|instructions?|message|rules)"
        r"|\brepeat\b(?:\W+\w+){0,4}\W+(?:words|text)\W+above"
        r"|(?:muestra|revela|révèle|affiche|zeige|mostra)\w*\s+(?:\w+\s+){0,3}"
        r"(?:prompt|instrucciones|instructions|anweisungen)\s+(?:del\s+)?(?:sistema|système|system)"
        r"|(?:系统提示|系统指令|システムプロンプト)"
    )),
    Rule("role_play_jailbreak", 0.75, _rx(
        r"\b(?:DAN|do anything now|developer mode|jailbreak(?:ed)?|evil ?bot|AIM mode|god mode|unfiltered mode)\b"
        r"|\b(?:pretend|act|behave|roleplay|role-play)\b(?:\W+\w+){0,3}\W+(?:as|like|you are)\b(?:\W+\w+){0,5}\W+"
        r"(?:no|without|free of|free from)\W+(?:\w+\W+){0,2}"
        r"(?:restrictions|rules|filters|limits|guidelines|ethics|morals)"
        r"|\byou are no longer\b|\bfrom now on,? you (?:are|will)\b"
        r"|\b(?:no|without) (?:ethical|moral|content) (?:restrictions|guidelines|filters)\b"
        r"|\bstay in character\b"
    )),
    Rule("new_instructions", 0.5, _rx(
        r"\b(?:new|updated|real|actual|true) (?:instructions?|system prompt|task)\s*:"
        r"|^\s*(?:system|assistant)\s*:|<\|?(?:im_start|system|endoftext)\|?>"
        r"|\[/?(?:INST|SYS)\]|###\s*(?:system|instruction)"
    )),
    Rule("safety_bypass", 0.45, _rx(
        r"\b(?:bypass|disable|turn off|remove|circumvent)\b(?:\W+\w+){0,3}\W+"
        r"(?:safety|content|moderation|guard ?rails?|filters?|censorship)"
    )),
    Rule("hidden_characters", 0.35, re.compile("[\u200b-\u200f\u2060-\u2064\ufeff]|[\U000e0000-\U000e007f]")),
)

_B64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}){16,}\b")
ENCODED_WEIGHT = 0.3  # an encoded blob alone is only suspicious; what it says decides


def _decode_payloads(text: str) -> list[tuple[int, int, str]]:
    """(start, end, decoded text) for each base64/hex run that decodes to readable text."""
    out = []
    for rx, decode in ((_B64, base64.b64decode), (_HEX, bytes.fromhex)):
        for m in rx.finditer(text):
            raw = m.group()
            try:
                data = decode(raw + "=" * (-len(raw) % 4) if decode is base64.b64decode else raw)
                decoded = data.decode("utf-8")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                continue
            printable = sum(ch.isprintable() or ch.isspace() for ch in decoded)
            if decoded and printable / len(decoded) > 0.95 and re.search(r"[A-Za-z]{3,}\s+[A-Za-z]{2,}", decoded):
                out.append((m.start(), m.end(), decoded))
    return out


def _match_rules(text: str, offset: int = 0, *, encoded: bool = False) -> list[dict[str, Any]]:
    hits = []
    for rule in RULES:
        m = rule.pattern.search(text)
        if m:
            hits.append({
                "rule": rule.id + (" (encoded)" if encoded else ""),
                "weight": rule.weight,
                "start": offset + (0 if encoded else m.start()),
                "end": offset + (0 if encoded else m.end()),
                "excerpt": m.group()[:120],
            })
    return hits


def injection_score(text: str) -> tuple[float, list[dict[str, Any]]]:
    """Score in [0, 1] that `text` tries to override the model's instructions, and why."""
    if not text or not text.strip():
        return 0.0, []
    # NFKC folds full-width and other look-alike characters used to slip past patterns.
    normalized = unicodedata.normalize("NFKC", text)
    hits = _match_rules(normalized)
    for start, end, decoded in _decode_payloads(normalized):
        inner = _match_rules(decoded, start, encoded=True)
        for hit in inner:
            hit["end"] = end
        hits.extend(inner)
        hits.append({"rule": "encoded_payload", "weight": ENCODED_WEIGHT, "start": start, "end": end,
                     "excerpt": decoded[:120]})
    remaining = 1.0
    for hit in hits:
        remaining *= 1.0 - hit["weight"]
    return round(1.0 - remaining, 4), hits
