"""Celery tasks for the consent registry. They take ids only and the database says what is left to do,
so a redelivered, duplicated or late task does no harm; periodic tasks find due rows by comparing
times (never by matching an exact date), so a missed or repeated beat only delays or repeats nothing.
"""

from celery import shared_task
from django.utils import timezone


@shared_task(name="consent.tasks.import_run_execute")
def import_run_execute(run_id: int) -> str:
    """Apply a confirmed import in the background, updating its progress as batches commit."""
    from .imports.runs import import_run_execute as execute

    return execute(run_id=run_id)


@shared_task(name="consent.tasks.import_runs_sweep")
def import_runs_sweep() -> dict[str, int]:
    """Queue again a confirmed import whose task was lost, and fail one whose worker died (every minute)."""
    from .imports.runs import import_runs_sweep as sweep

    return sweep(now=timezone.now())


@shared_task(name="consent.tasks.consent_lapse")
def consent_lapse() -> int:
    """Lapse consents whose renewal deadline has passed (hourly)."""
    from .services import consent_lapse_due

    return consent_lapse_due(now=timezone.now())


@shared_task(name="consent.tasks.consent_reminders")
def consent_reminders() -> int:
    """Remind guardians who have not answered a consent request, every few days up to the cap (hourly)."""
    from .requests import consent_reminders_send

    return consent_reminders_send(now=timezone.now())


@shared_task(name="consent.tasks.retention")
def retention() -> dict[str, int]:
    """Apply each organisation's retention schedule (hourly; a run with nothing due changes nothing)."""
    from .retention import retention_apply

    return retention_apply(now=timezone.now()).counts()
