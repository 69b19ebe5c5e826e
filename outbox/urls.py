from django.urls import path

from . import views

app_name = "outbox"

urlpatterns = [
    path("", views.outbox_list, name="list"),
    path("<int:pk>/retry/", views.outbox_retry_view, name="retry"),
    path("demo-mailbox/", views.demo_mailbox, name="demo-mailbox"),
    path("demo-mailbox/<int:pk>/", views.demo_message, name="demo-message"),
    path("demo-mailbox/<int:pk>/html/", views.demo_message_html, name="demo-message-html"),
]
