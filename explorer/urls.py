from django.urls import path

from explorer import api, views

P = "p/<slug:project_slug>/"

urlpatterns = [
    path("api/v1/traces", api.TraceListView.as_view(), name="api-trace-list"),
    path("api/v1/traces/<str:trace_id>", api.TraceDetailView.as_view(), name="api-trace-detail"),
    path(P + "traces/", views.trace_list, name="trace-list"),
    path(P + "traces/<str:trace_id>/", views.trace_detail, name="trace-detail"),
    path(P + "traces/<str:trace_id>/spans/<str:span_id>/", views.span_panel, name="span-panel"),
    path(P + "sessions/", views.session_list, name="session-list"),
    # <path:>: session and user ids are the application's own strings and may hold "/".
    path(P + "sessions/<path:session_id>/", views.session_detail, name="session-detail"),
    path(P + "users/", views.user_list, name="user-list"),
    path(P + "users/<path:user_id>/", views.user_detail, name="user-detail"),
]
