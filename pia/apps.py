from django.apps import AppConfig


class PiaConfig(AppConfig):
    name = "pia"
    verbose_name = "Privacy impact assessments"
    default_auto_field = "django.db.models.BigAutoField"
