"""Outputs: the PDF, the CSV export, the heat maps."""

from django.urls import path

from . import views_outputs

urlpatterns = [
    path("versions/<int:pk>/pdf/", views_outputs.version_pdf, name="version-pdf"),
    path("versions/<int:pk>/heat-map/", views_outputs.version_heatmap, name="version-heatmap"),
    path("schools/<int:school_pk>/heat-map/", views_outputs.school_heatmap, name="school-heatmap"),
    path("organisations/<int:organisation_pk>/heat-map/", views_outputs.organisation_heatmap,
         name="organisation-heatmap"),
    path("schools/<int:school_pk>/register.csv", views_outputs.school_register_csv, name="school-register-csv"),
    path("organisations/<int:organisation_pk>/register.csv", views_outputs.organisation_register_csv,
         name="organisation-register-csv"),
]
