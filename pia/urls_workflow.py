"""Sign-off: submit, the DPO's advice and queue, the controller's decision, the SIRO's signature, versions."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
