"""Celery tasks for the risk register: ids only; due items are found by comparing dates, never by matching one."""

from celery import shared_task
from django.utils import timezone


@shared_task(name="riskassess.tasks.risk_reminders")
def risk_reminders() -> dict[str, int]:
    """Email action owners and headteachers about actions and reviews due soon or overdue (hourly); each
    reminder goes once per item and stage (`Reminder`)."""
    from .reminders import reminders_send

    return reminders_send(now=timezone.now())
