"""The risk register's staff pages, under /risks/ in the `riskassess` namespace; each feature keeps its own
URL module."""

from . import urls_assessments, urls_outputs, urls_reviews

app_name = "riskassess"

urlpatterns = urls_assessments.urlpatterns + urls_outputs.urlpatterns + urls_reviews.urlpatterns
