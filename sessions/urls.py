from django.urls import path

from . import views, views_coverage, views_host, views_incidents

app_name = "video_sessions"

urlpatterns = [
    path("", views.session_list, name="list"),
    path("school/<int:school_pk>/schedule/", views.session_schedule_view, name="schedule"),
    path("school/<int:school_pk>/schedule/coverage/", views_coverage.schedule_coverage, name="schedule-coverage"),
    path("school/<int:school_pk>/schedule/pupils/", views_coverage.schedule_pupils, name="schedule-pupils"),
    path("<int:pk>/", views.session_detail, name="session"),
    path("<int:pk>/edit/", views.session_edit, name="edit"),
    path("<int:pk>/cancel/", views.session_cancel_view, name="cancel"),
    path("<int:pk>/password/", views.session_password, name="password"),
    path("<int:pk>/roster/", views_host.session_roster_view, name="roster"),
    path("<int:pk>/checklist/", views_host.session_checklist_view, name="checklist"),
    path("<int:pk>/attendance/", views_host.session_attendance, name="attendance"),
    path("<int:pk>/incident/", views_host.session_incident, name="incident"),
    path("incidents/", views_incidents.incident_log, name="incidents"),
    path("incidents/school/<int:school_pk>/", views_incidents.incident_log_school, name="incidents-school"),
    path("incidents/organisation/<int:organisation_pk>/", views_incidents.incident_log_organisation,
         name="incidents-organisation"),
    path("incidents/<int:pk>/", views_incidents.incident_detail, name="incident-detail"),
    path("incidents/<int:pk>/close/", views_incidents.incident_close_view, name="incident-close"),
    path("incidents/<int:pk>/escalate/", views_incidents.incident_escalate_view, name="incident-escalate"),
    path("protocol/school/<int:school_pk>/", views.school_protocol_view, name="school-protocol"),
    path("protocol/organisation/<int:organisation_pk>/", views.organisation_protocol_view,
         name="organisation-protocol"),
]
