"""The API docs page renders under the Content-Security-Policy (no inline script)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.django_db(transaction=True)


def test_swagger_ui_renders_the_schema(page):
    page.goto("/api/v1/docs/")
    expect(page.locator(".swagger-ui .title")).to_contain_text("Spyglass API", timeout=30_000)
    expect(page.locator(".opblock-tag").first).to_be_visible()
