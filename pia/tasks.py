"""Celery tasks for the PIAs: ids only; due actions are found by comparing dates, never by matching one."""

from celery import shared_task
from django.utils import timezone


@shared_task(name="pia.tasks.pia_reminders")
def pia_reminders() -> dict[str, int]:
    """Email the people responsible for signed PIAs' actions due within a week or overdue (hourly); each
    reminder goes once per action, stage and due date (`ActionReminder`)."""
    from .reminders import reminders_send

    return reminders_send(now=timezone.now())
