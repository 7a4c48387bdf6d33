from django.urls import path

from dashboards import api

urlpatterns = [
    path("api/v1/metrics", api.MetricsView.as_view(), name="api-metrics"),
    path("api/v1/metrics/dimensions", api.MetricDimensionsView.as_view(), name="api-metric-dimensions"),
]
