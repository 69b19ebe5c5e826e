"""End to end with the real broker: Redis, a real Celery worker, and the local SMTP server."""

import time

import pytest

from config.celery import app
from outbox.models import OutboxMessage
from outbox.services import email_queue

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def celery_worker():
    from celery.contrib.testing.worker import start_worker

    import outbox.tasks  # noqa: F401  (registers the tasks with the app)

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    app.control.purge()  # nothing left over from an earlier run reaches this one
    try:
        with start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING") as worker:
            yield worker
    finally:
        app.conf.task_always_eager = previous


def _wait_for(predicate, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_queued_email_is_delivered_by_a_real_worker_and_marked_sent(smtp_server, celery_worker, personas):
    message = email_queue(template="greeting", to="parent@example.net", context={"name": "Ava", "token": "t"},
                          school=personas.school)
    assert _wait_for(lambda: OutboxMessage.objects.get(pk=message.pk).status == OutboxMessage.Status.SENT), (
        f"still {OutboxMessage.objects.get(pk=message.pk).status}"
    )
    [received] = smtp_server.received
    assert received["Message-ID"] == message.message_id
    message.refresh_from_db()
    assert message.attempts == 1 and message.sent_at is not None


def test_the_sweeper_task_recovers_an_email_whose_task_was_lost(smtp_server, celery_worker, monkeypatch):
    from datetime import timedelta

    from outbox import services
    from outbox.tasks import outbox_sweep

    monkeypatch.setattr(services, "_send_after_commit", lambda pk: None)  # the broker "loses" the task
    message = email_queue(template="greeting", to="parent@example.net", context={"name": "Ava", "token": "t"})
    OutboxMessage.objects.filter(pk=message.pk).update(dispatched_at=message.dispatched_at - timedelta(minutes=2))
    outbox_sweep.delay()
    assert _wait_for(lambda: OutboxMessage.objects.get(pk=message.pk).status == OutboxMessage.Status.SENT)
    assert len(smtp_server.received) == 1
