"""Saved dashboards: a list per project, a dashboard page (its charts over the page's time
range and filter, like the overview), and the chart builder.

Viewers see; members create, add and delete (project_page answers 403 below member and
404 outside the project); another project's dashboard id is a 404 too.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from config.errors import Conflict
from dashboards import selectors, services
from dashboards.charts import ChartSpec, Series
from dashboards.forms import ChartForm, DashboardForm
from dashboards.models import Chart, SavedDashboard
from dashboards.views import charts_render, page_context, page_state
from explorer.filters import FilterError, TraceFilter
from projects.auth import ProjectAccess
from projects.models import Role
from projects.pages import project_page
from scores import names


def chart_spec(chart: Chart) -> ChartSpec:
    """A saved chart as the renderer's spec (the page supplies window and filter)."""
    try:
        own_filter = TraceFilter.parse({k: [v for key, v in chart.filters if key == k] for k, _ in chart.filters})
    except FilterError:
        own_filter = None  # stored before a filter rule changed: show the chart unfiltered rather than fail
    interval: str | None = chart.interval or None
    return ChartSpec(key=f"c{chart.pk}", title=chart.title, series=(Series(chart.measure, chart.agg),),
                     chart=chart.chart_type, group_by=tuple(chart.group_by), top=chart.top, interval=interval,
                     filter=own_filter)


def _dashboard_or_404(access: ProjectAccess, dashboard_id: int) -> SavedDashboard:
    dashboard = selectors.dashboard_get(project=access.project, dashboard_id=dashboard_id)
    if dashboard is None:
        raise Http404("No such dashboard in this project.")
    return dashboard


@project_page(Role.VIEWER)
def dashboard_list(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    form = DashboardForm()
    status = 200
    if request.method == "POST":
        if not access.can(Role.MEMBER):
            return HttpResponse("Creating dashboards needs the member role.", status=403)
        form = DashboardForm(request.POST)
        if form.is_valid():
            try:
                dashboard = services.dashboard_create(project=access.project, name=form.cleaned_data["name"],
                                                      description=form.cleaned_data["description"],
                                                      user=request.user)
            except Conflict as exc:
                form.add_error("name", exc.message)
            else:
                messages.success(request, f"Created {dashboard.name}. Add its first chart.")
                url = reverse("dashboards-chart-new", kwargs={"project_slug": access.project.slug,
                                                              "dashboard_id": dashboard.pk})
                prefill = _prefill_query(request)
                return redirect(f"{url}?{prefill}" if prefill else url)
        status = 400
    prefill = _prefill_query(request)
    context = {"dashboards": selectors.dashboards_for(project=access.project), "form": form,
               "can_edit": access.can(Role.MEMBER), "prefill": prefill,
               "prefill_title": request.GET.get("title") or request.POST.get("prefill_title", "")}
    return render(request, "dashboards/saved_list.html", context, status=status)


@project_page(Role.VIEWER)
def dashboard_detail(request: HttpRequest, access: ProjectAccess, dashboard_id: int) -> HttpResponse:
    dashboard = _dashboard_or_404(access, dashboard_id)
    state = page_state(request)
    context = page_context(request, access, state)
    context.update(dashboard=dashboard, can_edit=access.can(Role.MEMBER))
    if state.window is None:
        return render(request, "dashboards/saved_detail.html", context, status=400)
    charts = selectors.charts_of(dashboard=dashboard)
    context["charts"] = list(zip(charts, charts_render(access, state.window, [chart_spec(c) for c in charts]),
                                 strict=True))
    return render(request, "dashboards/saved_detail.html", context)


@project_page(Role.MEMBER)
def chart_new(request: HttpRequest, access: ProjectAccess, dashboard_id: int) -> HttpResponse:
    dashboard = _dashboard_or_404(access, dashboard_id)
    if request.method == "POST":
        form = ChartForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            services.chart_add(dashboard=dashboard, title=data["title"], measure=data["measure"], agg=data["agg"],
                               group_by=data["group_by"], top=data["top"], interval=data["interval"],
                               filters=data["filter_pairs"], chart_type=data["chart_type"], user=request.user)
            messages.success(request, f"Added {data['title']}.")
            return redirect("dashboards-saved-detail", project_slug=access.project.slug, dashboard_id=dashboard.pk)
        status = 400
    else:
        form = ChartForm(initial=_initial(request))
        status = 200
    score_names = sorted(names.REGISTRY)
    dimensions = selectors.metric_dimensions_recent(project=access.project)
    context = {"dashboard": dashboard, "form": form, "measures": selectors.MEASURES,
               "score_names": score_names, "dimensions": dimensions}
    return render(request, "dashboards/chart_new.html", context, status=status)


PREFILL_KEYS = ("title", "measure", "agg", "group_by_1", "group_by_2", "top", "interval", "filters", "chart_type")


def _initial(request: HttpRequest) -> dict:
    """Prefill from the query string ("Save to a dashboard" on the overview and cost pages)."""
    return {k: request.GET[k] for k in PREFILL_KEYS if k in request.GET}


def _prefill_query(request: HttpRequest) -> str:
    """The builder fields a "Save to a dashboard" link carries (query string, or the
    create form's hidden field), passed on unchanged: the builder validates them."""
    if request.method == "POST":
        return request.POST.get("prefill", "")[:4000]
    return urlencode([(k, request.GET[k]) for k in PREFILL_KEYS if k in request.GET])


@require_POST
@project_page(Role.MEMBER)
def chart_delete(request: HttpRequest, access: ProjectAccess, dashboard_id: int, chart_id: int) -> HttpResponse:
    dashboard = _dashboard_or_404(access, dashboard_id)
    chart = dashboard.charts.filter(pk=chart_id).first()
    if chart is None:
        raise Http404("No such chart on this dashboard.")
    services.chart_delete(chart=chart)
    messages.success(request, f"Removed {chart.title}.")
    return redirect("dashboards-saved-detail", project_slug=access.project.slug, dashboard_id=dashboard.pk)


@require_POST
@project_page(Role.MEMBER)
def dashboard_delete(request: HttpRequest, access: ProjectAccess, dashboard_id: int) -> HttpResponse:
    dashboard = _dashboard_or_404(access, dashboard_id)
    services.dashboard_delete(dashboard=dashboard)
    messages.success(request, f"Deleted {dashboard.name}.")
    return redirect("dashboards-saved-list", project_slug=access.project.slug)
