"""CSRF: every form and every session-authenticated API write refuses a POST (or DELETE)
without the token (403) and changes nothing; every <form method="post"> in the templates carries one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction
from django.test import Client

from tests.security.route_table import ROUTES
from tests.security.walk import url_for

# Authenticated by a key in a header, never by a cookie: a forged cross-site request
# cannot carry it, so CSRF does not apply (the receivers are csrf_exempt by design).
KEY_ONLY = {"otlp-traces", "otlp-logs", "api-feedback"}

SESSION_POSTS = sorted(
    (name, i) for name, routes in ROUTES.items() if name not in KEY_ONLY
    for i, route in enumerate(routes) if route.method != "GET"
)

# The walk's world is built once per module (conftest.walk); the mark makes pytest-django
# create the test database and wraps each test in a savepoint of the module's transaction.
pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("name", "index"), SESSION_POSTS)
def test_post_without_csrf_token_is_refused_and_changes_nothing(walk, django_db_blocker, name, index):
    route = ROUTES[name][index]
    with django_db_blocker.unblock():
        client = Client(enforce_csrf_checks=True)
        if name not in ("logout", "login"):
            client.force_login(walk.users["A"]["admin"])
        url = url_for(name, route, slug=walk.projects["A"].slug, objects=walk.objects, session_user=True)
        kwargs = {}
        if route.method == "POST":
            data = route.data(walk.objects) if route.data else {}
            kwargs = {"data": data, "content_type": "application/json"} if route.json else {"data": data}
        with transaction.atomic():
            before = walk.fingerprint()
            response = getattr(client, route.method.lower())(url, **kwargs)
            after = walk.fingerprint()
            transaction.set_rollback(True)
    assert response.status_code == 403, (name, response.status_code)
    assert before == after, sorted(t for t in {*before, *after} if before.get(t) != after.get(t))


def test_every_post_form_in_the_templates_has_a_csrf_token():
    missing = []
    for path in Path(settings.BASE_DIR, "templates").rglob("*.html"):
        html = path.read_text()
        for match in re.finditer(r"<form\b[^>]*method=\"post\"[^>]*>(.*?)</form>", html, re.S | re.I):
            if "{% csrf_token %}" not in match.group(1):
                missing.append(str(path.relative_to(settings.BASE_DIR)))
    assert not missing, f"POST forms without {{% csrf_token %}}: {missing}"
