"""Invitations over a real SMTP server (aiosmtpd) that can misbehave: one connection per batch, retries
with the next attempt time in the database, failures alerted to the host."""

import datetime as dt
import smtplib

import pytest
from django.utils import timezone

from outbox.models import OutboxMessage
from sessions.dispatch import deliveries_plan, delivery_send_batch
from sessions.models import Delivery, SessionAlert
from tests.factories import GroupFactory
from tests.outbox.conftest import smtp_server  # noqa: F401 (the fixture)

from .emails_dispatch import PASSWORD, consenting_family, due_session

pytestmark = pytest.mark.django_db

Status = Delivery.Status


@pytest.fixture
def planned(personas):
    """Three consenting families in a due session, planned; returns the delivery ids."""
    owls = GroupFactory(school=personas.school, name="Owls")
    for _ in range(3):
        consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    return list(Delivery.objects.filter(session=session).order_by("pk").values_list("pk", flat=True))


def test_a_batch_goes_over_one_connection(planned, smtp_server):  # noqa: F811
    result = delivery_send_batch(planned)
    assert result.sent == planned
    assert len(smtp_server.received) == 3 and smtp_server.connections == 1
    message = smtp_server.received[0]
    (text,) = [part for part in message.walk() if part.get_content_type() == "text/plain"]
    assert PASSWORD in text.get_payload(decode=True).decode()
    assert any(part.get_content_type() == "text/calendar" for part in message.walk())


def test_a_451_leaves_the_invitation_to_retry_at_a_time_in_the_database(planned, smtp_server):  # noqa: F811
    smtp_server.mode = "451"
    before = timezone.now()
    result = delivery_send_batch(planned[:1])
    assert result.retry == planned[:1]
    delivery = Delivery.objects.get(pk=planned[0])
    assert delivery.status == Status.RETRY and delivery.attempts == 1 and "SMTP 451" in delivery.reason
    assert delivery.next_attempt_at >= before + dt.timedelta(seconds=59)
    # Not due yet: a redelivered task does nothing; once due, it is sent.
    smtp_server.mode = "ok"
    assert delivery_send_batch(planned[:1]).skipped == planned[:1]
    Delivery.objects.filter(pk=planned[0]).update(next_attempt_at=timezone.now())
    assert delivery_send_batch(planned[:1]).sent == planned[:1]
    assert len(smtp_server.received) == 1


def test_a_421_or_a_disconnect_retries_and_leaves_the_rest_of_the_batch_claimable(planned, monkeypatch):
    from django.core.mail.backends.locmem import EmailBackend

    def refuse(self, messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    monkeypatch.setattr(EmailBackend, "send_messages", refuse)
    result = delivery_send_batch(planned)
    assert result.retry == planned[:1] and result.left == planned[1:]
    statuses = dict(Delivery.objects.values_list("pk", "status"))
    assert statuses[planned[0]] == Status.RETRY
    assert {statuses[pk] for pk in planned[1:]} == {Status.PENDING}

    def answer_421(self, messages):
        raise smtplib.SMTPResponseException(421, b"4.7.0 Try again later")

    monkeypatch.setattr(EmailBackend, "send_messages", answer_421)
    assert delivery_send_batch(planned[1:2]).retry == planned[1:2]


def test_a_550_fails_the_invitation_and_alerts_the_host(planned, smtp_server, personas):  # noqa: F811
    smtp_server.mode = "550"
    result = delivery_send_batch(planned[:1])
    assert result.failed == planned[:1]
    delivery = Delivery.objects.get(pk=planned[0])
    assert delivery.status == Status.FAILED and "SMTP 550" in delivery.reason
    alert = SessionAlert.objects.get(delivery=delivery)
    assert alert.kind == SessionAlert.Kind.DELIVERY_FAILED
    host_email = OutboxMessage.objects.get(template="session-alert")
    assert host_email.recipient == personas.teacher.email
    assert PASSWORD not in host_email.body_text and "SMTP 550" in host_email.body_text


def test_a_transient_error_on_the_last_attempt_fails(planned, smtp_server, settings):  # noqa: F811
    smtp_server.mode = "451"
    Delivery.objects.filter(pk=planned[0]).update(attempts=settings.EMAIL_MAX_ATTEMPTS - 1)
    assert delivery_send_batch(planned[:1]).failed == planned[:1]
    assert Delivery.objects.get(pk=planned[0]).reason.startswith("gave up after")


def test_failures_log_neither_the_meeting_link_nor_the_password(planned, smtp_server, caplog):  # noqa: F811
    import logging

    smtp_server.mode = "550"
    with caplog.at_level(logging.DEBUG):
        delivery_send_batch(planned)
    text = "\n".join(record.getMessage() for record in caplog.records if record.name.startswith("sessions"))
    assert "SMTP 550" in text
    assert PASSWORD not in text and "zoom.us" not in text
