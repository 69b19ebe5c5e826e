"""The register of PIAs, new from template, the steps and their rows."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
