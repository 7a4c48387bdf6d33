"""URL map. Each app's urls.py holds its full paths: `api/v1/...` for the REST API and
`p/<project_slug>/...` for project pages (resolved by projects.pages.project_page)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import api as _api_schema  # noqa: F401  (registers the secret-key scheme)
from config import health, prometheus
from tracing.otlp import receiver

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("metrics", prometheus.metrics, name="prometheus-metrics"),
    # OTLP/HTTP receiver, at the standard collector paths.
    path("v1/traces", receiver.otlp_traces, name="otlp-traces"),
    path("v1/logs", receiver.otlp_logs, name="otlp-logs"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("projects.urls")),
    path("", include("tracing.urls")),
    path("", include("explorer.urls")),
    path("", include("scores.urls")),
    path("", include("feedback.urls")),
    path("", include("annotation.urls")),
    path("", include("evaluation.urls")),
    path("", include("prompts.urls")),
    path("", include("dashboards.urls")),
    path("", include("alerts.urls")),
    path("", include("slices.urls")),
    path("", include("drift.urls")),
    path("", include("datasets.urls")),
    path("", include("experiments.urls")),
    path("", include("retention.urls")),
    path("admin/", admin.site.urls),
]

handler404 = "config.exception_handler.api_not_found"
