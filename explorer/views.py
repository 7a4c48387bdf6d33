"""Pages of the trace explorer: traces, one trace, sessions, end users.

Every view goes through projects.pages.project_page (404 outside your projects, 403
below the role), parses the query string with a form, calls selectors and renders.
Filters live in the URL so any view can be shared; htmx swaps only the results.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.utils import timezone

from config.errors import NotFound
from explorer import filters, search, selectors
from explorer.filters import FilterError, TraceFilter
from projects.auth import ProjectAccess
from projects.models import Role
from projects.pages import project_page
from tracing import selectors as tracing_selectors
from tracing.models import Status

PAGE_SIZE = 50

# The filter's relative ranges, plus the page's "custom" preset (from/to given).
RANGES: dict[str, timedelta | None] = {**filters.RANGES, "custom": None}
RANGE_LABELS = {"15m": "15 min", "1h": "1 hour", "24h": "24 hours", "7d": "7 days", "30d": "30 days",
                "all": "All time", "custom": "Custom"}  # fmt: skip
SORT_LABELS = {"-time": "Newest first", "time": "Oldest first", "-latency": "Slowest first",
               "latency": "Fastest first"}  # fmt: skip

# The `status` filter keeps OTel's stored values; rows show "ok" for both ok and unset
# (explorer/templatetags/explorer.py `outcome`), so the choices say which is which.
STATUS_CHOICES = [
    (Status.ERROR, "error"),
    (Status.OK, "ok, set by the app"),
    (Status.UNSET, "unset (no status set; shown as ok)"),
]

# The feedback app's annotation panel, included on the trace page when it exists.
ANNOTATION_PANEL = "annotation/_trace_panel.html"


class TraceFilterForm(forms.Form):
    """The explorer's query string: the trace filter (explorer/filters.py, the same
    language as the API and queue creation) plus what only the page has: presets, sort,
    cursor, similar traces. The page's inputs are blank when unused, and its metadata
    inputs are `meta=key=value` (a form cannot name an input after a key); both are
    accepted here (`aliases`), and written back in the canonical form."""

    range = forms.ChoiceField(choices=[(k, RANGE_LABELS[k]) for k in RANGES], required=False)
    sort = forms.ChoiceField(choices=list(SORT_LABELS.items()), required=False)
    cursor = forms.CharField(required=False, max_length=200)
    similar_to = forms.RegexField(regex=r"^[0-9a-fA-F]{32}$", required=False)

    PAGE_PARAMS = frozenset({"sort", "cursor", "similar_to", "span", "project"})

    def __init__(self, data: Any, *args: Any, **kwargs: Any):
        super().__init__(data, *args, **kwargs)
        self._data = data

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        try:
            cleaned["filter"] = TraceFilter.parse(self._data, allow=self.PAGE_PARAMS, aliases=True)
        except FilterError as exc:
            for key, problems in exc.errors.items():
                for problem in problems:
                    self.add_error(key if key in self.fields else None, f"{key}: {problem}"
                                   if key not in self.fields else problem)
        order = cleaned.get("sort") or selectors.DEFAULT_ORDER
        cleaned["sort"] = order
        if cleaned.get("cursor"):
            try:
                cleaned["cursor"] = selectors.cursor_decode(order, cleaned["cursor"])
            except ValueError:
                self.add_error("cursor", "This page link is stale or was cut; start again from the first page.")
        else:
            cleaned["cursor"] = None
        return cleaned

    def trace_filter(self, now: datetime) -> TraceFilter:
        """The filter with its relative range resolved against `now`."""
        return self.cleaned_data["filter"].resolved(now)

    def active_range(self) -> str:
        data = getattr(self, "cleaned_data", {}) or {}
        trace_filter = data.get("filter")
        if trace_filter is None:
            return "all"
        if trace_filter.range:
            return trace_filter.range
        return "custom" if trace_filter.start_from or trace_filter.start_to else "all"

    def advanced_count(self) -> int:
        """How many filters hide behind "More filters", to say so on the closed toggle."""
        trace_filter = (getattr(self, "cleaned_data", {}) or {}).get("filter")
        if trace_filter is None:
            return 0
        return (
            sum(1 for value in (trace_filter.environment, trace_filter.release, trace_filter.prompt,
                                trace_filter.has_feedback) if value is not None)
            + len(trace_filter.scores) + len(trace_filter.metadata) + len(trace_filter.tags)
        )


def _results_context(access: ProjectAccess, form: TraceFilterForm) -> dict[str, Any]:
    """Rows, scores, pagination and any search notice for the current filters."""
    context: dict[str, Any] = {"rows": [], "next_cursor": None, "notice": None}
    if not form.is_valid():
        return context
    data = form.cleaned_data
    if data.get("similar_to"):
        trace = tracing_selectors.trace_get(project=access.project, trace_id=data["similar_to"].lower())
        similar = selectors.traces_similar(project=access.project, trace=trace) if trace else []
        if similar is None:
            context["notice"] = selectors.SEMANTIC_UNAVAILABLE
            return context
        context["rows"] = [(t, None) for t in similar]
        return context
    trace_filter = form.trace_filter(timezone.now())
    if trace_filter.search_mode == "semantic" and trace_filter.search:
        found = selectors.traces_semantic_search(project=access.project, text=trace_filter.search,
                                                 filters=trace_filter)
        if found is None:
            context["notice"] = selectors.SEMANTIC_UNAVAILABLE
            return context
        traces, next_cursor = found, None
    else:
        page = selectors.traces_list(
            project=access.project, filters=trace_filter, limit=PAGE_SIZE, cursor=data["cursor"], order=data["sort"]
        )
        traces, next_cursor = page.traces, page.next_cursor
        if trace_filter.search:
            context["search_mode"] = search.search_mode(trace_filter.search)
    scores = selectors.scores_by_trace(project=access.project, trace_ids=[t.trace_id for t in traces])
    context["rows"] = [(t, scores.get(t.trace_id)) for t in traces]
    context["next_cursor"] = next_cursor
    return context


def _filter_query(request: HttpRequest) -> str:
    """The filter part of the query string (no cursor), carried to trace pages."""
    params = request.GET.copy()
    params.pop("cursor", None)
    params.pop("span", None)
    return params.urlencode()


@project_page(Role.VIEWER)
def trace_list(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    form = TraceFilterForm(request.GET)
    context = {
        "form": form,
        "filter_query": _filter_query(request),
        **_results_context(access, form),
        "ranges": [(k, RANGE_LABELS[k]) for k in RANGES if k != "custom"],
        "sort_labels": SORT_LABELS,
        "status_choices": STATUS_CHOICES,
        "feedback_choices": [("", "Any feedback"), ("yes", "Has feedback"), ("no", "No feedback")],
    }
    if form.is_valid():
        context["sort"] = form.cleaned_data["sort"]
        context["active_range"] = form.active_range()
        context["meta_pairs"] = list(form.cleaned_data["filter"].metadata)
        context["tags"] = ", ".join(form.cleaned_data["filter"].tags)
        context["score_conditions"] = [str(c) for c in form.cleaned_data["filter"].scores]
        # "Review these traces in a queue": the filter alone, in its canonical form.
        if access.can(Role.MEMBER):
            context["queue_query"] = urlencode(form.cleaned_data["filter"].to_query())
    if request.htmx and request.GET.get("cursor"):
        # "Load more": only the next rows (and the next button), appended in place.
        return render(request, "explorer/_trace_rows.html", context)
    if request.htmx and request.htmx.target == "results":
        return render(request, "explorer/_trace_results.html", context)
    context["suggestions"] = selectors.filter_suggestions(project=access.project)
    return render(request, "explorer/trace_list.html", context)


def _trace_or_404(access: ProjectAccess, trace_id: str) -> selectors.TraceDetail:
    if len(trace_id) != 32:
        raise Http404("A trace id is 32 hex characters.")
    try:
        return selectors.trace_detail(project=access.project, trace_id=trace_id.lower(), with_scores=False)
    except NotFound as exc:
        raise Http404(exc.message) from None


def _annotation_panel() -> str | None:
    try:
        get_template(ANNOTATION_PANEL)
    except TemplateDoesNotExist:
        return None
    return ANNOTATION_PANEL


@project_page(Role.VIEWER)
def trace_detail(request: HttpRequest, access: ProjectAccess, trace_id: str) -> HttpResponse:
    detail = _trace_or_404(access, trace_id)
    trace = detail.trace
    tree = selectors.span_tree(trace=trace, spans=detail.spans)
    selected_id = request.GET.get("span") or trace.root_span_id
    selected = next((row for row in tree if row.span.span_id == selected_id), tree[0] if tree else None)
    score_panel = selectors.trace_score_panel(project=access.project, trace_id=trace.trace_id)

    form = TraceFilterForm(request.GET)
    neighbors = None
    if form.is_valid():
        neighbors = selectors.trace_neighbors(project=access.project, filters=form.trace_filter(timezone.now()),
                                              order=form.cleaned_data["sort"], trace=trace)
    context = {
        "trace": trace,
        "tree": tree,
        "selected": selected,
        "score_panel": score_panel,
        # The includes of lower apps (evaluators, annotation panel) reuse these instead
        # of reading the scores again.
        "scores": score_panel.scores,
        "neighbors": neighbors,
        "filter_query": _filter_query(request),
        "annotation_panel": _annotation_panel(),
        "can_annotate": access.can(Role.REVIEWER),
        "can_add_to_dataset": access.can(Role.MEMBER),
        "span_total": len(tree),
        # Time axis of the waterfall: 0, ¼, ½, ¾ of the trace (widths are % of it too).
        "axis": [(pct, trace.latency_ms * pct / 100) for pct in (0, 25, 50, 75)],
    }
    return render(request, "explorer/trace_detail.html", context)


@project_page(Role.VIEWER)
def span_panel(request: HttpRequest, access: ProjectAccess, trace_id: str, span_id: str) -> HttpResponse:
    """One span's panel, swapped into the trace page by htmx when a row is chosen."""
    try:
        span = tracing_selectors.span_get(project=access.project, trace_id=trace_id.lower(), span_id=span_id.lower())
    except NotFound as exc:
        raise Http404(exc.message) from None
    trace = tracing_selectors.trace_get(project=access.project, trace_id=trace_id.lower())
    return render(request, "explorer/_span_panel.html", {"span": span, "trace": trace})


# --- sessions and users -------------------------------------------------------------------


class WindowForm(forms.Form):
    """Time range and cursor of the sessions and users lists."""

    range = forms.ChoiceField(choices=[(k, RANGE_LABELS[k]) for k in RANGES if k != "custom"], required=False)
    cursor = forms.CharField(required=False, max_length=400)

    DEFAULT_RANGE = "7d"  # aggregates scan the window: keep the default one bounded

    def clean_cursor(self) -> tuple[datetime, str] | None:
        token = self.cleaned_data.get("cursor")
        if not token:
            return None
        try:
            return selectors.keyset_token_decode(token)
        except ValueError:
            raise forms.ValidationError(
                "This page link is stale or was cut; start again from the first page."
            ) from None

    def start_from(self, now: datetime) -> datetime | None:
        delta = RANGES[self.cleaned_data.get("range") or self.DEFAULT_RANGE]
        return now - delta if delta else None


def _group_page(request: HttpRequest, access: ProjectAccess, list_fn: Any, template: str, rows_template: str):
    form = WindowForm(request.GET)
    page = selectors.GroupPage(rows=[], next_cursor=None)
    if form.is_valid():
        page = list_fn(
            project=access.project, start_from=form.start_from(timezone.now()), cursor=form.cleaned_data["cursor"]
        )
    context = {
        "form": form,
        "page": page,
        "ranges": [(k, RANGE_LABELS[k]) for k in RANGES if k != "custom"],
        "active_range": (form.cleaned_data.get("range") if form.is_valid() else None) or WindowForm.DEFAULT_RANGE,
    }
    if request.htmx and request.GET.get("cursor"):
        return render(request, rows_template, context)
    return render(request, template, context)


@project_page(Role.VIEWER)
def session_list(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    return _group_page(
        request, access, selectors.sessions_list, "explorer/session_list.html", "explorer/_session_rows.html"
    )


@project_page(Role.VIEWER)
def session_detail(request: HttpRequest, access: ProjectAccess, session_id: str) -> HttpResponse:
    try:
        session = selectors.session_detail(project=access.project, session_id=session_id)
    except NotFound as exc:
        raise Http404(exc.message) from None
    scores = selectors.scores_by_trace(project=access.project, trace_ids=[t.trace_id for t in session.turns])
    turns = [(t, scores.get(t.trace_id)) for t in session.turns]
    totals = {
        "cost": sum((t.cost_usd for t in session.turns if t.cost_usd is not None), start=0) if turns else None,
        "tokens": sum(t.total_tokens for t in session.turns),
        "duration_ms": (session.turns[-1].end_time - session.turns[0].start_time).total_seconds() * 1000,
        "users": sorted({t.user_id for t in session.turns if t.user_id}),
    }
    return render(request, "explorer/session_detail.html", {"session": session, "turns": turns, "totals": totals})


@project_page(Role.VIEWER)
def user_list(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    return _group_page(request, access, selectors.users_list, "explorer/user_list.html", "explorer/_user_rows.html")


USER_PAGE_TRACES = 25
USER_PAGE_SESSIONS = 10


@project_page(Role.VIEWER)
def user_detail(request: HttpRequest, access: ProjectAccess, user_id: str) -> HttpResponse:
    try:
        summary = selectors.user_summary(project=access.project, user_id=user_id)
    except NotFound as exc:
        raise Http404(exc.message) from None
    page = selectors.traces_list(
        project=access.project, filters=TraceFilter(user_id=user_id), limit=USER_PAGE_TRACES
    )
    scores = selectors.scores_by_trace(project=access.project, trace_ids=[t.trace_id for t in page.traces])
    sessions = selectors.sessions_list(project=access.project, user_id=user_id, limit=USER_PAGE_SESSIONS)
    context = {
        "summary": summary,
        "rows": [(t, scores.get(t.trace_id)) for t in page.traces],
        "more_traces": page.next_cursor is not None,
        "sessions": sessions,
        "filter_query": urlencode({"user_id": user_id}),
    }
    return render(request, "explorer/user_detail.html", context)
