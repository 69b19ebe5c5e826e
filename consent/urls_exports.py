"""The register's CSV and PDF exports: staff URLs, mounted under /registry/ in the `consent` namespace."""

urlpatterns = []
