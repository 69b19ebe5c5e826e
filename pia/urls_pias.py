"""The register of PIAs, new from template, a version's overview, its step pages and their tables."""

from django.urls import path

from . import views_pias

urlpatterns = [
    path("", views_pias.pia_list, name="list"),
    path("new/", views_pias.pia_new, name="new"),
    path("<int:pk>/", views_pias.pia_detail, name="pia"),
    path("versions/<int:pk>/", views_pias.version_detail, name="version"),
    path("versions/<int:pk>/details/", views_pias.version_details, name="details"),
    path("versions/<int:pk>/steps/<slug:step>/", views_pias.version_step, name="step"),
]
