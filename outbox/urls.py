from django.urls import path

from schools import views as placeholder  # replaced by the outbox views

app_name = "outbox"

urlpatterns = [
    path("", placeholder.dashboard, name="list"),
    path("demo-mailbox/", placeholder.dashboard, name="demo-mailbox"),
]
