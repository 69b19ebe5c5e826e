"""Celery tasks for the PIAs: ids only; due actions are found by comparing dates, never by matching one."""

from celery import shared_task
from django.utils import timezone


@shared_task(name="pia.tasks.pia_reminders")
def pia_reminders() -> dict[str, int]:
    """Email the people responsible for signed PIAs' actions due within a week or overdue (hourly); each
    reminder goes once per action, stage and due date (`ActionReminder`)."""
    from .reminders import reminders_send

    return reminders_send(now=timezone.now())


@shared_task(name="pia.tasks.pia_pdf_store")
def pia_pdf_store(version_id: int) -> bool:
    """Render and keep a signed version's PDF right after signing, so the filed copy is the one rendered when
    it was signed. Idempotent: a redelivered task (or a download that got there first) finds the file kept."""
    from .models import PiaVersion
    from .outputs import version_pdf_store

    version = PiaVersion.objects.filter(pk=version_id, status=PiaVersion.Status.SIGNED).first()
    if version is None:  # superseded meanwhile, or gone: nothing to keep
        return False
    version_pdf_store(version=version, actor=None)
    return True
