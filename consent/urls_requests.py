"""Consent requests and reminders: staff URLs, mounted under /registry/ in the `consent` namespace."""

urlpatterns = []
