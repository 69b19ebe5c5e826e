"""The parents' rights requests queue: staff URLs, mounted under /registry/ in the `consent` namespace."""

urlpatterns = []
