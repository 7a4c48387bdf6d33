from django.urls import path

from tracing import api

urlpatterns = [
    path("api/v1/traces", api.TraceListView.as_view(), name="api-trace-list"),
    path("api/v1/traces/<str:trace_id>", api.TraceDetailView.as_view(), name="api-trace-detail"),
]
