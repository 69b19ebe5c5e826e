"""Real row locks (PostgreSQL): a row is claimed by exactly one of several workers racing for it."""

import threading

import pytest
from django.db import connection, transaction

from outbox.models import OutboxMessage
from outbox.services import email_queue, outbox_claim

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def message(monkeypatch) -> OutboxMessage:
    """A queued row whose send task is not run (in autocommit it would be, at once): only the row matters."""
    from outbox import services

    monkeypatch.setattr(services, "_send_after_commit", lambda pk: None)
    return email_queue(template="greeting", to="parent@example.net", context={"name": "Ava", "token": "t"})


def _in_thread(target, results, barrier):
    def run():
        try:
            barrier.wait(timeout=10)
            results.append(target())
        finally:
            connection.close()  # each thread had its own connection

    return threading.Thread(target=run)


def test_two_workers_claiming_the_same_row_at_once_only_one_gets_it(message):
    barrier = threading.Barrier(2)
    results: list = []
    threads = [_in_thread(lambda: outbox_claim(message.pk), results, barrier) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    claimed = [r for r in results if r is not None]
    assert len(results) == 2 and len(claimed) == 1
    message.refresh_from_db()
    assert message.status == OutboxMessage.Status.SENDING and message.attempts == 1


def test_a_worker_skips_a_row_another_worker_holds_rather_than_waiting(message):
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock():
        try:
            with transaction.atomic():
                OutboxMessage.objects.select_for_update().get(pk=message.pk)
                locked.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        results: list = []
        claimer = _in_thread(lambda: outbox_claim(message.pk), results, threading.Barrier(1))
        claimer.start()
        claimer.join(timeout=5)
        assert not claimer.is_alive(), "the claim waited for the lock instead of skipping the row"
        assert results == [None]
    finally:
        release.set()
        holder.join(timeout=10)
    message.refresh_from_db()
    assert message.status == OutboxMessage.Status.QUEUED and message.attempts == 0
