"""Celery tasks of the sessions. They take ids only; the rows decide what is left to do, so a task that is
redelivered (acks_late), duplicated by the sweeper or run late does no harm (design.md, "How sending
works"). `deliveries_send` is at-least-once: see `sessions.dispatch`."""

import dataclasses

from celery import shared_task
from django.utils import timezone

from . import changes, dispatch, gate_watch, sweep
from .delivery_steps import PLAN_TASK, SEND_TASK


@shared_task(name=PLAN_TASK)
def deliveries_plan() -> dict[str, int]:
    result = dispatch.deliveries_plan()
    return {"sessions": result.sessions, "created": result.created, "gate_red": result.gate_red}


@shared_task(name=SEND_TASK)
def deliveries_send(delivery_ids: list[int]) -> dict[str, int]:
    result = dispatch.delivery_send_batch(delivery_ids)
    return {"sent": len(result.sent), "retry": len(result.retry), "failed": len(result.failed),
            "skipped": len(result.skipped), "left": len(result.left)}


@shared_task(name="sessions.tasks.deliveries_sweep")
def deliveries_sweep() -> dict[str, int]:
    result = sweep.deliveries_sweep()
    # Invitations recorded sent for an older revision of a changed session (a send in flight during the change).
    revised = changes.deliveries_stale_revisions()
    return {"dispatched": result.dispatched, "lease_expired": result.lease_expired,
            "overtaken": result.overtaken, "alerted": result.alerted,
            "resent": revised.resent, "waiting": revised.waiting, "told_moved": revised.moved_told}


@shared_task(name="sessions.tasks.sessions_gate_watch")
def sessions_gate_watch() -> dict[str, int]:
    result = gate_watch.sessions_gate_watch()
    return dataclasses.asdict(result)


@shared_task(name="sessions.tasks.sessions_housekeeping")
def sessions_housekeeping() -> dict[str, int]:
    return {"passwords_erased": dispatch.session_passwords_erase(now=timezone.now())}
