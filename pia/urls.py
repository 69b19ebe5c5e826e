"""The PIA workflow's staff pages, under /pia/ in the `pia` namespace; each feature keeps its own URL module."""

from . import urls_outputs, urls_pias, urls_workflow

app_name = "pia"

urlpatterns = urls_pias.urlpatterns + urls_workflow.urlpatterns + urls_outputs.urlpatterns
