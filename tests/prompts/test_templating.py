from __future__ import annotations

import pytest

from config.errors import ValidationFailed
from prompts.templating import template_as_text, template_render, template_validate


def test_variables_are_detected_in_first_seen_order_without_duplicates():
    assert template_validate("Hi {{name}}, about {{ topic }}: {{name}}", "text") == ["name", "topic"]


def test_chat_variables_are_collected_across_messages():
    template = [
        {"role": "system", "content": "You help {{company}} customers."},
        {"role": "user", "content": "{{question}} ({{company}})"},
    ]
    assert template_validate(template, "chat") == ["company", "question"]


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("Hello {{name", "'{{' at line 1, column 7 is never closed"),
        ("a\nb {{x {{y}}", "'{{' at line 2, column 3 is never closed"),
        ("Hello {{}}", "invalid variable name '(empty)'"),
        ("Hello {{ 9lives }}", "invalid variable name '9lives'"),
    ],
)
def test_malformed_placeholders_are_refused_with_their_position(template, fragment):
    with pytest.raises(ValidationFailed) as err:
        template_validate(template, "text")
    assert fragment in err.value.message
    assert err.value.code == "bad_template"


def test_a_lone_closing_brace_pair_is_literal_so_json_examples_stay_legal():
    assert template_validate('Reply as {"a": {"b": 1}} for {{user}}', "text") == ["user"]


def test_chat_message_errors_name_the_message():
    with pytest.raises(ValidationFailed, match=r"message 1 \(user\): '\{\{' at line 1"):
        template_validate([{"role": "system", "content": "ok"}, {"role": "user", "content": "{{q"}], "chat")
    with pytest.raises(ValidationFailed, match="message 0: role 'robot'"):
        template_validate([{"role": "robot", "content": "x"}], "chat")


def test_type_mismatch_is_refused():
    with pytest.raises(ValidationFailed, match="must be a string"):
        template_validate([{"role": "user", "content": "x"}], "text")
    with pytest.raises(ValidationFailed, match="non-empty list"):
        template_validate("text", "chat")


def test_render_fills_values_once_and_names_missing_variables():
    assert template_render("{{a}} and {{ b }}", {"a": "{{b}}", "b": 2}) == "{{b}} and 2"
    with pytest.raises(ValidationFailed, match="Missing value for variables a, c"):
        template_render("{{a}} {{b}} {{c}}", {"b": 1})


def test_chat_renders_to_messages_and_to_diffable_text():
    template = [{"role": "system", "content": "Be {{tone}}."}, {"role": "user", "content": "Hi"}]
    assert template_render(template, {"tone": "brief"}) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert template_as_text(template) == "[system]\nBe {{tone}}.\n\n[user]\nHi"
