"""Outputs and platforms: the PDF, the parent-facing privacy notice, the platform register, action plan."""

from django.urls import path

from . import views_outputs

urlpatterns: list = [
    path("versions/<int:pk>/pdf/", views_outputs.version_pdf, name="version-pdf"),
    path("versions/<int:pk>/privacy-notice/", views_outputs.notice, name="notice"),
    path("platforms/", views_outputs.platform_list, name="platforms"),
    path("organisations/<int:organisation_pk>/platforms/new/", views_outputs.platform_new, name="platform-new"),
    path("platforms/<int:pk>/edit/", views_outputs.platform_edit, name="platform-edit"),
    path("platforms/<int:pk>/remove/", views_outputs.platform_remove, name="platform-remove"),
    path("actions/", views_outputs.action_list, name="actions"),
    path("actions/<int:pk>/done/", views_outputs.action_done, name="action-done"),
]
