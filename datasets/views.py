"""Dataset pages under /p/<project_slug>/datasets/.

Anyone in the project reads; members and admins write (create, add, split, upload).
Each view validates input, calls one service or selector, and renders or redirects.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from annotation.selectors import queue_get, queue_reviewed_trace_ids, trace_corrections
from config.errors import DomainError, NotFound, ValidationFailed
from datasets import export, selectors, services
from datasets.models import Dataset
from explorer.filters import FilterError, TraceFilter
from projects.auth import ProjectAccess
from projects.models import Role
from projects.pages import project_page
from tracing.models import Trace

ITEMS_ON_PAGE = 50
UPLOAD_MAX_BYTES = 50 * 1024 * 1024
# Page parameters next to the explorer filter on the bulk-add page.
BULK_PARAMS = frozenset({"dataset", "new_name", "limit", "project", "sort", "cursor"})


def _dataset_or_404(access: ProjectAccess, name: str) -> Dataset:
    try:
        return selectors.dataset_get(project=access.project, name=name)
    except NotFound as exc:
        raise Http404(exc.message) from None


def _detail(access: ProjectAccess, dataset: Dataset) -> HttpResponse:
    return redirect("datasets-detail", access.project.slug, dataset.name)


class DatasetForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="Letters, digits, '.', '_' or '-'.")
    description = forms.CharField(max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 2}))


@project_page(Role.VIEWER)
@require_http_methods(["GET", "POST"])
def dataset_list(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    form = DatasetForm(request.POST or None)
    if request.method == "POST":
        if not access.can(Role.MEMBER):
            _deny(access)
        if form.is_valid():
            try:
                dataset = services.dataset_create(project=access.project, name=form.cleaned_data["name"],
                                                  description=form.cleaned_data["description"], user=request.user)
            except DomainError as exc:
                form.add_error("name", exc.message)
            else:
                return _detail(access, dataset)
    return render(request, "datasets/list.html", {
        "rows": selectors.datasets_with_counts(project=access.project), "form": form,
        "can_edit": access.can(Role.MEMBER)})


def _deny(access: ProjectAccess) -> None:
    raise PermissionDenied(f"This needs the member role in {access.project.name}.")


@project_page(Role.VIEWER)
def dataset_detail(request: HttpRequest, access: ProjectAccess, dataset_name: str) -> HttpResponse:
    dataset = _dataset_or_404(access, dataset_name)
    try:
        number = selectors.version_number(dataset, request.GET.get("version"))
        after = int(request.GET["after"]) if request.GET.get("after") else None
    except (DomainError, ValueError) as exc:
        raise Http404(getattr(exc, "message", "No such version or page.")) from None
    page = selectors.items_page(dataset=dataset, number=number, after=after, limit=ITEMS_ON_PAGE)
    version = selectors.version_get(dataset, number) if number else None
    api_base = reverse("api-dataset-export", args=[dataset.name])
    exports = [(fmt, f"{api_base}?" + urlencode({"format": fmt, "version": number, "project": access.project.slug}))
               for fmt in export.FORMATS]
    return render(request, "datasets/detail.html", {
        "dataset": dataset, "number": number, "version": version, "page": page,
        "versions": selectors.versions_of(dataset=dataset), "splits": selectors.split_counts(dataset=dataset,
                                                                                          number=number),
        "metadata_keys": selectors.metadata_keys(dataset=dataset, number=number), "exports": exports,
        "export_url": api_base, "can_edit": access.can(Role.MEMBER),
        "explorer_url": reverse("trace-list", args=[access.project.slug]),
    })


@project_page(Role.MEMBER)
@require_POST
def dataset_split(request: HttpRequest, access: ProjectAccess, dataset_name: str) -> HttpResponse:
    dataset = _dataset_or_404(access, dataset_name)
    try:
        fraction = float(request.POST.get("test_fraction", ""))
    except ValueError:
        fraction = -1.0
    try:
        version = services.split_set(dataset=dataset, test_fraction=fraction,
                                     stratify_by=request.POST.get("stratify_by", "").strip() or None,
                                     user=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Version {version.number}: the same items with a new train/test split.")
    return _detail(access, dataset)


@project_page(Role.MEMBER)
@require_POST
def dataset_upload(request: HttpRequest, access: ProjectAccess, dataset_name: str) -> HttpResponse:
    dataset = _dataset_or_404(access, dataset_name)
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "Choose a CSV or JSONL file to upload.")
        return _detail(access, dataset)
    if upload.size > UPLOAD_MAX_BYTES:
        messages.error(request, f"The file is larger than {UPLOAD_MAX_BYTES // 1024 // 1024} MB.")
        return _detail(access, dataset)
    fmt = "jsonl" if upload.name.lower().endswith((".jsonl", ".json", ".ndjson")) else "csv"
    mapping = services.ColumnMapping(
        input=request.POST.get("input_column", "").strip() or "input",
        expected_output=request.POST.get("expected_column", "").strip() or None,
        metadata=tuple(c.strip() for c in request.POST.get("metadata_columns", "").split(",") if c.strip()))
    try:
        items = services.upload_parse(data=upload.read(), fmt=fmt, mapping=mapping)
        result = services.items_add(dataset=dataset, items=items, user=request.user,
                                    change={"kind": "upload", "file": upload.name[:200], "format": fmt})
    except DomainError as exc:
        messages.error(request, f"{upload.name}: {exc.message}. Nothing was imported.")
    else:
        messages.success(request, _added_message(result))
    return _detail(access, dataset)


def _added_message(result: services.AddResult) -> str:
    if result.version is None:
        return f"Nothing new: {result.duplicates} duplicate input(s) skipped; still version " \
               f"{result.dataset.current_version}."
    text = f"Version {result.version.number}: {result.added} item(s) added"
    if result.duplicates:
        text += f", {result.duplicates} duplicate input(s) skipped"
    if result.without_input:
        text += f", {result.without_input} trace(s) without input left out"
    if result.corrected:
        text += f"; {result.corrected} take a reviewer's corrected answer as expected output"
    return text + "."


def _target(access: ProjectAccess, data: Any, user: Any) -> Dataset:
    """The chosen dataset, or a new one named in `new_name`."""
    new_name = (data.get("new_name") or "").strip()
    if new_name:
        return services.dataset_create(project=access.project, name=new_name, user=user)
    name = data.get("dataset") or ""
    if not name:
        raise ValidationFailed("Choose a dataset or name a new one.")
    return selectors.dataset_get(project=access.project, name=name)


@project_page(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def bulk_add(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    """Add the traces of the explorer's current filter (carried in the query string)."""
    error = None
    try:
        trace_filter = TraceFilter.parse(request.GET, allow=BULK_PARAMS, aliases=True)
        if trace_filter.search_mode == "semantic":
            raise FilterError({"mode": ["semantic search ranks traces, it does not select them; use text"]})
    except FilterError as exc:
        trace_filter, error = None, exc.message
    data = request.POST if request.method == "POST" else request.GET
    try:
        cap = services.filter_cap(data.get("limit"))
    except DomainError as exc:
        cap, error = services.FILTER_CAP_DEFAULT, exc.message
    if request.method == "POST" and trace_filter is not None and error is None:
        try:
            dataset = _target(access, request.POST, request.user)
            result = services.items_add_filter(dataset=dataset, trace_filter=trace_filter, cap=cap,
                                               user=request.user)
        except DomainError as exc:
            error = exc.message
        else:
            messages.success(request, _added_message(result))
            return _detail(access, dataset)
    preview = services.filter_preview(project=access.project, trace_filter=trace_filter, cap=cap) \
        if trace_filter is not None else None
    filter_query = urlencode(trace_filter.to_query()) if trace_filter is not None else ""
    return render(request, "datasets/bulk_add.html", {
        "preview": preview, "cap": cap, "error": error, "filter_query": filter_query,
        "filter_pairs": trace_filter.to_query() if trace_filter is not None else [],
        "datasets": selectors.datasets_for(project=access.project), "chosen": data.get("dataset", ""),
        "cap_max": services.FILTER_CAP_MAX,
    }, status=400 if error and request.method == "POST" else 200)


@project_page(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def add_trace(request: HttpRequest, access: ProjectAccess, trace_id: str) -> HttpResponse:
    """The trace page's "Add to dataset", with the option to take a reviewer's corrected
    answer as the expected output instead of the trace's own answer."""
    trace = Trace.objects.filter(project=access.project, trace_id=trace_id.lower()).first()
    if trace is None:
        raise Http404("No such trace in this project.")
    correction = trace_corrections(project=access.project, trace_id=trace.trace_id).select_related("author").first()
    error = None
    if request.method == "POST":
        try:
            dataset = _target(access, request.POST, request.user)
            result = services.items_add_traces(dataset=dataset, trace_ids=[trace.trace_id], user=request.user,
                                               use_corrections=request.POST.get("use_correction") == "on")
        except DomainError as exc:
            error = exc.message
        else:
            messages.success(request, _added_message(result))
            return _detail(access, dataset)
    return render(request, "datasets/add_trace.html", {
        "trace": trace, "datasets": selectors.datasets_for(project=access.project), "error": error,
        "correction": correction,
    }, status=400 if error else 200)


@project_page(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def add_queue(request: HttpRequest, access: ProjectAccess, queue_id: int) -> HttpResponse:
    """An annotation queue's results into a dataset: its reviewed traces, or only the
    ones a reviewer corrected, with corrections as expected outputs."""
    try:
        queue = queue_get(project=access.project, queue_id=queue_id)
    except NotFound as exc:
        raise Http404(exc.message) from None
    error = None
    reviewed = len(queue_reviewed_trace_ids(queue=queue))
    corrected = len(queue_reviewed_trace_ids(queue=queue, only_corrected=True))
    if request.method == "POST":
        only_corrected = request.POST.get("only_corrected") == "on"
        try:
            # Checked before a new dataset is created for nothing.
            if not (corrected if only_corrected else reviewed):
                raise ValidationFailed("No reviewed item " + ("has a corrected answer" if only_corrected else "yet")
                                       + " in this queue: nothing to add.")
            dataset = _target(access, request.POST, request.user)
            result = services.items_add_queue(dataset=dataset, queue=queue, user=request.user,
                                              only_corrected=only_corrected,
                                              use_corrections=request.POST.get("use_corrections") == "on")
        except DomainError as exc:
            error = exc.message
        else:
            messages.success(request, _added_message(result))
            return _detail(access, dataset)
    return render(request, "datasets/add_queue.html", {
        "queue": queue, "datasets": selectors.datasets_for(project=access.project), "error": error,
        "reviewed": reviewed, "corrected": corrected, "chosen": request.POST.get("dataset", ""),
    }, status=400 if error else 200)
