"""The notice editor: staff URLs, mounted under /registry/ in the `consent` namespace."""

urlpatterns = []
