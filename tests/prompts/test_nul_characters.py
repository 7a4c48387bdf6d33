"""PostgreSQL text and jsonb cannot hold NUL (\\u0000): a prompt version carrying one is a
400 naming the field (hypothesis found a 500 in tests/config/test_api_properties.py)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("body, field", [
    ({"template": "Hello\u0000 {{name}}"}, "template"),
    ({"template": [{"role": "system", "content": "a\u0000b"}], "type": "chat"}, "template"),
    ({"template": "Hi", "config": {"model": "x\u0000"}}, "config"),
    ({"template": "Hi", "commit_message": "fix\u0000"}, "commit_message"),
])
def test_nul_in_a_prompt_version_is_a_400_naming_the_field(world, api, body, field):
    response = api.post("/api/v1/prompts/greeting/versions", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["message"].startswith(field)
