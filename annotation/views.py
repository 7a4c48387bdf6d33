"""Annotation pages: the trace page's feedback panel (annotate, comment), score
configs, and queues (list, create, work through, export). Reviewers and up."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from functools import wraps
from typing import Any

import orjson
from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation import agreement, selectors, services
from annotation.models import AnnotationQueue, QueueMode
from config import errors
from explorer import selectors as explorer_selectors
from explorer.filters import FilterError, TraceFilter
from projects.auth import ProjectAccess
from projects.models import Role
from projects.pages import project_page
from scores import services as score_services
from scores.models import DataType, ScoreConfig
from tracing.models import Trace

_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")


_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")


def _pages_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Typed domain errors from services, as the HTTP errors a page answers with."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(*args, **kwargs)
        except errors.NotFound as exc:
            raise Http404(exc.message) from None
        except errors.PermissionDenied as exc:
            raise PermissionDenied(exc.message) from None

    return wrapper


def _trace_or_404(access: ProjectAccess, trace_id: str) -> Trace:
    if not _TRACE_ID.fullmatch(trace_id):
        raise Http404("Not a trace id.")
    trace = Trace.objects.filter(project=access.project, trace_id=trace_id.lower()).first()
    if trace is None:
        raise Http404("No such trace in this project.")
    return trace


def _values_from_post(request: HttpRequest, prefix: str = "score_") -> dict[int, str]:
    """{config id: raw value} from fields named score_<config id>."""
    values = {}
    for key, raw in request.POST.items():
        if key.startswith(prefix) and key[len(prefix) :].isdigit():
            values[int(key[len(prefix) :])] = raw.strip()
    return values


def _panel(
    request: HttpRequest, access: ProjectAccess, trace: Trace, *, error: str = "", status: int = 200,
    scores_changed: bool = False,
) -> HttpResponse:
    """The panel (htmx) or the panel's own page. Scores are listed in the explorer's
    "Scores & feedback" section, not in the panel: after a save, htmx gets that section
    too, out of band, so the trace page lists the score just saved."""
    context: dict[str, Any] = {"access": access, "trace": trace, "panel_error": error}
    scores = None
    if scores_changed or not request.htmx:
        score_panel = explorer_selectors.trace_score_panel(project=access.project, trace_id=trace.trace_id)
        scores = score_panel.scores
        context.update(score_panel=score_panel, scores=scores, can_annotate=access.can(Role.REVIEWER))
    context["fb"] = selectors.trace_feedback(
        project=access.project, trace_id=trace.trace_id, user=request.user, scores=scores
    )
    if request.htmx:
        context["refresh_scores"] = scores_changed
        return render(request, "annotation/_panel_body.html", context, status=status)
    return render(request, "annotation/trace_feedback.html", context, status=status)


@require_GET
@project_page(Role.VIEWER)
def trace_panel(request: HttpRequest, access: ProjectAccess, trace_id: str) -> HttpResponse:
    """The panel alone (htmx refresh), or as a page of its own without htmx."""
    return _panel(request, access, _trace_or_404(access, trace_id))


@require_POST
@project_page(Role.REVIEWER)
def trace_annotate(request: HttpRequest, access: ProjectAccess, trace_id: str) -> HttpResponse:
    trace = _trace_or_404(access, trace_id)
    span_id = request.POST.get("span_id") or None
    if span_id is not None and not _SPAN_ID.fullmatch(span_id):
        return _panel(request, access, trace, error="Choose a span of this trace.", status=400)
    try:
        services.trace_annotate(
            project=access.project,
            trace_id=trace.trace_id,
            span_id=span_id.lower() if span_id else None,
            author=request.user,
            values=_values_from_post(request),
            comment=request.POST.get("comment", "").strip(),
        )
    except errors.ValidationFailed as exc:
        # htmx swaps only 2xx answers by default; the panel shows the message either way.
        return _panel(request, access, trace, error=exc.message, status=200 if request.htmx else 400)
    return _panel(request, access, trace, scores_changed=True)


@require_POST
@project_page(Role.REVIEWER)
def trace_comment(request: HttpRequest, access: ProjectAccess, trace_id: str) -> HttpResponse:
    trace = _trace_or_404(access, trace_id)
    parent = request.POST.get("parent_id") or None
    span_id = request.POST.get("span_id") or None
    if (parent is not None and not parent.isdigit()) or (span_id is not None and not _SPAN_ID.fullmatch(span_id)):
        return _panel(request, access, trace, error="Bad reply or span reference.", status=400)
    try:
        services.comment_create(
            project=access.project,
            trace_id=trace.trace_id,
            author=request.user,
            body=request.POST.get("body", ""),
            span_id=span_id.lower() if span_id else None,
            parent_id=int(parent) if parent else None,
        )
    except errors.ValidationFailed as exc:
        return _panel(request, access, trace, error=exc.message, status=200 if request.htmx else 400)
    except errors.NotFound as exc:
        raise Http404(exc.message) from None
    return _panel(request, access, trace)


class ScoreConfigForm(forms.Form):
    name = forms.SlugField(max_length=100, help_text="e.g. tone, hallucination")
    data_type = forms.ChoiceField(
        choices=[(DataType.NUMERIC, "numeric"), (DataType.CATEGORICAL, "categorical"), (DataType.BOOLEAN, "boolean")]
    )
    min_value = forms.FloatField(required=False)
    max_value = forms.FloatField(required=False)
    categories = forms.CharField(required=False, help_text="Comma-separated, for categorical")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


@require_http_methods(["GET", "POST"])
@project_page(Role.VIEWER)
@_pages_errors
def config_list(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    """Score configs: everyone reads them (archived too); members add and archive."""
    form = ScoreConfigForm()
    if request.method == "POST":
        access.require(Role.MEMBER)
        if "archive" in request.POST or "restore" in request.POST:
            config_id = request.POST.get("archive") or request.POST.get("restore")
            if not str(config_id).isdigit():
                raise Http404("No such config.")
            score_services.score_config_set_archived(
                project=access.project, config_id=int(config_id), archived="archive" in request.POST
            )
            return redirect("annotation-config-list", project_slug=access.project.slug)
        form = ScoreConfigForm(request.POST)
        if form.is_valid():
            d = form.cleaned_data
            try:
                score_services.score_config_create(
                    project=access.project,
                    name=d["name"],
                    data_type=d["data_type"],
                    min_value=d["min_value"],
                    max_value=d["max_value"],
                    categories=d["categories"].split(","),
                    description=d["description"],
                )
            except (errors.ValidationFailed, errors.Conflict) as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Score config {d['name']} created.")
                return redirect("annotation-config-list", project_slug=access.project.slug)
    configs = selectors.score_configs(project=access.project, include_archived=True)
    return render(
        request,
        "annotation/configs.html",
        {"configs": configs, "form": form, "can_edit": access.can(Role.MEMBER)},
        status=400 if form.errors else 200,
    )


@require_GET
@project_page(Role.VIEWER)
def queue_list(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    queues = selectors.queues_list(project=access.project)
    return render(
        request,
        "annotation/queue_list.html",
        {"queues": queues, "can_create": access.can(Role.MEMBER), "can_review": access.can(Role.REVIEWER)},
    )


class QueueForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    mode = forms.ChoiceField(choices=QueueMode.choices, initial=QueueMode.SINGLE, widget=forms.RadioSelect)
    configs = forms.TypedMultipleChoiceField(coerce=int, required=False, widget=forms.CheckboxSelectMultiple)
    assignees = forms.TypedMultipleChoiceField(coerce=int, required=False, widget=forms.CheckboxSelectMultiple)
    reviews_per_item = forms.IntegerField(min_value=1, max_value=10, initial=1)
    # Which traces: the trace explorer's filter, written as its query string (the same
    # language as the explorer URL and the API; explorer/filters.py).
    traces = forms.CharField(
        required=False, max_length=4000, label="Trace filter",
        widget=forms.TextInput(attrs={"placeholder": "range=7d&score=user_thumbs=0", "class": "grow"}),
        help_text="The explorer's query string; empty = every trace.",
    )
    sample = forms.ChoiceField(choices=[("newest", "Newest first"), ("random", "Random sample")], initial="newest")
    size = forms.IntegerField(min_value=1, max_value=services.MAX_QUEUE_ITEMS, initial=50, label="Number of items")
    # Pairwise: two traces with the same input that differ in one field.
    split_field = forms.ChoiceField(
        choices=[(f, f) for f in selectors.PAIR_FIELDS], required=False, initial="prompt_version"
    )
    value_a = forms.CharField(required=False, max_length=256, label="A =")
    value_b = forms.CharField(required=False, max_length=256, label="B =")

    def __init__(self, *args: Any, configs: list[ScoreConfig], reviewers: list[Any], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["configs"].choices = [(c.pk, c.name) for c in configs]
        self.fields["assignees"].choices = [(u.pk, u.get_username()) for u in reviewers]
        self.config_objects = {c.pk: c for c in configs}

    def clean_traces(self) -> TraceFilter:
        text = self.cleaned_data.get("traces", "").strip().lstrip("?")
        try:
            trace_filter = TraceFilter.parse(QueryDict(text), aliases=True)
        except FilterError as exc:
            raise forms.ValidationError(exc.message) from None
        if trace_filter.search_mode == "semantic":
            raise forms.ValidationError("mode=semantic ranks traces rather than filtering them; use words (mode=text).")
        return trace_filter

    def clean(self) -> dict[str, Any]:
        d = super().clean()
        if d.get("mode") == QueueMode.PAIRWISE:
            if not d.get("value_a") or not d.get("value_b"):
                self.add_error("value_b", "Pairwise queues compare two values of the split field.")
            elif d["value_a"] == d["value_b"]:
                self.add_error("value_b", "A and B must differ.")
        elif not d.get("configs"):
            self.add_error("configs", "Choose at least one score config.")
        return d

    def describe(self) -> dict[str, Any]:
        """What the queue was built from, kept on the queue for its page: the filter (in
        the explorer's parameters), how many, and the pairwise split."""
        d = self.cleaned_data
        described: dict[str, Any] = {**d["traces"].as_dict(), "sample": d["sample"], "size": d["size"]}
        if d.get("mode") == QueueMode.PAIRWISE:
            described.update({k: d[k] for k in ("split_field", "value_a", "value_b")})
        return described


@require_http_methods(["GET", "POST"])
@project_page(Role.MEMBER)
def queue_new(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    configs = list(selectors.score_configs(project=access.project))
    reviewers = selectors.queue_reviewer_candidates(project=access.project)
    # From the explorer ("Review these traces"): its query string pre-fills the filter
    # (validated, like anything typed there, when the form is sent).
    form = QueueForm(request.POST or None, configs=configs, reviewers=reviewers,
                     initial={"traces": request.GET.urlencode()})
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        if d["mode"] == QueueMode.PAIRWISE:
            pairs = selectors.queue_pair_candidates(
                project=access.project,
                filters=d["traces"],
                split_field=d["split_field"] or "prompt_version",
                value_a=d["value_a"],
                value_b=d["value_b"],
                limit=d["size"],
            )
            items: list[tuple[str, str | None]] = list(pairs)
        else:
            items = [
                (tid, None)
                for tid in selectors.queue_candidates(
                    project=access.project, filters=d["traces"], sample=d["sample"], limit=d["size"]
                )
            ]
        try:
            queue = services.queue_create(
                project=access.project,
                name=d["name"],
                description=d["description"],
                mode=d["mode"],
                created_by=request.user,
                items=items,
                config_ids=d["configs"],
                assignee_ids=d["assignees"],
                reviews_per_item=d["reviews_per_item"],
                source_filter=form.describe(),
            )
        except errors.ValidationFailed as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Queue “{queue.name}” created with {queue.items.count()} items.")
            return redirect("annotation-queue-detail", project_slug=access.project.slug, queue_id=queue.pk)
    return render(request, "annotation/queue_new.html", {"form": form}, status=400 if form.errors else 200)


@require_GET
@project_page(Role.VIEWER)
@_pages_errors
def queue_detail(request: HttpRequest, access: ProjectAccess, queue_id: int) -> HttpResponse:
    queue = selectors.queue_get(project=access.project, queue_id=queue_id)
    configs = list(queue.score_configs.all())
    may_review = access.can(Role.REVIEWER)
    assignees = list(queue.assignees.all())
    if assignees and request.user not in assignees:
        may_review = False
    return render(
        request,
        "annotation/queue_detail.html",
        {
            "queue": queue,
            "configs": configs,
            "assignees": assignees,
            "progress": selectors.queue_progress(queue=queue),
            "agreement": agreement.queue_agreement(configs, selectors.queue_ratings(queue=queue)),
            "may_review": may_review,
        },
    )


def _queue_for_reviewer(access: ProjectAccess, request: HttpRequest, queue_id: int) -> AnnotationQueue:
    queue = selectors.queue_get(project=access.project, queue_id=queue_id)
    services.queue_check_reviewer(queue=queue, user=request.user, role=access.role)
    return queue


@require_http_methods(["GET", "POST"])
@project_page(Role.REVIEWER)
@_pages_errors
def queue_review(request: HttpRequest, access: ProjectAccess, queue_id: int) -> HttpResponse:
    """Claim the reviewer's next item and go there; or say the queue is finished."""
    queue = _queue_for_reviewer(access, request, queue_id)
    item = services.queue_claim_next(queue=queue, reviewer=request.user)
    if item is None:
        return render(
            request, "annotation/review_done.html", {"queue": queue, "progress": selectors.queue_progress(queue=queue)}
        )
    return redirect("annotation-queue-item", project_slug=access.project.slug, queue_id=queue.pk, item_id=item.pk)


def _review_page(
    request: HttpRequest,
    access: ProjectAccess,
    queue: AnnotationQueue,
    item_id: int,
    *,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    item = queue.items.filter(pk=item_id).first()
    if item is None:
        raise Http404("No such item in this queue.")
    context = selectors.review_context(queue=queue, item=item, reviewer=request.user)
    if error:
        # Keep what the reviewer chose, so a missing value costs one key, not the form.
        context.values.update({k: v for k, v in _values_from_post(request).items() if v})
        context.comment = request.POST.get("comment", context.comment)
        context.correction = request.POST.get("correction", context.correction)
    configs = [{"config": c, "value": context.values.get(c.pk, ""), "options": c.options()} for c in context.configs]
    progress = selectors.queue_progress(queue=queue)
    me = request.user.get_username()
    return render(
        request,
        "annotation/review_item.html",
        {
            "queue": queue,
            "ctx": context,
            "configs": configs,
            "progress": progress,
            "my_done": next((r.done for r in progress.reviewers if r.username == me), 0),
            "review_error": error,
            "pairwise": queue.mode == QueueMode.PAIRWISE,
        },
        status=status,
    )


@require_GET
@project_page(Role.REVIEWER)
@_pages_errors
def queue_item(request: HttpRequest, access: ProjectAccess, queue_id: int, item_id: int) -> HttpResponse:
    queue = _queue_for_reviewer(access, request, queue_id)
    try:
        services.queue_claim_item(queue=queue, item_id=item_id, reviewer=request.user)
    except errors.Conflict:
        messages.info(request, "Someone else is reviewing that item; here is the next one.")
        return redirect("annotation-queue-review", project_slug=access.project.slug, queue_id=queue.pk)
    return _review_page(request, access, queue, item_id)


@require_POST
@project_page(Role.REVIEWER)
@_pages_errors
def queue_item_submit(request: HttpRequest, access: ProjectAccess, queue_id: int, item_id: int) -> HttpResponse:
    queue = _queue_for_reviewer(access, request, queue_id)
    try:
        services.queue_item_submit(
            queue=queue,
            item_id=item_id,
            reviewer=request.user,
            values=_values_from_post(request),
            comment=request.POST.get("comment", "").strip(),
            # Absent (an old form) leaves the correction alone; an empty box clears it.
            correction=request.POST.get("correction"),
        )
    except errors.ValidationFailed as exc:
        return _review_page(request, access, queue, item_id, error=exc.message, status=400)
    except errors.Conflict as exc:
        messages.info(request, exc.message)
    return redirect("annotation-queue-review", project_slug=access.project.slug, queue_id=queue.pk)


@require_POST
@project_page(Role.REVIEWER)
@_pages_errors
def queue_item_skip(request: HttpRequest, access: ProjectAccess, queue_id: int, item_id: int) -> HttpResponse:
    queue = _queue_for_reviewer(access, request, queue_id)
    services.queue_item_skip(queue=queue, item_id=item_id, reviewer=request.user)
    return redirect("annotation-queue-review", project_slug=access.project.slug, queue_id=queue.pk)


EXPORT_FIELDS = (
    "position",
    "trace_id",
    "pair_trace_id",
    "reviewer",
    "config",
    "value",
    "string_value",
    "comment",
    "reviewed_at",
)


@require_GET
@project_page(Role.VIEWER)
@_pages_errors
def queue_export(request: HttpRequest, access: ProjectAccess, queue_id: int, fmt: str) -> HttpResponse:
    """A queue's completed reviews: one row per item, reviewer and score config."""
    if fmt not in ("csv", "jsonl"):
        raise Http404("Export as .csv or .jsonl.")
    queue = selectors.queue_get(project=access.project, queue_id=queue_id)
    rows = [
        {f: getattr(row, f) for f in EXPORT_FIELDS} | {"reviewed_at": row.reviewed_at.isoformat()}
        for row in selectors.queue_results(queue=queue)
    ]
    filename = f"queue-{queue.pk}-results.{fmt}"
    if fmt == "jsonl":
        body = b"".join(orjson.dumps(row) + b"\n" for row in rows)
        response = HttpResponse(body, content_type="application/x-ndjson")
    else:
        buffer = io.StringIO()
        # Spreadsheets run cells starting with = + - @ as formulas; reviewer comments
        # are free text, so neutralize them (OWASP "CSV injection").
        for row in rows:
            if isinstance(row["comment"], str) and row["comment"][:1] in ("=", "+", "-", "@"):
                row["comment"] = "'" + row["comment"]
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
