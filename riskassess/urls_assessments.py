"""Assessments: the register, new from template, copy, editing rows, submit, approve, versions."""

from django.urls import path

from . import views_assessments as views

urlpatterns = [
    path("", views.assessment_list, name="assessments"),
    path("new/", views.assessment_new, name="assessment-new"),
    path("copy/", views.assessment_copy_view, name="assessment-copy"),
    path("<int:pk>/", views.assessment_detail, name="assessment"),
    path("<int:pk>/revise/", views.assessment_revise, name="assessment-revise"),
    path("<int:pk>/versions/", views.version_list, name="versions"),
    path("<int:pk>/compare/", views.version_compare, name="compare"),
    path("versions/<int:pk>/", views.version_detail, name="version"),
    path("versions/<int:pk>/rows/", views.version_rows, name="version-rows"),
    path("versions/<int:pk>/submit/", views.version_submit_view, name="version-submit"),
    path("versions/<int:pk>/details/", views.version_details, name="version-details"),
    path("versions/<int:pk>/approve/", views.version_approve_view, name="version-approve"),
]
