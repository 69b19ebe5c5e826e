from django.urls import path

from . import views

app_name = "schools"

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("schools/<int:pk>/", views.school_detail, name="school"),
    path("audit/", views.audit_list, name="audit"),
    path("organisations/<int:organisation_pk>/settings/", views.organisation_settings,
         name="organisation-settings"),
    path("help/", views.help_index, name="help"),
    path("help/glossary/", views.glossary, name="glossary"),
]
