"""Security headers and cookies on every kind of response."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/login/", "/api/v1/docs/", "/healthz", "/api/v1/traces"])
def test_every_response_carries_the_security_headers(path):
    response = Client().get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_have_no_inline_script(world):
    """The policy allows only our own script files; an inline block would be refused by the browser."""
    client = Client()
    client.force_login(world.owner)
    for path in ("/api/v1/docs/", f"/p/{world.project.slug}/traces", f"/p/{world.project.slug}/settings"):
        html = client.get(path).content.decode()
        inline = [tag for tag in re.findall(r"<script\b[^>]*>", html) if "src=" not in tag]
        assert inline == [], (path, inline)
        assert not re.search(r'\son[a-z]+="', html), path  # no inline event handlers either


def test_session_cookie_is_httponly_and_samesite(world):
    client = Client()
    response = client.post("/login/", {"username": "owner", "password": "pw-owner"})
    assert response.status_code == 302, "the conftest password changed?"
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


def test_api_docs_render_for_a_request_with_a_secret_key(world):
    """Found by the route walk: the page's navigation asked the database for the projects of
    DRF's ApiKeyUser and answered 500."""
    response = Client().get("/api/v1/docs/", HTTP_AUTHORIZATION=f"Bearer {world.key.secret_key}")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
