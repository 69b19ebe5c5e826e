"""Celery tasks for email. They take ids only; the rows decide what is left to do, so a task that is
redelivered (acks_late), duplicated by the sweeper or run late does no harm. Retries of transient
errors live in the database (`next_attempt_at`), never in a countdown.

`outbox_send` is at-least-once: a worker that dies after the mail server accepted a message but before
the row says `sent` leads to one more copy, counted in `possible_duplicate` (see outbox/services.py)."""

from celery import shared_task

from . import services


@shared_task(name="outbox.tasks.outbox_send")
def outbox_send(message_ids: list[int]) -> dict[str, int]:
    result = services.outbox_send_batch(message_ids)
    return {"sent": len(result.sent), "retry": len(result.retry), "failed": len(result.failed),
            "skipped": len(result.skipped), "left": len(result.left)}


@shared_task(name="outbox.tasks.outbox_sweep")
def outbox_sweep() -> dict[str, int]:
    result = services.outbox_sweep()
    return {"dispatched": result.dispatched, "lease_expired": result.lease_expired,
            "lease_failed": result.lease_failed}
