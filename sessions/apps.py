from django.apps import AppConfig


class SessionsConfig(AppConfig):
    # The folder is `sessions/`, but `django.contrib.sessions` already owns the label "sessions".
    name = "sessions"
    label = "video_sessions"
    verbose_name = "Video sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The deployment checks; and the tasks, which `sessions.delivery_steps` hands work to by name.
        from . import checks, tasks  # noqa: F401
