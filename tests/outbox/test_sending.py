"""Sending against a real local SMTP server (aiosmtpd) that answers 451, 550, hangs, or accepts."""

import smtplib

import pytest
import time_machine
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.utils import timezone

from outbox.models import OutboxMessage
from outbox.services import (
    classify_send_error,
    outbox_failed_count,
    outbox_send_batch,
    outbox_sweep,
    retry_delay,
)
from schools.models import AuditEntry

from ..conftest import free_port

pytestmark = pytest.mark.django_db

Status = OutboxMessage.Status


def test_a_message_the_server_accepts_is_marked_sent_with_its_message_id(smtp_server, queue_greeting, personas):
    message = queue_greeting(school=personas.school)
    result = outbox_send_batch([message.pk])
    message.refresh_from_db()
    assert result.sent == [message.pk]
    assert message.status == Status.SENT and message.sent_at is not None
    assert message.attempts == 1 and message.lease_until is None
    [received] = smtp_server.received
    assert received["Message-ID"] == message.message_id
    assert received["Subject"] == message.subject
    assert received["To"] == "parent@example.net"


def test_a_451_is_retried_later_with_the_attempt_counted(smtp_server, queue_greeting, personas):
    smtp_server.mode = "451"
    message = queue_greeting(school=personas.school)
    before = timezone.now()
    result = outbox_send_batch([message.pk])
    message.refresh_from_db()
    assert result.retry == [message.pk]
    assert message.status == Status.RETRY
    assert message.attempts == 1
    assert message.next_attempt_at >= before + retry_delay(1)
    assert "SMTP 451" in message.last_error and "try again later" in message.last_error
    assert message.lease_until is None
    assert not AuditEntry.objects.filter(action="email.failed").exists()
    assert outbox_failed_count(school_ids=[personas.school.pk]) == 0


def test_a_retried_message_is_sent_when_it_is_due_and_the_server_recovers(
    smtp_server, queue_greeting, django_capture_on_commit_callbacks
):
    smtp_server.mode = "451"
    message = queue_greeting()
    outbox_send_batch([message.pk])
    smtp_server.mode = "ok"
    # Not due yet: the send task leaves it alone, and the sweeper does not hand it out.
    assert outbox_send_batch([message.pk]).skipped == [message.pk]
    assert outbox_sweep().dispatched == 0
    with (
        time_machine.travel(timezone.now() + retry_delay(1), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert outbox_sweep().dispatched == 1  # eager Celery: sent once the sweep commits
    message.refresh_from_db()
    assert message.status == Status.SENT and message.attempts == 2
    assert len(smtp_server.received) == 1


def test_a_550_fails_at_once_is_audited_and_counted_for_the_dashboard(smtp_server, queue_greeting, personas):
    smtp_server.mode = "550"
    message = queue_greeting(school=personas.school)
    result = outbox_send_batch([message.pk])
    message.refresh_from_db()
    assert result.failed == [message.pk]
    assert message.status == Status.FAILED and message.attempts == 1
    assert "SMTP 550" in message.last_error and "rejected by policy" in message.last_error
    assert message.next_attempt_at is None
    entry = AuditEntry.objects.get(action="email.failed")
    assert entry.school_id == personas.school.pk
    assert entry.object_id == str(message.pk)
    assert entry.data["reason"] == "SMTP 550"
    assert "parent@example.net" not in str(entry.data) + entry.object_repr
    assert outbox_failed_count(school_ids=[personas.school.pk]) == 1
    assert outbox_failed_count(school_ids=[personas.other_school.pk]) == 0


def test_a_refused_recipient_fails_without_retrying(smtp_server, queue_greeting):
    smtp_server.mode = "rcpt550"
    message = queue_greeting()
    outbox_send_batch([message.pk])
    message.refresh_from_db()
    assert message.status == Status.FAILED
    assert "recipient refused (SMTP 550)" in message.last_error


def test_a_server_that_never_answers_times_out_and_is_retried(smtp_server, queue_greeting):
    smtp_server.mode = "hang"
    first, second = queue_greeting(to="a@example.net"), queue_greeting(to="b@example.net")
    result = outbox_send_batch([first.pk, second.pk])
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Status.RETRY and "timed out" in first.last_error
    # The connection is gone, so the rest of the batch is left for the sweeper, untouched.
    assert result.left == [second.pk]
    assert second.status == Status.QUEUED and second.attempts == 0


def test_a_refused_connection_is_retried(settings, queue_greeting):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 1
    message = queue_greeting()
    outbox_send_batch([message.pk])
    message.refresh_from_db()
    assert message.status == Status.RETRY
    assert "refused" in message.last_error


def test_the_last_transient_attempt_fails_the_message(smtp_server, queue_greeting, settings, personas):
    settings.EMAIL_MAX_ATTEMPTS = 2
    smtp_server.mode = "451"
    message = queue_greeting(school=personas.school)
    outbox_send_batch([message.pk])
    with time_machine.travel(timezone.now() + retry_delay(1), tick=False):
        outbox_send_batch([message.pk])
    message.refresh_from_db()
    assert message.status == Status.FAILED and message.attempts == 2
    assert message.last_error.startswith("Gave up after 2 attempts. SMTP 451")
    assert AuditEntry.objects.filter(action="email.failed", object_id=str(message.pk)).count() == 1


def test_several_messages_in_one_batch_share_one_connection(smtp_server, queue_greeting):
    messages = [queue_greeting(to=f"parent{i}@example.net") for i in range(5)]
    result = outbox_send_batch([m.pk for m in messages])
    assert result.sent == [m.pk for m in messages]
    assert len(smtp_server.received) == 5
    assert smtp_server.connections == 1
    assert {r["Message-ID"] for r in smtp_server.received} == {m.message_id for m in messages}


def test_a_permanent_error_for_one_message_does_not_stop_the_batch(smtp_server, queue_greeting, monkeypatch):
    first, second = queue_greeting(to="a@example.net"), queue_greeting(to="b@example.net")
    real_handler = smtp_server.handle_DATA

    async def reject_first(server, session, envelope):
        if envelope.rcpt_tos == ["a@example.net"]:
            return "550 5.7.1 Message rejected by policy"
        return await real_handler(server, session, envelope)

    monkeypatch.setattr(smtp_server, "handle_DATA", reject_first)
    result = outbox_send_batch([first.pk, second.pk])
    assert result.failed == [first.pk] and result.sent == [second.pk]
    assert smtp_server.connections == 1


def test_a_message_already_sent_or_being_sent_is_not_sent_again(smtp_server, queue_greeting):
    message = queue_greeting()
    outbox_send_batch([message.pk])
    assert outbox_send_batch([message.pk]).skipped == [message.pk]
    OutboxMessage.objects.filter(pk=message.pk).update(status=Status.SENDING)
    assert outbox_send_batch([message.pk]).skipped == [message.pk]
    assert len(smtp_server.received) == 1


def test_a_batch_that_runs_out_of_time_hands_the_rest_to_a_new_task(smtp_server, queue_greeting, monkeypatch):
    from outbox import services

    messages = [queue_greeting(to=f"parent{i}@example.net") for i in range(3)]
    handed_on = []
    monkeypatch.setattr(services, "_batch_budget_seconds", lambda: -1)
    monkeypatch.setattr(services, "outbox_dispatch", handed_on.append)
    result = outbox_send_batch([m.pk for m in messages])
    assert result.left == [m.pk for m in messages] and handed_on == [result.left]
    assert smtp_server.received == []


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (smtplib.SMTPDataError(451, b"busy"), True),
        (smtplib.SMTPSenderRefused(421, b"closing", "x@example.org"), True),
        (smtplib.SMTPDataError(554, b"no"), False),
        (smtplib.SMTPRecipientsRefused({"a@example.net": (450, b"greylisted")}), True),
        (smtplib.SMTPRecipientsRefused({"a@example.net": (550, b"unknown")}), False),
        (smtplib.SMTPServerDisconnected("gone"), True),
        (TimeoutError("timed out"), True),
        (ConnectionRefusedError(111, "refused"), True),
        (AnymailAPIError("slow down", status_code=429), True),
        (AnymailAPIError("oops", status_code=503), True),
        (AnymailAPIError("bad request", status_code=400), False),
        (AnymailAPIError("no route"), True),
        (AnymailRecipientsRefused(), False),
    ],
)
def test_send_errors_are_classified_transient_or_permanent(exc, transient):
    assert classify_send_error(exc).transient is transient


def test_a_message_no_key_can_decrypt_fails_visibly_instead_of_waiting_forever(queue_greeting, personas):
    from django.db import connection

    message = queue_greeting(school=personas.school)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE outbox_outboxmessage SET body_text = %s WHERE id = %s",
                       ["gAAAAABnot-a-token-of-any-current-key", message.pk])
    assert outbox_send_batch([message.pk]).failed == [message.pk]
    failed = OutboxMessage.objects.defer("body_text").get(pk=message.pk)
    assert failed.status == Status.FAILED and "FIELD_ENCRYPTION_KEYS" in failed.last_error
    assert AuditEntry.objects.filter(action="email.failed", object_id=str(message.pk)).exists()
