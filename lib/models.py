"""Model building blocks shared by the apps."""

from django.db import models


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError(f"{self.model._meta.verbose_name_plural.capitalize()} are append-only.")

    def delete(self):
        raise TypeError(f"{self.model._meta.verbose_name_plural.capitalize()} are append-only.")

    def retention_delete(self) -> int:
        """The one sanctioned deletion: evidence whose retention period is over (consent/retention.py).
        Returns how many rows went."""
        deleted, _ = super().delete()
        return deleted


class AppendOnlyModel(models.Model):
    """Evidence rows (audit entries, consent events): written once, never updated or deleted by the app.

    This guards the ORM paths; raw SQL can still change a row, which is what the audit chain's hashes
    and `audit_verify` are there to catch.
    """

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError(f"{self._meta.verbose_name_plural.capitalize()} are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError(f"{self._meta.verbose_name_plural.capitalize()} are append-only.")
