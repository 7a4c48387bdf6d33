"""Property tests of the prompt template compiler (prompts/templating.py): for any
input, validation returns the variables or raises ValidationFailed with a message
(a 400 naming what is wrong), and rendering is exact and never re-expands values."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.errors import ValidationFailed
from prompts.templating import CHAT_ROLES, template_as_text, template_render, template_validate

PROPS = settings(max_examples=150, deadline=None)
# Text made mostly of the characters that matter to the parser.
tricky_text = st.lists(st.sampled_from([*"{} ab_.-1\n\té", "{{", "}}", "{{x}}", "{{ y.z }}"]),
                       max_size=20).map("".join)
any_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), tricky_text),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["role", "content", "name", "x"]),
                                                                inner, max_size=3),
    max_leaves=8,
)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,10}", fullmatch=True)
literals = st.text(st.characters(exclude_characters="{}", exclude_categories=("Cs",)), max_size=12)


def _validate(template, prompt_type):
    try:
        return template_validate(template, prompt_type)
    except ValidationFailed as exc:
        assert exc.status == 400 and exc.message.strip()
        return None


@PROPS
@given(tricky_text)
def test_any_text_is_a_template_or_a_message_saying_where(text):
    variables = _validate(text, "text")
    if variables is None:
        return
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", name) for name in variables)
    assert len(set(variables)) == len(variables)
    rendered = template_render(text, {name: "" for name in variables})
    assert isinstance(rendered, str)


@PROPS
@given(any_json, st.sampled_from(["text", "chat", "other"]))
def test_any_json_value_is_a_template_or_a_message(template, prompt_type):
    variables = _validate(template, prompt_type)
    if variables is not None:
        template_render(template, {name: 1 for name in variables})
        template_as_text(template)


@PROPS
@given(st.lists(st.tuples(literals, names), max_size=6), literals,
       st.dictionaries(names, st.text(max_size=10) | st.just("{{x}}"), max_size=4))
def test_rendering_fills_each_placeholder_once_and_never_re_expands(pieces, tail, extra):
    template = "".join(f"{text}{{{{ {name} }}}}" for text, name in pieces) + tail
    if not template.strip():
        return
    expected_names = list(dict.fromkeys(name for _, name in pieces))
    assert template_validate(template, "text") == expected_names
    values = {**extra, **{name: f"<{{{{{name}}}}}>" for name in expected_names}}  # values that look like templates
    rendered = template_render(template, values)
    assert rendered == "".join(f"{text}{values[name]}" for text, name in pieces) + tail
    missing = expected_names[:1]
    if missing:
        with pytest.raises(ValidationFailed, match=re.escape(missing[0])):
            template_render(template, {k: v for k, v in values.items() if k not in missing})


@PROPS
@given(st.lists(st.fixed_dictionaries({"role": st.sampled_from(CHAT_ROLES), "content": tricky_text}),
                min_size=1, max_size=4))
def test_chat_templates_render_message_by_message(messages):
    variables = _validate(messages, "chat")
    if variables is None:
        return
    rendered = template_render(messages, {name: "V" for name in variables})
    assert [m["role"] for m in rendered] == [m["role"] for m in messages]
