"""The import pages: staff URLs, mounted under /registry/ in the `consent` namespace."""

from django.urls import path

from . import views_imports

urlpatterns = [
    path("schools/<int:school_pk>/imports/", views_imports.import_list, name="imports"),
    path("schools/<int:school_pk>/imports/new/", views_imports.import_new, name="import-new"),
    path("schools/<int:school_pk>/imports/columns/", views_imports.import_columns, name="import-columns"),
    path("schools/<int:school_pk>/imports/template.csv", views_imports.import_template, name="import-template"),
    path("imports/<int:pk>/", views_imports.import_detail, name="import"),
    path("imports/<int:pk>/progress/", views_imports.import_progress, name="import-progress"),
    path("imports/<int:pk>/confirm/", views_imports.import_confirm, name="import-confirm"),
    path("imports/<int:pk>/discard/", views_imports.import_discard, name="import-discard"),
]
