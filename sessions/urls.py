from django.urls import path

from . import views, views_coverage, views_host

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
    path("protocol/school/<int:school_pk>/", views.school_protocol_view, name="school-protocol"),
    path("protocol/organisation/<int:organisation_pk>/", views.organisation_protocol_view,
         name="organisation-protocol"),
]
