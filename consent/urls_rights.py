"""The parents' rights requests queue: staff URLs, mounted under /registry/ in the `consent` namespace.

The parent's own pages (download, requests) are behind their personal link, in consent/urls_parent.py."""

from django.urls import path

from . import views_rights

urlpatterns = [
    path("rights/", views_rights.rights_queue, name="rights"),
    path("rights/new/", views_rights.rights_new, name="rights-new"),
    path("rights/<int:pk>/", views_rights.rights_request_detail, name="rights-request"),
    path("rights/<int:pk>/status/", views_rights.rights_request_status, name="rights-status"),
    path("rights/<int:pk>/respond/", views_rights.rights_request_response, name="rights-respond"),
    path("rights/<int:pk>/export/", views_rights.rights_request_export, name="rights-export"),
    path("guardians/<int:pk>/rights/new/", views_rights.rights_record, name="rights-record"),
]
