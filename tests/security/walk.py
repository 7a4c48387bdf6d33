"""The route walk's world: projects A and B with every role, A's objects, one client per
role, and a fingerprint of every table (tests/security/route_table.py, test_route_roles.py)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from projects.models import Role
from projects.services import membership_set, project_create
from tests.security import route_table as table


def url_names() -> tuple[set[str], set[str]]:
    """(names outside the admin, admin names without arguments) from Django's resolver."""
    names: set[str] = set()
    admin: set[str] = set()

    def walk(patterns, namespace: str | None) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, p.namespace or namespace)
            elif isinstance(p, URLPattern):
                if namespace == table.ADMIN_NAMESPACE:
                    if p.name and not p.pattern.regex.groups:
                        admin.add(f"{namespace}:{p.name}")
                elif p.name:
                    names.add(p.name)
                else:
                    names.add(f"<unnamed {p.pattern}>")

    walk(get_resolver().url_patterns, None)
    return names, admin


# Every row written in this transaction, per table: PostgreSQL's own counters of inserted,
# updated and deleted tuples (pg_stat_xact_user_tables), so "nothing changed" covers every
# table, every column, even a no-op UPDATE, for the price of one catalog read. Two tables
# the walk's own machinery writes are read by value instead (projects_apikey without
# last_used_at, which using a key touches) or not at all (django_session).
_FINGERPRINT_SQL = (
    "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_xact_user_tables "
    "WHERE relname NOT IN ('django_session', 'projects_apikey') "
    "UNION ALL SELECT 'projects_apikey (but last_used_at)', "
    "hashtext(string_agg(ROW(id, project_id, name, public_key, secret_hash, revoked_at)::text, '|' ORDER BY id)) "
    "FROM projects_apikey"
)


class Walk:
    def __init__(self) -> None:
        user_model = get_user_model()
        # No passwords (force_login only): the real hasher would cost 0.3 s a user.
        self.users: dict[str, dict[str, object]] = {"A": {}, "B": {}}
        self.projects = {}
        self.keys = {}
        for side in ("A", "B"):
            admin = user_model.objects.create_user(f"admin-{side}", password=None)
            project, key = project_create(name=f"Project {side}", owner=admin, slug=f"walk-{side.lower()}")
            self.projects[side], self.keys[side] = project, key
            self.users[side]["admin"] = admin
            for role in (Role.MEMBER, Role.REVIEWER, Role.VIEWER):
                user = user_model.objects.create_user(f"{role}-{side}", password=None)
                membership_set(project=project, user=user, role=role)
                self.users[side][str(role)] = user
        self.outsider = user_model.objects.create_user("outsider", password=None)
        self.super = user_model.objects.create_superuser("super", password=None)
        user_model.objects.create_user("loner", password=None)  # member-add target
        self.objects = table.build_objects(self.projects["A"], self.users["A"])
        # Every client logs in now, inside the module's transaction: a session made
        # inside one test's savepoint would vanish with it.
        self.clients: dict[str, Client] = {}
        for who in [*table.ROLES, *(f"B:{r}" for r in ("viewer", "reviewer", "member", "admin", "key"))]:
            self.clients[who] = self._new_client(who)

    def client(self, who: str) -> Client:
        """who: a ROLES name (project A's), or 'B:<role>' / 'B:key' for project B's."""
        return self.clients[who]

    def _new_client(self, who: str) -> Client:
        side, _, role = who.rpartition(":")
        side = side or "A"
        client = Client()
        if role == "key":
            client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {self.keys[side].secret_key}"
        elif role == "pubkey":
            client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {self.keys[side].public_key}"
        elif role == "outsider":
            client.force_login(self.outsider)
        elif role == "super":
            client.force_login(self.super)
        elif role != "anon":
            client.force_login(self.users[side][role])
        return client

    def fingerprint(self) -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute(_FINGERPRINT_SQL)
            return dict(cursor.fetchall())


def url_for(name: str, route: table.Route, *, slug: str, objects: dict, session_user: bool) -> str:
    kwargs = {}
    for pattern_kwarg in kwarg_names(name):
        kwargs[pattern_kwarg] = table.KWARGS[pattern_kwarg](objects)
    if "project_slug" in kwargs:
        kwargs["project_slug"] = slug
    url = reverse(name, kwargs=kwargs)
    query = dict(table.QUERY.get(name, {}))
    if name in table.QUERY_FROM_OBJECTS:
        query.update(table.QUERY_FROM_OBJECTS[name](objects))
    if route.api and session_user:
        query["project"] = slug
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return url


def kwarg_names(name: str) -> list[str]:
    possibilities = get_resolver().reverse_dict.getlist(name)
    return list(possibilities[0][0][0][1]) if possibilities else []


def security_header_problems(response) -> list[str]:
    """What is missing from the headers every answer must carry (config/security.py, settings)."""
    csp = response.headers.get("Content-Security-Policy", "")
    problems = [f"CSP lacks {part!r}" for part in ("script-src 'self'", "frame-ancestors 'none'", "object-src 'none'")
                if part not in csp]
    problems += [f"CSP allows {part!r}" for part in ("'unsafe-eval'", "*", "http:", "https:")
                 if part in csp.split()]
    expected = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
    problems += [f"{header}: {response.headers.get(header)!r}, expected {value!r}"
                 for header, value in expected.items() if response.headers.get(header) != value]
    return problems


def request_once(walk: Walk, who: str, name: str, route: table.Route, url: str) -> tuple[int, str, bytes, object]:
    """(status, Location, body, the tables changed), with every change rolled back.
    Every answer, whatever its status, must carry the security headers."""
    client = walk.client(who)
    kwargs = {}
    if route.method == "POST":
        data = route.data(walk.objects) if route.data else {}
        kwargs = {"data": data, "content_type": "application/json"} if route.json else {"data": data}
    # The request's rows are rolled back below, so its cookies must be too (log-out
    # would otherwise leave the client with a session that never existed).
    cookies = client.cookies
    client.cookies = type(cookies)(cookies)
    with transaction.atomic():
        before = walk.fingerprint() if route.method != "GET" else None
        response = getattr(client, route.method.lower())(url, **kwargs)
        # A streamed answer (exports) reads the database as it goes: read it here, inside
        # the transaction, and check its whole body like any other.
        body = b"".join(response.streaming_content) if response.streaming else response.content
        after = walk.fingerprint() if route.method != "GET" else None
        transaction.set_rollback(True)
    client.cookies = cookies
    missing = security_header_problems(response)
    assert not missing, f"{route.method} {url} as {who} ({response.status_code}): {'; '.join(missing)}"
    changed = sorted(t for t in {*before, *after} if before.get(t) != after.get(t)) if before is not None else []
    return response.status_code, response.headers.get("Location", ""), body, changed


