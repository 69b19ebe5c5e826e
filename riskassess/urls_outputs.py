"""Outputs: the PDF, the CSV export, the heat maps."""

urlpatterns = []
