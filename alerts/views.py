"""Alert pages: rules list, create / edit form with channels, history, and the states
fragment the overview loads with htmx. Viewers read, members edit, outsiders get 404."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from alerts import selectors, services
from alerts.forms import ChannelForm, RuleForm, duration_text
from alerts.models import AlertRule
from config import secret_box
from config.errors import ValidationFailed
from projects.auth import ProjectAccess
from projects.models import Role
from projects.pages import project_page

# What the "per-user cost in a rolling 24 h" example fills in (static/alerts/alerts.js).
EXAMPLE = {"name": "Cost per user, rolling 24 h", "measure": "cost_usd", "agg": "sum", "group_by": "user_id",
           "window_seconds": "24h", "operator": ">", "warning_threshold": "2", "alert_threshold": "5",
           "min_observations": "1", "no_data": "ok", "cooldown_seconds": "1h"}
SECRET_SESSION_KEY = "alerts-secret-{}"
_REVEAL_PURPOSE = "alerts.reveal_once"


def _reveal_once(request: HttpRequest, rule_id: int, secret: str | None) -> None:
    # Sessions are stored in the database, signed but readable: keep the secret encrypted
    # there until the next page shows it once.
    if secret:
        request.session[SECRET_SESSION_KEY.format(rule_id)] = secret_box.encrypt(secret, purpose=_REVEAL_PURPOSE)


def _revealed(request: HttpRequest, rule_id: int) -> str | None:
    token = request.session.pop(SECRET_SESSION_KEY.format(rule_id), None)
    return secret_box.decrypt(token, purpose=_REVEAL_PURPOSE) if token else None


def _initial(rule: AlertRule) -> dict:
    return {"name": rule.name, "measure": rule.measure, "agg": rule.agg, "filters": rule.filters,
            "group_by": rule.group_by, "window_seconds": duration_text(rule.window_seconds),
            "operator": rule.operator, "warning_threshold": rule.warning_threshold,
            "alert_threshold": rule.alert_threshold, "min_observations": rule.min_observations,
            "no_data": rule.no_data, "cooldown_seconds": duration_text(rule.cooldown_seconds),
            "enabled": rule.enabled}


def _save(form: RuleForm, save) -> AlertRule | None:
    """Run the service; its field errors land on the form's fields."""
    try:
        return save(services.spec_from(form.cleaned_data))
    except services.RuleInvalid as exc:
        for field, problems in exc.errors.items():
            for problem in problems:
                form.add_error(field if field in form.fields else None, problem)
    return None


@require_GET
@project_page(Role.VIEWER)
def rule_list(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    rules = [(rule, *selectors.rule_summary(rule)) for rule in selectors.rules_for_project(access.project)]
    return render(request, "alerts/list.html", {"rules": rules, "can_edit": access.can(Role.MEMBER)})


@require_http_methods(["GET", "POST"])
@project_page(Role.MEMBER)
def rule_new(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    form = RuleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        rule = _save(form, lambda spec: services.rule_create(project=access.project, spec=spec, user=request.user))
        if rule is not None:
            _reveal_once(request, rule.pk, rule.secret)
            messages.success(request, "Rule created. Add channels below, then send a test.")
            return redirect("alerts-rule", project_slug=access.project.slug, rule_id=rule.pk)
    return render(request, "alerts/new.html", {"form": form, "example": EXAMPLE},
                  status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@project_page(Role.VIEWER)
def rule_detail(request: HttpRequest, access: ProjectAccess, rule_id: int) -> HttpResponse:
    if request.method == "POST":
        _require_member(access)  # before the look-up, as for every member-only page
    rule = selectors.rule_get(access.project, rule_id)
    can_edit = access.can(Role.MEMBER)
    if request.method == "POST":
        form = RuleForm(request.POST)
        if form.is_valid() and _save(form, lambda spec: services.rule_update(rule=rule, spec=spec)):
            messages.success(request, "Rule saved.")
            return redirect("alerts-rule", project_slug=access.project.slug, rule_id=rule.pk)
    else:
        form = RuleForm(initial=_initial(rule))
    return _detail(request, access, rule, form=form, channel_form=ChannelForm(), can_edit=can_edit)


def _require_member(access: ProjectAccess) -> None:
    from django.core.exceptions import PermissionDenied

    if not access.can(Role.MEMBER):
        raise PermissionDenied("Editing alert rules needs the member role.")


def _detail(request, access, rule, *, form, channel_form, can_edit) -> HttpResponse:
    worst, states = selectors.rule_summary(selectors.rules_for_project(access.project).get(pk=rule.pk))
    context = {
        "rule": rule, "form": form, "channel_form": channel_form, "can_edit": can_edit, "worst": worst,
        "states": states, "channels": selectors.channels_of(rule),
        "events": selectors.events_for_project(access.project, rule_id=rule.pk, limit=20),
        # Shown once, right after creation or rotation; only the hint afterwards.
        "new_secret": _revealed(request, rule.pk) if can_edit else None,
        "window": duration_text(rule.window_seconds),
    }
    bad = form.errors or channel_form.errors
    return render(request, "alerts/detail.html", context, status=400 if bad else 200)


@require_POST
@project_page(Role.MEMBER)
def channel_add(request: HttpRequest, access: ProjectAccess, rule_id: int) -> HttpResponse:
    rule = selectors.rule_get(access.project, rule_id)
    channel_form = ChannelForm(request.POST)
    if channel_form.is_valid():
        try:
            services.channel_add(rule=rule, kind=channel_form.cleaned_data["kind"],
                                 target=channel_form.cleaned_data["target"])
        except ValidationFailed as exc:
            for field, problems in (exc.detail or {"target": [exc.message]}).items():
                for problem in problems:
                    channel_form.add_error(field if field in channel_form.fields else None, problem)
        else:
            messages.success(request, "Channel added.")
            return redirect("alerts-rule", project_slug=access.project.slug, rule_id=rule.pk)
    return _detail(request, access, rule, form=RuleForm(initial=_initial(rule)), channel_form=channel_form,
                   can_edit=True)


@require_POST
@project_page(Role.MEMBER)
def channel_remove(request: HttpRequest, access: ProjectAccess, rule_id: int, channel_id: int) -> HttpResponse:
    rule = selectors.rule_get(access.project, rule_id)
    services.channel_remove(rule=rule, channel_id=channel_id)
    messages.success(request, "Channel removed.")
    return redirect("alerts-rule", project_slug=access.project.slug, rule_id=rule.pk)


@require_POST
@project_page(Role.MEMBER)
def rule_test(request: HttpRequest, access: ProjectAccess, rule_id: int) -> HttpResponse:
    rule = selectors.rule_get(access.project, rule_id)
    sent = services.rule_test_send(rule=rule)
    if sent:
        messages.success(request, f"Test message queued for {len(sent)} channel(s); see Deliveries below.")
    else:
        messages.error(request, "Add a channel first: there is nowhere to send a test.")
    return redirect("alerts-rule", project_slug=access.project.slug, rule_id=rule.pk)


@require_POST
@project_page(Role.MEMBER)
def secret_rotate(request: HttpRequest, access: ProjectAccess, rule_id: int) -> HttpResponse:
    rule = selectors.rule_get(access.project, rule_id)
    _reveal_once(request, rule.pk, services.rule_secret_rotate(rule=rule))
    messages.success(request, "New signing secret: update your receivers; the old one no longer signs.")
    return redirect("alerts-rule", project_slug=access.project.slug, rule_id=rule.pk)


@require_POST
@project_page(Role.MEMBER)
def rule_delete(request: HttpRequest, access: ProjectAccess, rule_id: int) -> HttpResponse:
    rule = selectors.rule_get(access.project, rule_id)
    services.rule_delete(rule=rule)
    messages.success(request, f"Rule {rule.name!r} deleted.")
    return redirect("alerts-list", project_slug=access.project.slug)


@require_GET
@project_page(Role.VIEWER)
def history(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    before = request.GET.get("before")
    rule_id = request.GET.get("rule")
    errors = []
    if before is not None and not before.isdigit():
        errors.append("before: must be an event id (a whole number)")
        before = None
    if rule_id is not None and not rule_id.isdigit():
        errors.append("rule: must be a rule id (a whole number)")
        rule_id = None
    events = selectors.events_for_project(access.project, rule_id=int(rule_id) if rule_id else None,
                                          before=int(before) if before else None, limit=50)
    next_before = events[-1].pk if len(events) == 50 else None
    return render(request, "alerts/history.html", {"events": events, "next_before": next_before, "errors": errors,
                                                   "rule_id": rule_id}, status=400 if errors else 200)


@require_GET
@project_page(Role.VIEWER)
def states_fragment(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    """Current states of every rule: a fragment the overview loads with htmx."""
    rules = [(rule, *selectors.rule_summary(rule)) for rule in selectors.rules_for_project(access.project)]
    return render(request, "alerts/_states.html", {"rules": rules})
