from django.urls import path

from feedback import api

urlpatterns = [
    # End users' feedback and events (public key, browser-safe).
    path("api/v1/feedback", api.FeedbackView.as_view(), name="api-feedback"),
]
