"""Consent requests and reminders: staff URLs, mounted under /registry/ in the `consent` namespace."""

from django.urls import path

from . import views_requests

urlpatterns = [
    path("schools/<int:school_pk>/requests/", views_requests.request_list, name="requests"),
    path("schools/<int:school_pk>/requests/send/", views_requests.requests_send, name="requests-send"),
]
