"""Queueing an email: rendering, recording, encryption at rest, and sending only after commit."""

import pytest
from django.core import mail
from django.db import connection, transaction

from outbox.models import OutboxMessage
from outbox.services import email_queue, text_engine
from schools.audit import ACTION_LABELS

pytestmark = pytest.mark.django_db

NAME = "Tom & <b>Jerry</b>"


def test_an_email_renders_text_unescaped_and_html_escaped(queue_greeting, personas):
    message = queue_greeting(name=NAME, school=personas.school)
    assert f"Dear {NAME}," in message.body_text
    assert "&amp;" not in message.body_text and "&lt;" not in message.body_text
    assert "Dear Tom &amp; &lt;b&gt;Jerry&lt;/b&gt;," in message.body_html
    assert "<b>Jerry</b>" not in message.body_html


def test_an_email_uses_the_bases_with_the_school_and_site_url(queue_greeting, personas, settings):
    message = queue_greeting(school=personas.school, token="abc")
    assert f"{settings.SITE_URL}/p/abc/" in message.body_text
    assert f'href="{settings.SITE_URL}/p/abc/"' in message.body_html
    assert "Sent by Gatehouse for Laxey Test School" in message.body_text
    assert "Laxey Test School" in message.body_html and "<!doctype html>" in message.body_html
    assert message.school == personas.school
    assert message.organisation == personas.organisation


def test_the_subject_is_one_line_even_when_the_context_has_newlines(queue_greeting):
    message = queue_greeting(name="Ava\r\nBcc: attacker@example.com\n")
    assert "\n" not in message.subject and "\r" not in message.subject
    assert message.subject == "Hello Ava Bcc: attacker@example.com from Gatehouse"


def test_the_subject_is_not_html_escaped(queue_greeting):
    assert queue_greeting(name="Tom & Jerry").subject == "Hello Tom & Jerry from Gatehouse"


def test_an_email_is_recorded_queued_with_a_message_id(queue_greeting, settings, personas):
    message = queue_greeting(related=personas.school)
    message.refresh_from_db()
    assert message.status == OutboxMessage.Status.QUEUED
    assert message.attempts == 0
    assert message.message_id.startswith("<") and message.message_id.endswith(f"@{settings.EMAIL_MESSAGE_ID_DOMAIN}>")
    assert (message.related_type, message.related_id) == ("schools.school", str(personas.school.pk))


def test_stored_bodies_and_attachments_are_not_plaintext_in_the_database(queue_greeting):
    # A name with a space and an apostrophe, which a Fernet token (URL-safe base64) can never contain by chance.
    message = queue_greeting(name="Ava O'Hara", token="secret-token-123",
                             attachments=[("invite.ics", "BEGIN:VCALENDAR secret-token-123", "text/calendar")])
    with connection.cursor() as cursor:
        cursor.execute("SELECT body_text, body_html, attachments FROM outbox_outboxmessage WHERE id = %s",
                       [message.pk])
        row = cursor.fetchone()
    for column in row:
        assert "secret-token-123" not in column
        assert "Ava O'Hara" not in column and "Ava O&#x27;Hara" not in column
        assert column.startswith("gAAAA")  # a Fernet token
    message.refresh_from_db()
    assert "secret-token-123" in message.body_text
    [attachment] = message.attachment_list()
    assert attachment.filename == "invite.ics" and attachment.content == b"BEGIN:VCALENDAR secret-token-123"


@pytest.mark.parametrize("address", ["a@example.net, b@example.net", "a@example.net\r\nBcc: b@example.net",
                                     "not an address", ""])
def test_an_email_goes_to_exactly_one_valid_address(queue_greeting, address):
    with pytest.raises(ValueError):
        queue_greeting(to=address)
    assert not OutboxMessage.objects.exists()


def test_nothing_is_sent_until_the_transaction_commits(queue_greeting, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            message = queue_greeting()
            assert mail.outbox == []
        assert mail.outbox == []  # the test's own transaction is still open
    assert len(callbacks) == 1
    [sent] = mail.outbox
    message.refresh_from_db()
    assert message.status == OutboxMessage.Status.SENT
    assert message.sent_at is not None and message.attempts == 1
    assert sent.extra_headers["Message-ID"] == message.message_id
    assert sent.message()["Message-ID"] == message.message_id
    assert sent.to == ["parent@example.net"]
    assert sent.alternatives[0].mimetype == "text/html"


def test_a_rolled_back_email_is_never_sent(queue_greeting, django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        queue_greeting()
        raise RuntimeError("the surrounding work failed")
    assert callbacks == []
    assert mail.outbox == []
    assert not OutboxMessage.objects.exists()


def test_emails_queued_in_one_transaction_go_out_in_one_batch(queue_greeting, django_capture_on_commit_callbacks,
                                                               monkeypatch):
    from outbox import services

    batches = []
    real = services.outbox_send_batch
    monkeypatch.setattr(services, "outbox_send_batch", lambda ids: batches.append(list(ids)) or real(ids))
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        messages = [queue_greeting(to=f"parent{i}@example.net") for i in range(3)]
    assert batches == [[m.pk for m in messages]]
    assert len(mail.outbox) == 3


def test_an_email_with_attachments_sends_them(queue_greeting, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        queue_greeting(attachments=[("lesson.ics", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "text/calendar")])
    [sent] = mail.outbox
    [(filename, content, mimetype)] = sent.attachments
    assert filename == "lesson.ics" and mimetype == "text/calendar"
    assert "BEGIN:VCALENDAR" in (content if isinstance(content, str) else content.decode())


def test_the_text_engine_shares_the_template_directories_but_does_not_autoescape():
    engine = text_engine()
    assert engine.autoescape is False
    assert engine.render_to_string("emails/greeting-body.txt", {"name": "<i>", "site_url": "", "token": "t"}) \
        .startswith("Dear <i>,")


def test_email_actions_used_by_the_outbox_have_readable_labels():
    assert {"email.failed", "email.retried", "email.test_queued"} <= set(ACTION_LABELS)


def test_a_missing_template_is_an_error_and_records_nothing():
    from django.template import TemplateDoesNotExist

    with pytest.raises(TemplateDoesNotExist):
        email_queue(template="no-such-email", to="a@example.net", context={})
    assert not OutboxMessage.objects.exists()
