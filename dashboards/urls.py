from django.urls import path

from dashboards import api, saved_views, views

P = "p/<slug:project_slug>/"

urlpatterns = [
    path("api/v1/metrics", api.MetricsView.as_view(), name="api-metrics"),
    path("api/v1/metrics/dimensions", api.MetricDimensionsView.as_view(), name="api-metric-dimensions"),
    path("api/v1/dashboards", api.DashboardListView.as_view(), name="api-dashboards"),
    path("api/v1/dashboards/<int:dashboard_id>", api.DashboardDetailView.as_view(), name="api-dashboard-detail"),
    path("api/v1/dashboards/<int:dashboard_id>/charts", api.ChartCreateView.as_view(), name="api-dashboard-charts"),
    path("api/v1/dashboards/<int:dashboard_id>/charts/<int:chart_id>", api.ChartDeleteView.as_view(),
         name="api-dashboard-chart-delete"),
    path(P + "overview/", views.overview, name="dashboards-overview"),
    path(P + "cost/", views.cost, name="dashboards-cost"),
    path(P + "dashboards/data.csv", views.chart_csv, name="dashboards-csv"),
]

urlpatterns += [
    path(P + "dashboards/", saved_views.dashboard_list, name="dashboards-saved-list"),
    path(P + "dashboards/<int:dashboard_id>/", saved_views.dashboard_detail, name="dashboards-saved-detail"),
    path(P + "dashboards/<int:dashboard_id>/charts/new/", saved_views.chart_new, name="dashboards-chart-new"),
    path(P + "dashboards/<int:dashboard_id>/charts/<int:chart_id>/delete/", saved_views.chart_delete,
         name="dashboards-chart-delete"),
    path(P + "dashboards/<int:dashboard_id>/delete/", saved_views.dashboard_delete, name="dashboards-saved-delete"),
]
