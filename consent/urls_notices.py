"""Purposes and the notice editor: staff URLs, mounted under /registry/ in the `consent` namespace."""

from django.urls import path

from . import views_notices

urlpatterns = [
    path("purposes/", views_notices.purpose_list, name="purposes"),
    path("purposes/add/", views_notices.purpose_add, name="purpose-add"),
    path("purposes/<int:pk>/settings/", views_notices.purpose_settings, name="purpose-settings"),
    path("purposes/<int:pk>/notices/", views_notices.notice_history, name="notice-history"),
    path("purposes/<int:pk>/notices/compare/", views_notices.notice_compare, name="notice-compare"),
    path("purposes/<int:pk>/notices/draft/", views_notices.notice_edit, name="notice-edit"),
    path("purposes/<int:pk>/notices/draft/discard/", views_notices.notice_discard, name="notice-discard"),
    path("purposes/<int:pk>/notices/draft/preview/", views_notices.notice_preview, name="notice-preview"),
    path("purposes/<int:pk>/notices/draft/publish/", views_notices.notice_publish, name="notice-publish"),
    path("notices/<int:pk>/", views_notices.notice_detail, name="notice"),
]
