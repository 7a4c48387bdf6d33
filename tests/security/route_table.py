"""Every URL name of Spyglass and who may use it: the table the route x role walk checks.

ADDING A ROUTE? Add ONE line to ROUTES below for each new URL name (same name as in your
urls.py), saying for each method the status that an anonymous visitor, an outsider (logged
in, not in the project), a superuser who is not in the project, a viewer, a reviewer, a
member and an admin of the project get, plus the project's secret and public API keys.
Use the profiles (`page`, `page_write`, `api`, ...) where they fit. If your URL takes a
new kwarg (e.g. `alert_id`), add how to build it to KWARGS and create the object in
`build_objects` (for project A). A POST line gives `data` that would succeed for an
allowed role, and `writes=True` if that success changes the database: the walk then
checks that the allowed call did change something and every denied one changed nothing.
tests/security/test_route_roles.py fails for a URL name missing here, and names it.

The walk (tests/security/test_route_roles.py) runs each line as every role of project A
on A's objects, as every role of project B on A's objects (= outsider), and as B's roles
with A's object ids inside B's URLs (404, unless the role is refused before any lookup).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Roles, in the order a table line lists them.
ROLES = ("anon", "outsider", "super", "viewer", "reviewer", "member", "admin", "key", "pubkey")
# Secret key = member powers inside its project; the public key only posts end-user feedback.


@dataclass(frozen=True)
class Route:
    method: str
    expect: dict[str, int]
    # Request body for POST (DELETE sends none), built from project A's objects (see build_objects): a dict
    # is form-encoded, unless json=True.
    data: Callable[[dict[str, Any]], Any] | None = None
    json: bool = False
    # An allowed call changes the database (checked); denied ones never may.
    writes: bool = False
    # API route: session users choose the project with ?project=<slug>.
    api: bool = False
    # Expected statuses for B's roles with A's ids in B's URLs, where not 404.
    cross: dict[str, int] = field(default_factory=dict)


def _expect(base: dict[str, int], viewer: int, reviewer: int, member: int, admin: int, **extra: int) -> dict[str, int]:
    return {**base, "viewer": viewer, "reviewer": reviewer, "member": member, "admin": admin, **extra}


# Pages: anonymous (and API keys, which pages ignore) go to the login page; a user who is
# not in the project gets 404 (superusers too: the admin site is their tool, not pages).
_PAGE = {"anon": 302, "outsider": 404, "super": 404, "key": 302, "pubkey": 302}
# API: no credentials 401; a public key is refused (401) everywhere but feedback.
_API = {"anon": 401, "outsider": 404, "super": 404, "pubkey": 401}


def page(viewer: int = 200, reviewer: int = 200, member: int = 200, admin: int = 200, **kw: Any) -> dict[str, int]:
    return _expect(_PAGE, viewer, reviewer, member, admin, **kw)


VIEW = page()  # any role reads
ADMIN_PAGE = page(403, 403, 403, 200)
MEMBER_PAGE = page(403, 403, 200, 200)
REVIEWER_PAGE = page(403, 200, 200, 200)


def api(viewer: int, reviewer: int, member: int, admin: int, key: int, **kw: Any) -> dict[str, int]:
    return _expect(_API, viewer, reviewer, member, admin, key=key, **kw)


API_READ = api(200, 200, 200, 200, 200)


def _get(expect: dict[str, int], **kw: Any) -> list[Route]:
    return [Route("GET", expect, **kw)]


def _post(expect: dict[str, int], data: Callable[[dict[str, Any]], Any] | None = None, **kw: Any) -> list[Route]:
    return [Route("POST", expect, data=data or (lambda o: {}), **kw)]


def _admin_form(o: dict[str, Any]) -> dict[str, Any]:
    return {"name": "renamed"}


def _judge_form(o: dict[str, Any]) -> dict[str, Any]:
    return {"base_url": "https://judge.example/v1", "model": "m", "sample_rate": "0.5",
            "daily_budget_usd": "1", "timeout_seconds": "10"}


def _evaluator_form(o: dict[str, Any]) -> dict[str, Any]:
    return {"embeddings_max_spans": "3", "injection_threshold": "0.5", "toxicity_enabled": "on"}


def _scores(o: dict[str, Any]) -> dict[str, Any]:
    helpfulness, safety = o["configs"]  # numeric 1-5, boolean
    return {f"score_{helpfulness.pk}": "4", f"score_{safety.pk}": "true"}


def _otlp(o: dict[str, Any]) -> str:
    now = time.time_ns()
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "ab" * 16, "spanId": "cd" * 8, "name": "walk", "startTimeUnixNano": str(now),
        "endTimeUnixNano": str(now + 1000)}]}]}]})


def _otlp_logs(o: dict[str, Any]) -> str:
    return json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "timeUnixNano": str(time.time_ns()), "traceId": o["trace"].trace_id, "spanId": o["span_id"],
        "body": {"stringValue": "walk"}}]}]}]})


def _alert_rule_form(o: dict[str, Any]) -> dict[str, Any]:
    return {"name": "walk rule", "measure": "traces", "agg": "count", "window_seconds": "1h", "operator": ">",
            "alert_threshold": "100", "min_observations": "1", "no_data": "no_data", "cooldown_seconds": "15m",
            "enabled": "on"}


_PROMPT_EDIT = {"template": "Hello {{name}}", "base_version": "1", "commit_message": "walk"}

ROUTES: dict[str, list[Route]] = {
    # --- instance-wide ------------------------------------------------------------------
    "healthz": _get({r: 200 for r in ROLES}),
    # Operators only: a bearer SPYGLASS_METRICS_TOKEN (unset here) or a superuser's session.
    "prometheus-metrics": _get({**{r: 403 for r in ROLES}, "super": 200}),
    # The API's description is public (no project data in it), as on every hosted product.
    # A public key sent as a Bearer token is an unknown secret key: 401.
    "api-schema": _get({**{r: 200 for r in ROLES}, "pubkey": 401}),
    "api-docs": _get({**{r: 200 for r in ROLES}, "pubkey": 401}),
    "home": _get({**{r: 200 for r in ROLES}, "anon": 302, "key": 302, "pubkey": 302}),
    # A wrong password re-renders the form (the failure is counted: projects/login_throttle.py).
    "login": [Route("GET", {r: 200 for r in ROLES}),
              Route("POST", {r: 200 for r in ROLES}, data=lambda o: {"username": "nobody", "password": "x"})],
    "logout": _post({r: 302 for r in ROLES}),
    # --- ingest (secret key only) ---------------------------------------------------------
    "otlp-traces": _post({**{r: 401 for r in ROLES}, "key": 200}, _otlp, json=True, writes=True),
    "otlp-logs": _post({**{r: 401 for r in ROLES}, "key": 200}, _otlp_logs, json=True, writes=True),
    # --- projects -------------------------------------------------------------------------
    "project-root": _get(page(302, 302, 302, 302)),
    "project-settings": _get(ADMIN_PAGE),
    "settings-key-create": _post(page(403, 403, 403, 302), lambda o: {"name": "walk"}, writes=True),
    "settings-key-revoke": _post(page(403, 403, 403, 302), writes=True),
    "settings-member-add": _post(page(403, 403, 403, 302), lambda o: {"username": "loner", "role": "viewer"},
                                 writes=True),
    "settings-member-role": _post(page(403, 403, 403, 302), lambda o: {"role": "member"}, writes=True),
    "settings-member-remove": _post(page(403, 403, 403, 302), writes=True),
    "settings-project-name": _post(page(403, 403, 403, 302), _admin_form, writes=True),
    "tracing-masking-settings": [
        Route("GET", ADMIN_PAGE),
        Route("POST", page(403, 403, 403, 302), data=lambda o: {"kinds": ["email"]}, writes=True),
    ],
    "api-masking": [
        Route("GET", API_READ, api=True),
        Route("POST", api(403, 403, 403, 200, 403), api=True, json=True, writes=True,
              data=lambda o: json.dumps({"kinds": ["email"], "custom": [{"name": "walk", "pattern": "W-[0-9]+"}]})),
    ],
    # Retention: everyone in the project reads it, admins change it.
    "retention-settings": [
        Route("GET", VIEW),
        Route("POST", page(403, 403, 403, 302), data=lambda o: {"mode": "days", "days": "14"}, writes=True),
    ],
    "api-retention": [
        Route("GET", API_READ, api=True),
        Route("POST", api(403, 403, 403, 200, 403), api=True, json=True, writes=True,
              data=lambda o: json.dumps({"mode": "days", "days": 14})),
    ],
    # --- explorer ---------------------------------------------------------------------------
    "api-trace-list": _get(API_READ, api=True),
    "api-trace-detail": _get(API_READ, api=True),
    "trace-list": _get(VIEW),
    "trace-detail": _get(VIEW),
    "span-panel": _get(VIEW),
    "session-list": _get(VIEW),
    "session-detail": _get(VIEW),
    "user-list": _get(VIEW),
    "user-detail": _get(VIEW),
    # --- scores and feedback --------------------------------------------------------------
    "api-score-list": [
        Route("GET", API_READ, api=True),
        Route("POST", api(403, 201, 201, 201, 201), api=True, json=True, writes=True,
              data=lambda o: json.dumps({"trace_id": o["trace"].trace_id, "name": "walk", "value": 1})),
    ],
    # The public key, and nothing else, posts end-user feedback; a secret key is refused.
    "api-feedback": _post({**{r: 401 for r in ROLES}, "pubkey": 201}, json=True, writes=True,
                          data=lambda o: json.dumps({"trace_id": o["trace"].trace_id, "name": "thumbs",
                                                     "value": True})),
    # --- annotation -----------------------------------------------------------------------
    "annotation-trace-panel": _get(VIEW),
    "annotation-trace-annotate": _post(REVIEWER_PAGE, _scores, writes=True),
    "annotation-trace-comment": _post(REVIEWER_PAGE, lambda o: {"body": "walk"}, writes=True),
    "annotation-queue-list": _get(VIEW),
    "annotation-queue-new": [
        Route("GET", MEMBER_PAGE),
        Route("POST", page(403, 403, 302, 302), writes=True, data=lambda o: {
            "name": "walk", "mode": "single", "configs": [o["configs"][0].pk], "reviews_per_item": 1,
            "sample": "newest", "size": 5, "split_field": "prompt_version"}),
    ],
    "annotation-config-list": [
        Route("GET", VIEW),
        Route("POST", page(403, 403, 302, 302), writes=True,
              data=lambda o: {"name": "walk", "data_type": "numeric", "min_value": 0, "max_value": 1}),
    ],
    "annotation-queue-detail": _get(VIEW),
    "annotation-queue-review": [Route("GET", page(403, 302, 302, 302)), Route("POST", page(403, 302, 302, 302))],
    "annotation-queue-item": _get(REVIEWER_PAGE),
    "annotation-queue-submit": _post(page(403, 302, 302, 302), _scores, writes=True),
    "annotation-queue-skip": _post(page(403, 302, 302, 302), writes=True),
    "annotation-queue-export": _get(VIEW),
    # --- evaluation -----------------------------------------------------------------------
    "evaluation-judge-settings": [
        Route("GET", ADMIN_PAGE),
        Route("POST", page(403, 403, 403, 302), _judge_form, writes=True),
    ],
    "evaluation-evaluator-settings": [
        Route("GET", ADMIN_PAGE),
        Route("POST", page(403, 403, 403, 302), _evaluator_form, writes=True),
    ],
    "evaluation-backlog-settings": [
        Route("GET", VIEW),
        Route("POST", page(403, 403, 403, 302),
              lambda o: {"mode": "sample", "threshold": "100", "sample_rate": "0.5", "cap": "100"}, writes=True),
    ],
    # Traces of the fixture are older than a day: the re-score covers none, changes nothing.
    "evaluation-evaluator-rescore": _post(page(403, 403, 403, 302), lambda o: {"days": "1"}),
    # --- dashboards -----------------------------------------------------------------------
    "api-metrics": _get(API_READ, api=True),
    "api-metric-dimensions": _get(API_READ, api=True),
    "api-dashboards": [
        Route("GET", API_READ, api=True),
        Route("POST", api(403, 403, 201, 201, 201), api=True, json=True, writes=True,
              data=lambda o: json.dumps({"name": "walk board"})),
    ],
    "api-dashboard-detail": [
        Route("GET", API_READ, api=True),
        Route("DELETE", api(403, 403, 204, 204, 204), api=True, writes=True),
    ],
    "api-dashboard-charts": _post(api(403, 403, 201, 201, 201), api=True, json=True, writes=True,
                                  data=lambda o: json.dumps({"title": "walk", "measure": "traces"})),
    "api-dashboard-chart-delete": [Route("DELETE", api(403, 403, 204, 204, 204), api=True, writes=True)],
    "dashboards-overview": _get(VIEW),
    "dashboards-cost": _get(VIEW),
    "dashboards-csv": _get(VIEW),
    "dashboards-saved-list": [
        Route("GET", VIEW),
        Route("POST", page(403, 403, 302, 302), lambda o: {"name": "walk board"}, writes=True),
    ],
    "dashboards-saved-detail": _get(VIEW),
    "dashboards-chart-new": [
        Route("GET", MEMBER_PAGE),
        Route("POST", page(403, 403, 302, 302), writes=True, data=lambda o: {
            "title": "walk", "measure": "traces", "chart_type": "line", "interval": "auto"}),
    ],
    "dashboards-chart-delete": _post(page(403, 403, 302, 302), writes=True),
    "dashboards-saved-delete": _post(page(403, 403, 302, 302), writes=True),
    # --- alerts ---------------------------------------------------------------------------
    "alerts-list": _get(VIEW),
    "alerts-new": [Route("GET", MEMBER_PAGE),
                   Route("POST", page(403, 403, 302, 302), _alert_rule_form, writes=True)],
    "alerts-history": _get(VIEW),
    "alerts-states": _get(VIEW),
    "alerts-rule": [Route("GET", VIEW),
                    Route("POST", page(403, 403, 302, 302), _alert_rule_form, writes=True)],
    "alerts-channel-add": _post(page(403, 403, 302, 302), lambda o: {"kind": "email", "target": "walk@example.com"},
                                writes=True),
    "alerts-channel-remove": _post(page(403, 403, 302, 302), writes=True),
    "alerts-test": _post(page(403, 403, 302, 302), writes=True),
    "alerts-secret": _post(page(403, 403, 302, 302), writes=True),
    "alerts-delete": _post(page(403, 403, 302, 302), writes=True),
    "api-alert-rules": _get(API_READ, api=True),
    "api-alert-events": _get(API_READ, api=True),
    # --- slices and drift ------------------------------------------------------------------
    "api-slices": _get(API_READ, api=True),
    "slices": _get(VIEW),
    "api-drift": _get(API_READ, api=True),
    "drift": _get(VIEW),
    # --- prompts --------------------------------------------------------------------------
    "api-prompt-list": _get(API_READ, api=True),
    "api-prompt-fetch": _get(API_READ, api=True),
    # In B's URL (or with B's key) the name is B's own: creating a prompt there is B's right.
    "api-prompt-version-create": _post(
        api(403, 403, 201, 201, 201), api=True, json=True, writes=True,
        data=lambda o: json.dumps({"template": "Hi {{name}}"}),
        cross={"member": 201, "admin": 201, "key": 201}),
    "api-prompt-label-move": _post(api(403, 403, 200, 200, 200), api=True, json=True, writes=True,
                                   data=lambda o: json.dumps({"label": "walk", "version": 1})),
    "prompt-list": _get(VIEW),
    "prompt-new": [
        Route("GET", MEMBER_PAGE),
        Route("POST", page(403, 403, 302, 302), writes=True,
              data=lambda o: {"name": "walk-new", "type": "text", "template": "x", "base_version": "0"}),
    ],
    "prompt-detail": _get(VIEW),
    "prompt-version-new": [
        Route("GET", MEMBER_PAGE),
        Route("POST", page(403, 403, 302, 302), lambda o: _PROMPT_EDIT, writes=True),
    ],
    "prompt-version": _get(VIEW),
    # Renders the template with posted variables, no model call: a read, so viewers may.
    "prompt-version-preview": _post(VIEW, lambda o: {"var_name": "Ada"}),
    "prompt-label-move": _post(page(403, 403, 302, 302), lambda o: {"label": "walk", "version": "1"}, writes=True),
    "prompt-diff": _get(VIEW),
    "prompt-compare": _get(VIEW),
    # --- datasets -------------------------------------------------------------------------
    "api-datasets": [
        Route("GET", API_READ, api=True),
        Route("POST", api(403, 403, 201, 201, 201), api=True, json=True, writes=True,
              data=lambda o: json.dumps({"name": "walk-dataset"})),
    ],
    "api-dataset-items": [
        Route("GET", API_READ, api=True),
        Route("POST", api(403, 403, 201, 201, 201), api=True, json=True, writes=True,
              data=lambda o: json.dumps({"items": [{"input": "walk"}]})),
    ],
    "api-dataset-export": _get(API_READ, api=True),
    "datasets-list": [Route("GET", VIEW),
                      Route("POST", page(403, 403, 302, 302), lambda o: {"name": "walk-dataset"}, writes=True)],
    "datasets-detail": _get(VIEW),
    "datasets-split": _post(page(403, 403, 302, 302), lambda o: {"test_fraction": "0.2"}, writes=True),
    # No file: the page says so and changes nothing (a real upload is tested in tests/datasets).
    "datasets-upload": _post(page(403, 403, 302, 302)),
    "datasets-bulk-add": [Route("GET", MEMBER_PAGE),
                          Route("POST", page(403, 403, 302, 302), lambda o: {"new_name": "walk-bulk"},
                                writes=True)],
    "datasets-add-trace": [Route("GET", MEMBER_PAGE),
                           Route("POST", page(403, 403, 302, 302), lambda o: {"new_name": "walk-trace"},
                                 writes=True)],
    # The walk's queue has claimed items but no finished review: the POST is refused with a
    # 400 that names why, before any dataset is created (a real add is tested in
    # tests/datasets/test_from_reviews.py).
    "datasets-add-queue": [Route("GET", MEMBER_PAGE),
                           Route("POST", page(403, 403, 400, 400), lambda o: {"new_name": "walk-queue"})],
    # --- experiments ----------------------------------------------------------------------
    "api-experiments": [
        Route("GET", API_READ, api=True),
        # B's key names A's dataset and prompt in the body: not found in B.
        Route("POST", api(403, 403, 201, 201, 201), api=True, json=True, writes=True, cross={"key": 404},
              data=lambda o: json.dumps({"dataset": "alpha-dataset", "prompt": "alpha-prompt", "model": "m"})),
    ],
    "api-experiment": _get(API_READ, api=True),
    "api-experiment-cancel": _post(api(403, 403, 200, 200, 200), api=True, writes=True),
    # A's run is a prompt run: the server runs it, so posted results are refused (409).
    "api-experiment-results": _post(api(403, 403, 409, 409, 409), api=True, json=True,
                                    data=lambda o: json.dumps({"results": []})),
    "experiments-list": [Route("GET", VIEW),
                         Route("POST", page(403, 403, 302, 302), writes=True, data=lambda o: {
                             "dataset": "alpha-dataset", "prompt": "alpha-prompt", "model": "m",
                             "concurrency": "2"})],
    "experiments-detail": _get(VIEW),
    "experiments-cancel": _post(page(403, 403, 302, 302), writes=True),
    "experiments-compare": _get(VIEW),
}

# The Django admin: staff only, every other role is sent to the admin's login page. The
# walk checks every admin URL without arguments (index, each model's list and add page).
ADMIN_NAMESPACE = "admin"
ADMIN_EXPECT = {**{r: 302 for r in ROLES}, "super": 200}
# Admin URLs that answer a superuser's bare GET with another status (by Django's design).
ADMIN_SUPER_STATUS = {"admin:autocomplete": 403}  # needs app_label/model_name/field_name

# How to fill each URL kwarg from project A's objects (the dict build_objects returns).
# project_slug is swapped for B's in the cross-project walk; every other id stays A's.
KWARGS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "project_slug": lambda o: o["project"].slug,
    "trace_id": lambda o: o["trace"].trace_id,
    "span_id": lambda o: o["span_id"],
    "session_id": lambda o: o["session_id"],
    "user_id": lambda o: o["user_id"],
    "queue_id": lambda o: o["queue"].pk,
    "item_id": lambda o: o["item"].pk,
    "fmt": lambda o: "csv",
    "key_id": lambda o: o["extra_key_id"],
    "membership_id": lambda o: o["viewer_membership"].pk,
    "name": lambda o: o["prompt_name"],
    "version": lambda o: 1,
    "dashboard_id": lambda o: o["dashboard"].pk,
    "chart_id": lambda o: o["chart"].pk,
    "rule_id": lambda o: o["alert_rule"].pk,
    "channel_id": lambda o: o["alert_channel"].pk,
    "dataset_name": lambda o: o["dataset"].name,
    "experiment_id": lambda o: o["experiment"].pk,
}
# Query strings some GET pages need to show their object (diff/compare: two versions).
QUERY: dict[str, dict[str, str]] = {
    "api-metrics": {"measure": "traces"},
    "dashboards-csv": {"measure": "traces"},
    "api-slices": {"dimension": "model"},
    "prompt-diff": {"a": "1", "b": "1"},
    "prompt-compare": {"a": "1", "b": "1"},
    "api-dataset-export": {"format": "csv"},
}
# The comparison names its runs in the query: A's run against itself.
QUERY_FROM_OBJECTS: dict[str, Callable[[dict[str, Any]], dict[str, str]]] = {
    "experiments-compare": lambda o: {"a": str(o["experiment"].pk), "b": str(o["experiment"].pk)},
}

# Text that appears in project A's data only: no answer to anyone outside A may hold it.
A_MARKER = "alpha-secret-7731"


def build_objects(project: Any, users: dict[str, Any]) -> dict[str, Any]:
    """Project A's objects the URLs point at, made through the services."""
    from annotation.services import queue_claim_item, queue_create
    from dashboards.services import chart_add, dashboard_create
    from projects.models import Membership
    from projects.services import api_key_create
    from prompts.services import Actor, prompt_version_create
    from scores.models import ScoreConfig
    from tests.helpers import ingest_trace
    from tracing.models import Span

    trace = ingest_trace(
        project, spans=2, input=f"question {A_MARKER}", start_ns=time.time_ns() - 3600 * 10**9,
        attributes={"session.id": "sess-alpha", "user.id": "user-alpha"},
    )
    configs = list(ScoreConfig.objects.filter(project=project, name__in=("helpfulness", "safety")).order_by("name"))
    queue = queue_create(project=project, name=f"queue {A_MARKER}", created_by=users["admin"],
                         items=[(trace.trace_id, None)], config_ids=[c.pk for c in configs], reviews_per_item=3)
    item = queue.items.get()
    # Claimed by each reviewing role, so that their submit is a real write.
    for role in ("reviewer", "member", "admin"):
        queue_claim_item(queue=queue, item_id=item.pk, reviewer=users[role])
    dashboard = dashboard_create(project=project, name=f"board {A_MARKER}", user=users["admin"])
    chart = chart_add(dashboard=dashboard, title=f"chart {A_MARKER}", measure="traces", agg="count", group_by=[],
                      top=10, interval="auto", filters=[], chart_type="line", user=users["admin"])
    from alerts.services import RuleSpec, channel_add, rule_create

    alert_rule = rule_create(project=project, spec=RuleSpec(name=f"rule {A_MARKER}", measure="traces", agg="count",
                                                            alert_threshold=100, window_seconds=3600))
    alert_channel = channel_add(rule=alert_rule, kind="email", target="alpha@example.com")
    prompt_name = "alpha-prompt"
    prompt_version_create(project=project, name=prompt_name, template=f"Hi {{{{name}}}} {A_MARKER}",
                          actor=Actor(user=users["admin"], name="admin-a"), base_version=0)
    from datasets.services import ItemIn, dataset_create, items_add

    dataset = dataset_create(project=project, name="alpha-dataset")
    items_add(dataset=dataset, items=[ItemIn(f"question {A_MARKER}", f"answer {A_MARKER}")], change={})
    from evaluation.judge import judge_settings_save
    from experiments.services import ExperimentSpec, experiment_create

    # The experiments' model connection (never called: the walk's requests are rolled back).
    judge_settings_save(project=project, user=None, enabled=False, base_url="https://model.example/v1",
                        model="m", api_key="sk-walk", sample_rate=0, daily_budget_usd=1, rubrics=[])
    experiment = experiment_create(project=project, spec=ExperimentSpec(
        dataset="alpha-dataset", prompt=prompt_name, model="m", name=f"run {A_MARKER}"))
    return {
        "experiment": experiment,
        "project": project,
        "trace": trace,
        "dataset": dataset,
        "span_id": Span.objects.filter(project=project, trace_id=trace.trace_id).values_list("span_id", flat=True)[0],
        "session_id": "sess-alpha",
        "user_id": "user-alpha",
        "configs": configs,
        "queue": queue,
        "item": item,
        "extra_key_id": api_key_create(project=project, name="spare").key.pk,
        "viewer_membership": Membership.objects.get(project=project, user=users["viewer"]),
        "prompt_name": prompt_name,
        "dashboard": dashboard,
        "chart": chart,
        "alert_rule": alert_rule,
        "alert_channel": alert_channel,
    }
