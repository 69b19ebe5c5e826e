from django.urls import path

from . import views

app_name = "video_sessions"

urlpatterns = [
    path("", views.session_list, name="list"),
    path("school/<int:school_pk>/schedule/", views.session_schedule_view, name="schedule"),
    path("<int:pk>/", views.session_detail, name="session"),
    path("<int:pk>/edit/", views.session_edit, name="edit"),
    path("<int:pk>/cancel/", views.session_cancel_view, name="cancel"),
    path("<int:pk>/password/", views.session_password, name="password"),
    path("protocol/school/<int:school_pk>/", views.school_protocol_view, name="school-protocol"),
    path("protocol/organisation/<int:organisation_pk>/", views.organisation_protocol_view,
         name="organisation-protocol"),
]
