"""The register's CSV and PDF exports: staff URLs, mounted under /registry/ in the `consent` namespace."""

from django.urls import path

from . import views_exports

urlpatterns = [
    path("schools/<int:school_pk>/register.csv", views_exports.register_csv, name="register-csv"),
    path("schools/<int:school_pk>/register.pdf", views_exports.register_pdf_view, name="register-pdf"),
]
