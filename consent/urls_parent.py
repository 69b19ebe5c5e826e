"""Parent links: mounted at /p/ (short, because it is typed from paper letters and read in emails)."""

from django.urls import path

from . import views_parent

app_name = "parent"

urlpatterns = [
    path("<str:token>/", views_parent.parent_page, name="page"),
    path("<str:token>/done/", views_parent.parent_done, name="done"),
    path("<str:token>/rights/", views_parent.parent_rights, name="rights"),
    path("<str:token>/rights/download/", views_parent.parent_rights_download, name="rights-download"),
    path("<str:token>/rights/done/", views_parent.parent_rights_done, name="rights-done"),
]
