"""`manage.py send_test_email`: operators checking the mail settings."""

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from outbox.models import OutboxMessage
from schools.models import AuditEntry

pytestmark = pytest.mark.django_db


def test_send_test_email_queues_a_message_and_audits_it(capsys):
    call_command("send_test_email", "--to", "ops@example.org")
    message = OutboxMessage.objects.get()
    assert message.template == "test-message" and message.recipient == "ops@example.org"
    assert message.subject == "Gatehouse test message"
    assert "If you can read it" in message.body_text and "If you can read it" in message.body_html
    assert f"Queued test email #{message.pk}" in capsys.readouterr().out
    assert AuditEntry.objects.get(action="email.test_queued").object_id == str(message.pk)


def test_send_test_email_now_sends_through_the_smtp_server_and_says_so(smtp_server, capsys):
    call_command("send_test_email", "--to", "ops@example.org", "--now")
    message = OutboxMessage.objects.get()
    assert message.status == OutboxMessage.Status.SENT
    assert "Sent: the mail server accepted" in capsys.readouterr().out
    [received] = smtp_server.received
    assert received["Message-ID"] == message.message_id


def test_send_test_email_now_reports_a_rejection(smtp_server):
    smtp_server.mode = "550"
    with pytest.raises(CommandError, match="Failed: SMTP 550"):
        call_command("send_test_email", "--to", "ops@example.org", "--now")


def test_send_test_email_now_reports_a_temporary_failure(smtp_server):
    smtp_server.mode = "451"
    with pytest.raises(CommandError, match="will retry"):
        call_command("send_test_email", "--to", "ops@example.org", "--now")


def test_send_test_email_refuses_a_bad_address():
    with pytest.raises(CommandError, match="Not an email address"):
        call_command("send_test_email", "--to", "nobody")
    assert mail.outbox == [] and not OutboxMessage.objects.exists()
