from django.urls import path

from . import views

app_name = "schools"

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("audit/", views.audit_list, name="audit"),
]
