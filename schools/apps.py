from django.apps import AppConfig


class SchoolsConfig(AppConfig):
    name = "schools"
    verbose_name = "Organisations and schools"
    default_auto_field = "django.db.models.BigAutoField"
