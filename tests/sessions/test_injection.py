"""Hostile text in the registry and in sessions never changes who an invitation goes to or what its headers
say, markup is escaped in the HTML part and inert in the text part, and the meeting password shows nowhere
but in the invitation itself.

The service refuses control characters in titles (tests/sessions/test_scheduling.py); names and addresses
come from MIS imports and office edits, so here they are written straight to the rows, as a bad import
might, and the invitation must still be harmless. Every message is parsed as a mail server receives it."""

import email
import email.policy
import json
import logging

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import escape

from consent.models import Guardian, Pupil
from schools.models import AuditEntry
from sessions.dispatch import deliveries_plan, delivery_send_batch
from sessions.models import Delivery, VideoSession
from sessions.services import session_update
from tests.factories import GroupFactory
from tests.outbox.conftest import smtp_server  # noqa: F401 (the fixture)

from .emails_dispatch import PASSWORD, consenting_family, due_session

pytestmark = pytest.mark.django_db

Status = Delivery.Status
INJECTED = "evil@attacker.example"
# The headers an invitation has; anything else would have been injected.
EXPECTED_HEADERS = {"Subject", "From", "To", "Date", "Message-ID", "Auto-Submitted", "MIME-Version", "Content-Type"}
CONTROL_TEXTS = [
    f"Ava\r\nBcc: {INJECTED}",
    f"Ava\nCc: {INJECTED}",
    f"Ava\rTo: {INJECTED}",
    f"Ava\x0b\x0c\x1bBcc: {INJECTED}",  # (PostgreSQL refuses NUL in text: no row can hold one)
    f"Ava\u2028Bcc: {INJECTED}",
    f"Ava\r\n\r\nInjected body {INJECTED}",
]


@pytest.fixture
def owls(personas):
    return GroupFactory(school=personas.school, name="Owls")


def _dispatch(session) -> list:
    deliveries_plan()
    before = len(mail.outbox)
    delivery_send_batch(Delivery.objects.filter(session=session).values_list("pk", flat=True))
    return mail.outbox[before:]


def _parsed(message) -> email.message.EmailMessage:
    return email.message_from_bytes(message.message().as_bytes(), policy=email.policy.default)


def _assert_one_recipient(message, address: str) -> email.message.EmailMessage:
    """As the mail server sees it: one To, the guardian's address, no Cc or Bcc, no header added."""
    assert message.recipients() == [address]
    parsed = _parsed(message)
    assert parsed.get_all("To") == [address]
    assert parsed.get_all("Cc") is None and parsed.get_all("Bcc") is None
    assert set(parsed.keys()) == EXPECTED_HEADERS, parsed.keys()
    assert len(parsed.get_all("Subject")) == 1
    for name, value in parsed.items():
        assert "\r" not in str(value) and "\n" not in str(value), (name, value)
    return parsed


def _html(message) -> str:
    return next(content for content, mimetype in message.alternatives if mimetype == "text/html")


@pytest.mark.parametrize("text", CONTROL_TEXTS)
def test_control_characters_in_a_childs_first_name_add_no_recipient_or_header(personas, owls, text):
    guardian, (pupil,) = consenting_family(personas.school, owls)
    Pupil.objects.filter(pk=pupil.pk).update(first_name=text)
    (sent,) = _dispatch(due_session(personas, group=owls))
    parsed = _assert_one_recipient(sent, guardian.email)
    assert "Live lesson for Ava" in str(parsed["Subject"])


@pytest.mark.parametrize("text", CONTROL_TEXTS)
def test_control_characters_in_a_guardians_name_add_no_recipient_or_header(personas, owls, text):
    guardian, _ = consenting_family(personas.school, owls)
    Guardian.objects.filter(pk=guardian.pk).update(first_name=text, last_name=text)
    (sent,) = _dispatch(due_session(personas, group=owls))
    _assert_one_recipient(sent, guardian.email)


@pytest.mark.parametrize("text", CONTROL_TEXTS)
def test_a_title_with_control_characters_written_past_the_service_adds_no_header(personas, owls, text):
    guardian, _ = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    VideoSession.objects.filter(pk=session.pk).update(title=text)
    (sent,) = _dispatch(session)
    _assert_one_recipient(sent, guardian.email)


def test_a_title_with_control_characters_is_refused_on_change_too(personas, owls):
    session = due_session(personas, group=owls)
    with pytest.raises(ValidationError) as error:
        session_update(session=session, actor=personas.teacher, title=f"Story\r\nBcc: {INJECTED}")
    assert "title" in error.value.message_dict
    session.refresh_from_db()
    assert session.title == "Year 3 story time"


def _record_envelope_recipients(sink) -> list[str]:
    """Every RCPT TO the sink is given (the fixture's handler keeps only the messages)."""
    addresses: list[str] = []
    answer = sink.handle_RCPT

    async def handle_rcpt(server, session, envelope, address, rcpt_options):
        addresses.append(address)
        return await answer(server, session, envelope, address, rcpt_options)

    sink.handle_RCPT = handle_rcpt
    return addresses


def test_over_smtp_the_envelope_has_the_guardians_address_only(personas, owls, smtp_server):  # noqa: F811
    rcpt_tos = _record_envelope_recipients(smtp_server)
    guardian, _ = consenting_family(personas.school, owls)
    _dispatch(due_session(personas, group=owls))
    assert rcpt_tos == [guardian.email]
    (received,) = smtp_server.received
    assert received.get_all("To") == [guardian.email] and received.get_all("Bcc") is None


@pytest.mark.parametrize("address", [
    f"parent@example.org\r\nBcc: {INJECTED}",
    f"parent@example.org\nCc: {INJECTED}",
    f"parent@example.org, {INJECTED}",
    f"parent@example.org;{INJECTED}",
    f"Parent <parent@example.org>, <{INJECTED}>",
])
def test_a_guardians_address_carrying_a_second_recipient_reaches_no_one_over_smtp(
        personas, owls, address, smtp_server):  # noqa: F811
    rcpt_tos = _record_envelope_recipients(smtp_server)
    guardian, _ = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    # Changed between planning and the claim (the planner would not have planned it at all).
    Guardian.objects.filter(pk=guardian.pk).update(email=address)
    delivery = Delivery.objects.get(session=session)
    delivery_send_batch([delivery.pk])
    # As the mail server saw it: nothing at all, so nothing for the attacker, in the envelope or the headers.
    assert rcpt_tos == [] and smtp_server.received == []
    delivery.refresh_from_db()
    assert delivery.status == Status.SKIPPED and "no valid email address" in delivery.reason


@pytest.mark.parametrize("address", [f"parent@example.org, {INJECTED}", f"parent@example.org\nBcc: {INJECTED}"])
def test_a_guardian_whose_address_is_not_one_address_gets_no_invitation_from_any_backend(personas, owls, address):
    """The test backend (like the demo's and an email service's) would take "a, b" as two recipients: the
    address is checked before any backend sees it, at planning and again at the claim."""
    guardian, _ = consenting_family(personas.school, owls)
    Guardian.objects.filter(pk=guardian.pk).update(email=address)
    session = due_session(personas, group=owls)
    assert _dispatch(session) == []
    assert not Delivery.objects.filter(session=session).exists()


@pytest.mark.parametrize("text", ["<script>alert(1)</script>", "{{ session.password }}", "{% now 'Y' %}",
                                  "<img src=x onerror=alert(1)>", "\"'><b>bold</b>"])
def test_markup_and_template_syntax_in_names_and_titles_are_escaped_and_inert(personas, owls, text):
    guardian, (pupil,) = consenting_family(personas.school, owls)
    Pupil.objects.filter(pk=pupil.pk).update(first_name=f"Ava{text}")
    Guardian.objects.filter(pk=guardian.pk).update(first_name=text)
    session = due_session(personas, group=owls, title=f"Story {text}")
    (sent,) = _dispatch(session)
    html, body = _html(sent), sent.body
    # The text part carries the characters as typed (plain text is not interpreted); nothing was rendered.
    assert f"Story {text}" in body and f"Ava{text}" in body
    assert body.count(PASSWORD) == 1 and html.count(PASSWORD) == 1  # "{{ session.password }}" stayed text
    # The HTML part carries none of the markup, only its escaped form.
    assert escape(f"Story {text}") in html and escape(f"Ava{text}") in html
    for raw in ("<script", "<img", "<b>"):
        assert raw not in html


@pytest.mark.parametrize("url", ["javascript:alert(1)", "http://zoom.us/j/123", "data:text/html,<script>",
                                 "JAVASCRIPT:alert(1)", "https://zoom.us/j/1\r\nBcc: x@example.org"])
def test_a_meeting_link_that_is_not_https_is_refused_on_change_and_nothing_changes(personas, owls, url):
    session = due_session(personas, group=owls)
    before = session.meeting_url
    with pytest.raises(ValidationError) as error:
        session_update(session=session, actor=personas.teacher, meeting_url=url)
    assert "meeting_url" in error.value.message_dict
    session.refresh_from_db()
    assert session.meeting_url == before and session.revision == 1


def test_after_dispatch_the_password_is_in_the_invitation_only(personas, owls, client_for, caplog):
    consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    with caplog.at_level(logging.DEBUG):
        (sent,) = _dispatch(session)
    assert PASSWORD in sent.body
    assert PASSWORD not in caplog.text and session.meeting_url not in caplog.text
    audit = json.dumps([entry.data for entry in AuditEntry.objects.all()]) + " ".join(
        AuditEntry.objects.values_list("object_repr", flat=True))
    assert PASSWORD not in audit and session.meeting_url not in audit
    pages = [reverse("video_sessions:list"), reverse("video_sessions:session", kwargs={"pk": session.pk}),
             reverse("video_sessions:edit", kwargs={"pk": session.pk})]
    for user in (personas.teacher, personas.headteacher, personas.office):
        client = client_for(user)
        for url in pages:
            response = client.get(url)
            assert response.status_code in (200, 403), url
            assert PASSWORD not in response.content.decode(), (user, url)
    assert Delivery.objects.get(session=session).status == Status.SENT
