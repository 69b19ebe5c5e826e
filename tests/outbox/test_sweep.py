"""The sweeper, every minute: lost tasks, due retries and expired leases go back to the send task."""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from outbox.models import OutboxMessage
from outbox.services import LEASE_EXPIRED_ERROR, outbox_claim, outbox_sweep
from schools.models import AuditEntry

pytestmark = pytest.mark.django_db

Status = OutboxMessage.Status
START = timezone.make_aware(timezone.datetime(2026, 3, 2, 8, 0))


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def dispatched(monkeypatch):
    """The ids the sweeper hands to the broker, batch by batch (the send task itself is not run)."""
    from outbox import services

    batches: list[list[int]] = []
    monkeypatch.setattr(services, "outbox_dispatch", lambda ids: batches.append(list(ids)))
    return batches


def sweep(capture):
    with capture(execute=True):
        return outbox_sweep()


def test_a_queued_message_whose_task_was_lost_is_queued_again_after_a_minute(
    clock, queue_greeting, dispatched, django_capture_on_commit_callbacks
):
    message = queue_greeting()  # its task is never run: as if the broker lost it
    clock.shift(timedelta(seconds=30))
    assert sweep(django_capture_on_commit_callbacks).dispatched == 0
    clock.shift(timedelta(seconds=31))
    assert sweep(django_capture_on_commit_callbacks).dispatched == 1
    assert dispatched == [[message.pk]]
    # Handed out again only if it is still unsent a minute later.
    clock.shift(timedelta(seconds=30))
    assert sweep(django_capture_on_commit_callbacks).dispatched == 0
    clock.shift(timedelta(seconds=31))
    assert sweep(django_capture_on_commit_callbacks).dispatched == 1


def test_a_retry_is_queued_again_when_it_falls_due(
    clock, queue_greeting, dispatched, django_capture_on_commit_callbacks
):
    message = queue_greeting()
    OutboxMessage.objects.filter(pk=message.pk).update(
        status=Status.RETRY, attempts=1, dispatched_at=None, next_attempt_at=START + timedelta(minutes=2)
    )
    clock.shift(timedelta(minutes=1))
    assert sweep(django_capture_on_commit_callbacks).dispatched == 0
    clock.shift(timedelta(minutes=1))
    assert sweep(django_capture_on_commit_callbacks).dispatched == 1
    assert dispatched == [[message.pk]]


def test_an_expired_lease_counts_a_possible_duplicate_and_is_retried(
    clock, queue_greeting, django_capture_on_commit_callbacks, settings
):
    message = queue_greeting()
    assert outbox_claim(message.pk) is not None  # the worker claims it, then dies mid-send
    clock.shift(timedelta(seconds=2 * settings.EMAIL_TIMEOUT + 31))
    result = sweep(django_capture_on_commit_callbacks)  # eager Celery: sent again at once
    assert result.lease_expired == 1
    message.refresh_from_db()
    assert message.possible_duplicate == 1
    assert message.status == Status.SENT and message.attempts == 2
    assert message.last_error == LEASE_EXPIRED_ERROR
    assert len(mail.outbox) == 1


def test_a_fresh_lease_is_left_alone(clock, queue_greeting, dispatched, django_capture_on_commit_callbacks):
    message = queue_greeting()
    outbox_claim(message.pk)
    clock.shift(timedelta(seconds=30))
    result = sweep(django_capture_on_commit_callbacks)
    assert (result.lease_expired, result.dispatched) == (0, 0)
    message.refresh_from_db()
    assert message.status == Status.SENDING and message.possible_duplicate == 0
    assert dispatched == []


def test_an_expired_lease_on_the_last_attempt_fails_and_is_audited(
    clock, queue_greeting, dispatched, django_capture_on_commit_callbacks, settings, personas
):
    settings.EMAIL_MAX_ATTEMPTS = 1
    message = queue_greeting(school=personas.school)
    outbox_claim(message.pk)
    clock.shift(timedelta(minutes=5))
    assert sweep(django_capture_on_commit_callbacks).lease_failed == 1
    message.refresh_from_db()
    assert message.status == Status.FAILED and message.possible_duplicate == 0
    assert "may already have accepted it" in message.last_error
    assert AuditEntry.objects.filter(action="email.failed", school_id=personas.school.pk).count() == 1
    assert dispatched == []


def test_sent_and_failed_messages_are_never_swept(
    clock, queue_greeting, dispatched, django_capture_on_commit_callbacks
):
    sent, failed = queue_greeting(), queue_greeting()
    OutboxMessage.objects.filter(pk=sent.pk).update(status=Status.SENT, sent_at=START)
    OutboxMessage.objects.filter(pk=failed.pk).update(status=Status.FAILED)
    clock.shift(timedelta(hours=1))
    assert sweep(django_capture_on_commit_callbacks).dispatched == 0


def test_the_sweeper_works_in_bounded_batches_with_constant_queries(
    clock, queue_greeting, dispatched, django_capture_on_commit_callbacks
):
    def queries_for(count: int) -> int:
        OutboxMessage.objects.all().delete()
        dispatched.clear()
        for i in range(count):
            queue_greeting(to=f"p{i}@example.net")
        clock.shift(timedelta(minutes=2))
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
            result = outbox_sweep(batch_size=50, max_batches=3)
        assert result.dispatched == min(count, 150)
        return len(queries)

    assert queries_for(3) == queries_for(40)
    queries_for(200)
    assert sum(len(batch) for batch in dispatched) == 150  # the other 50 wait for the next minute
