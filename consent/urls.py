from django.urls import path

from . import urls_exports, urls_imports, urls_notices, urls_requests, urls_rights, views_retention, views_staff

app_name = "consent"

urlpatterns = [
    path("schools/<int:school_pk>/pupils/", views_staff.pupil_list, name="pupils"),
    path("pupils/<int:pk>/", views_staff.pupil_detail, name="pupil"),
    path("pupils/<int:pk>/record/", views_staff.consent_record, name="record"),
    path("guardians/<int:pk>/", views_staff.guardian_detail, name="guardian"),
    path("guardians/<int:pk>/edit/", views_staff.guardian_edit, name="guardian-edit"),
    path("events/<int:pk>/", views_staff.event_detail, name="event"),
    path("events/<int:pk>/attachment/", views_staff.event_attachment, name="event-attachment"),
    path("retention/", views_retention.retention_list, name="retention-list"),
    path("organisations/<int:organisation_pk>/retention/", views_retention.retention_detail, name="retention"),
]

urlpatterns += (
    urls_imports.urlpatterns + urls_notices.urlpatterns + urls_requests.urlpatterns
    + urls_exports.urlpatterns + urls_rights.urlpatterns
)
