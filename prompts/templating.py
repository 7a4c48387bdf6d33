"""`{{variable}}` templates: validation, variable detection and rendering.

Pure functions shared by services (validation on write), views (the preview) and
selectors. The SDK carries its own copy of the same rules (sdk/src/spyglass/_prompts.py);
the server is the one that refuses bad templates, so the SDK never sees one.

Rules: a placeholder is `{{ name }}` with name = letter or underscore, then letters,
digits, underscores, dots or dashes. Every `{{` must close with `}}` before the next
`{{`. A lone `}}` is literal text, so JSON examples inside a prompt (`{"a": {"b": 1}}`)
stay legal.
"""

from __future__ import annotations

import re
from typing import Any

from config.errors import ValidationFailed

VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_TEMPLATE_CHARS = 200_000


def _where(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"


def _tokens(text: str, context: str) -> list[tuple[bool, str]]:
    """Split text into (is_variable, value) pieces, raising on malformed placeholders."""
    pieces: list[tuple[bool, str]] = []
    position = 0
    while True:
        start = text.find("{{", position)
        if start == -1:
            pieces.append((False, text[position:]))
            return pieces
        end = text.find("}}", start + 2)
        reopen = text.find("{{", start + 2)
        if end == -1 or (reopen != -1 and reopen < end):
            raise ValidationFailed(
                f"{context}: '{{{{' at {_where(text, start)} is never closed with '}}}}'.",
                code="bad_template",
            )
        name = text[start + 2 : end].strip()
        if not VARIABLE_NAME.match(name):
            shown = name if name else "(empty)"
            raise ValidationFailed(
                f"{context}: placeholder at {_where(text, start)} has an invalid variable name "
                f"{shown!r}; use letters, digits, '_', '.', '-' (starting with a letter or '_').",
                code="bad_template",
            )
        pieces.append((False, text[position:start]))
        pieces.append((True, name))
        position = end + 2


def template_validate(template: Any, prompt_type: str) -> list[str]:
    """Check a template against its prompt type; return its variables in first-seen order."""
    if prompt_type == "text":
        if not isinstance(template, str):
            raise ValidationFailed("A text prompt's template must be a string.", code="bad_template")
        if not template.strip():
            raise ValidationFailed("The template is empty.", code="bad_template")
        if len(template) > MAX_TEMPLATE_CHARS:
            raise ValidationFailed(f"The template is longer than {MAX_TEMPLATE_CHARS} characters.")
        return _unique(name for is_var, name in _tokens(template, "template") if is_var)
    if prompt_type != "chat":
        raise ValidationFailed(f"Unknown prompt type {prompt_type!r}; use 'text' or 'chat'.")
    if not isinstance(template, list) or not template:
        raise ValidationFailed(
            'A chat prompt\'s template must be a non-empty list of {"role", "content"} messages.',
            code="bad_template",
        )
    names: list[str] = []
    total = 0
    for index, message in enumerate(template):
        where = f"message {index}"
        if not isinstance(message, dict):
            raise ValidationFailed(f'{where}: must be an object {{"role", "content"}}.', code="bad_template")
        unknown = set(message) - {"role", "content", "name"}
        if unknown:
            raise ValidationFailed(f"{where}: unknown keys {sorted(unknown)}.", code="bad_template")
        role, content = message.get("role"), message.get("content")
        if role not in CHAT_ROLES:
            raise ValidationFailed(
                f"{where}: role {role!r} is not one of {', '.join(CHAT_ROLES)}.", code="bad_template"
            )
        if not isinstance(content, str):
            raise ValidationFailed(f"{where} ({role}): content must be a string.", code="bad_template")
        total += len(content)
        names.extend(name for is_var, name in _tokens(content, f"{where} ({role})") if is_var)
    if total > MAX_TEMPLATE_CHARS:
        raise ValidationFailed(f"The messages are longer than {MAX_TEMPLATE_CHARS} characters in total.")
    return _unique(names)


def _unique(names: Any) -> list[str]:
    return list(dict.fromkeys(names))


def _render_text(text: str, values: dict[str, Any], context: str) -> str:
    out = []
    for is_var, piece in _tokens(text, context):
        out.append(str(values[piece]) if is_var else piece)
    return "".join(out)


def template_render(template: Any, values: dict[str, Any]) -> str | list[dict[str, str]]:
    """Fill every placeholder; a missing value raises ValidationFailed naming it.

    Values are inserted verbatim (no re-expansion), so a value containing "{{x}}" stays
    literal text instead of becoming a placeholder.
    """
    prompt_type = "text" if isinstance(template, str) else "chat"
    needed = template_validate(template, prompt_type)
    missing = [name for name in needed if name not in values]
    if missing:
        raise ValidationFailed(
            f"Missing value for variable{'s' if len(missing) > 1 else ''} {', '.join(missing)}.",
            code="missing_variable",
            detail={"missing": missing},
        )
    if isinstance(template, str):
        return _render_text(template, values, "template")
    return [
        {**message, "content": _render_text(message["content"], values, f"message {i}")}
        for i, message in enumerate(template)
    ]


def template_as_text(template: Any) -> str:
    """A readable plain-text form (used for diffs): chat messages as '[role]' blocks."""
    if isinstance(template, str):
        return template
    blocks = []
    for message in template or ():
        blocks.append(f"[{message.get('role')}]\n{message.get('content', '')}")
    return "\n\n".join(blocks)
