"""Every URL name x every role of project A and of project B (tests/security/route_table.py).

For each line of ROUTES and each method:
- every role of A on A's objects gets the status the table says;
- every role of B on A's objects gets what an outsider gets (404 / 401 / 302);
- B's roles (and B's key) with A's object ids inside B's URLs get 404, unless their role
  is refused before any lookup;
- no answer to anyone outside A holds A's data (a marker string in A's trace, queue, prompt);
- a denied write changes no row of any table, and an allowed write changes some.

Fixtures are built once for the module; each request runs inside a savepoint that is
rolled back, so one role's allowed write (revoking a key, removing a member) never
changes what the next role sees.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.security import route_table as table
from tests.security.route_table import A_MARKER, ROLES, ROUTES
from tests.security.walk import kwarg_names, request_once, url_for, url_names

# The walk's world is built once per module (conftest.walk); the mark makes pytest-django
# create the test database and wraps each test in a savepoint of the module's transaction.
pytestmark = pytest.mark.django_db


def test_every_url_name_has_a_line_in_the_route_table():
    names, _ = url_names()
    missing = sorted(names - set(ROUTES))
    assert not missing, (
        f"URL names without a line in tests/security/route_table.py ROUTES: {missing}. Add one line per "
        "name with the status each role gets (see that file's header)."
    )
    stale = sorted(set(ROUTES) - names)
    assert not stale, f"ROUTES lists names no URL has any more (remove them): {stale}"


def _has_object_ids(name: str) -> bool:
    return any(k != "project_slug" for k in kwarg_names(name))


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_route_answers_each_role_as_the_table_says(walk, name, django_db_blocker):
    a_slug, b_slug = walk.projects["A"].slug, walk.projects["B"].slug
    problems: list[str] = []
    with django_db_blocker.unblock():
        for route in ROUTES[name]:
            where = f"{route.method} {name}"
            # Every role of A, and B's roles (outsiders to A), on A's objects.
            cases = [(role, role, route.expect[role]) for role in ROLES]
            cases += [(f"B:{role}", role, route.expect["outsider"]) for role in ("viewer", "reviewer", "member",
                                                                                  "admin")]
            # B's key: A's ids in the URL, or (cross["key"] given) in the body, are not found.
            cases += [("B:key", "key", route.cross["key"] if "key" in route.cross
                       else route.expect["key"] if not _has_object_ids(name) or not route.api
                       else route.cross.get("key", _cross(route.expect["key"])))]
            for who, role, expected in cases:
                session_user = role not in ("anon", "key", "pubkey")
                url = url_for(name, route, slug=a_slug, objects=walk.objects, session_user=session_user)
                status, location, body, changed = request_once(walk, who, name, route, url)
                if status != expected:
                    problems.append(f"{where} as {who}: {status}, expected {expected} ({url})")
                _check_effects(problems, where, who, route, status, location, changed)
                if who.startswith("B:") or role in ("outsider", "anon"):
                    if A_MARKER.encode() in body:
                        problems.append(f"{where} as {who}: the answer holds project A's data ({url})")
            # B's roles with A's object ids inside B's URLs.
            if _has_object_ids(name) and ("project_slug" in kwarg_names(name) or route.api):
                for role in ("viewer", "reviewer", "member", "admin"):
                    expected = route.cross.get(role, _cross(route.expect[role]))
                    url = url_for(name, route, slug=b_slug, objects=walk.objects, session_user=True)
                    who = f"B:{role}"
                    status, location, body, changed = request_once(walk, who, name, route, url)
                    if status != expected:
                        problems.append(f"{where} as {who} with A's ids in B's URL: {status}, expected {expected} "
                                        f"({url})")
                    _check_effects(problems, where + " (A's ids in B's URL)", who, route, status, location, changed)
                    if A_MARKER.encode() in body:
                        problems.append(f"{where} as {who} with A's ids in B's URL: answer holds A's data")
    assert not problems, "\n".join(problems)


def _cross(expected_for_own: int) -> int:
    """What a role gets for A's ids in its own project's URL: refused by role first, else 404."""
    return expected_for_own if expected_for_own in (401, 403, 405) else 404


def _check_effects(problems: list[str], where: str, who: str, route: table.Route, status: int, location: str,
                   changed) -> None:
    if route.method == "GET":
        return
    denied = status in (401, 403, 404, 405) or (status == 302 and "login" in location)
    if denied and changed:
        problems.append(f"{where} as {who} was refused ({status}) but changed {changed}")
    elif not denied and status < 400 and route.writes and not changed:
        problems.append(f"{where} as {who} was allowed ({status}) but changed nothing: is its data valid?")


def test_admin_site_is_for_superusers_only(walk, django_db_blocker):
    _, admin_names = url_names()
    assert "admin:index" in admin_names
    problems = []
    with django_db_blocker.unblock():
        for name in sorted(admin_names):
            if name == "admin:login" or name == "admin:logout":
                continue
            url = reverse(name)
            for role in ("anon", "admin", "key", "super"):
                status, *_ = request_once(walk, role, name, table.Route("GET", {}), url)
                expected = table.ADMIN_EXPECT[role]
                if role == "super":
                    expected = table.ADMIN_SUPER_STATUS.get(name, expected)
                if status != expected:
                    problems.append(f"GET {name} as {role}: {status}, expected {expected}")
    assert not problems, "\n".join(problems)
