from django.apps import AppConfig


class RiskassessConfig(AppConfig):
    name = "riskassess"
    verbose_name = "Risk register"
    default_auto_field = "django.db.models.BigAutoField"
