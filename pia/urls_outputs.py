"""Outputs and platforms: the PDF, the parent-facing privacy notice, the platform register, action plan."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
