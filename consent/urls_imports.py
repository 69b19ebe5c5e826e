"""The import pages: staff URLs, mounted under /registry/ in the `consent` namespace."""

urlpatterns = []
