from django.urls import path

from dashboards import api, views

P = "p/<slug:project_slug>/"

urlpatterns = [
    path("api/v1/metrics", api.MetricsView.as_view(), name="api-metrics"),
    path("api/v1/metrics/dimensions", api.MetricDimensionsView.as_view(), name="api-metric-dimensions"),
    path(P + "overview/", views.overview, name="dashboards-overview"),
    path(P + "cost/", views.cost, name="dashboards-cost"),
    path(P + "dashboards/data.csv", views.chart_csv, name="dashboards-csv"),
]
