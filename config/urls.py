from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import health
from tracing import views as tracing_views

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    # OTLP/HTTP receiver, at the standard collector paths.
    path("v1/traces", tracing_views.otlp_traces, name="otlp-traces"),
    path("v1/logs", tracing_views.otlp_logs, name="otlp-logs"),
    # REST API
    path("api/v1/", include("tracing.urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Pages
    path("", include("projects.urls")),
    path("admin/", admin.site.urls),
]
