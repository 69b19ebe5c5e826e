from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A member of staff. Parents have no accounts: they act through personal links."""

    email = models.EmailField("email address", unique=True)
    # One email a day of what changed and what needs them, instead of one per event (urgent ones still go
    # at once). Each person may turn it off.
    daily_digest = models.BooleanField("send me the daily digest", default=True)

    class Meta:
        ordering = ["last_name", "first_name"]

    def __str__(self) -> str:
        return self.get_full_name() or self.email or self.username
