"""The outbox page (scoped, filtered, retry) and the demo mailbox (demo mode only, bodies readable)."""

import pytest
from django.core import mail
from django.urls import reverse

from outbox.models import OutboxMessage
from schools.models import AuditEntry

from ..conftest import sign_in

pytestmark = pytest.mark.django_db

Status = OutboxMessage.Status


@pytest.fixture
def mailbag(queue_greeting, personas):
    """One message for our school, one for another school, one organisation-wide, one failed."""
    ours = queue_greeting(to="ours@example.net", school=personas.school, token="our-secret-token")
    theirs = queue_greeting(to="theirs@example.net", school=personas.other_school)
    org_wide = queue_greeting(to="dpo-note@example.net", organisation=personas.organisation)
    failed = queue_greeting(to="bounced@example.net", school=personas.school)
    OutboxMessage.objects.filter(pk=failed.pk).update(status=Status.FAILED, attempts=6,
                                                      last_error="SMTP 550: 5.1.1 No such user")
    return {"ours": ours, "theirs": theirs, "org_wide": org_wide, "failed": failed}


def listed(client, **params) -> set[str]:
    response = client.get(reverse("outbox:list"), params)
    assert response.status_code == 200
    return {message.recipient for message in response.context["page"]}


def test_a_headteacher_sees_their_schools_messages_and_not_another_schools(client, personas, mailbag):
    sign_in(client, personas.headteacher)
    assert listed(client) == {"ours@example.net", "bounced@example.net"}


def test_an_organisation_admin_sees_its_schools_and_organisation_wide_messages(client, personas, mailbag):
    sign_in(client, personas.org_admin)
    assert listed(client) == {"ours@example.net", "bounced@example.net", "dpo-note@example.net"}


def test_the_outbox_page_shows_status_in_words_and_errors_but_never_bodies(client, personas, mailbag):
    sign_in(client, personas.office)
    response = client.get(reverse("outbox:list"))
    html = response.content.decode()
    assert "Failed" in html and "Queued" in html
    assert "SMTP 550: 5.1.1 No such user" in html
    assert "1 email could not be sent" in html
    assert mailbag["ours"].message_id.replace("<", "&lt;").replace(">", "&gt;") in html
    assert "our-secret-token" not in html
    assert "Dear" not in html


def test_the_outbox_page_filters_by_status_and_recipient(client, personas, mailbag):
    sign_in(client, personas.headteacher)
    assert listed(client, status="failed") == {"bounced@example.net"}
    assert listed(client, q="OURS@") == {"ours@example.net"}
    assert listed(client, status="sent") == set()


def test_the_outbox_page_paginates_by_fifty(client, personas, queue_greeting):
    for i in range(51):
        queue_greeting(to=f"p{i}@example.net", school=personas.school)
    sign_in(client, personas.headteacher)
    response = client.get(reverse("outbox:list"))
    assert len(response.context["page"].object_list) == 50
    assert len(client.get(reverse("outbox:list"), {"page": 2}).context["page"].object_list) == 1


def test_retry_now_queues_a_failed_message_again_and_sends_it(
    client, personas, mailbag, django_capture_on_commit_callbacks
):
    sign_in(client, personas.headteacher)
    failed = mailbag["failed"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("outbox:retry", args=[failed.pk]), follow=True)
    assert "queued again" in response.content.decode()
    failed.refresh_from_db()
    assert failed.status == Status.SENT and failed.attempts == 1
    assert ["bounced@example.net"] in [m.to for m in mail.outbox]
    entry = AuditEntry.objects.get(action="email.retried")
    assert entry.actor_id == personas.headteacher.pk
    assert entry.data["previous_attempts"] == 6


def test_retry_now_refuses_a_message_that_has_not_failed(client, personas, mailbag):
    sign_in(client, personas.headteacher)
    response = client.post(reverse("outbox:retry", args=[mailbag["ours"].pk]), follow=True)
    assert "not failed" in response.content.decode()
    assert not AuditEntry.objects.filter(action="email.retried").exists()


def test_retry_of_another_schools_message_is_not_found(client, personas, mailbag):
    OutboxMessage.objects.filter(pk=mailbag["theirs"].pk).update(status=Status.FAILED)
    sign_in(client, personas.headteacher)
    assert client.post(reverse("outbox:retry", args=[mailbag["theirs"].pk])).status_code == 404
    # Nor may a headteacher retry the organisation's own mail.
    OutboxMessage.objects.filter(pk=mailbag["org_wide"].pk).update(status=Status.FAILED)
    assert client.post(reverse("outbox:retry", args=[mailbag["org_wide"].pk])).status_code == 404
    assert OutboxMessage.objects.get(pk=mailbag["theirs"].pk).status == Status.FAILED


def test_retry_is_a_post_and_needs_an_outbox_role(client, personas, mailbag):
    url = reverse("outbox:retry", args=[mailbag["failed"].pk])
    sign_in(client, personas.headteacher)
    assert client.get(url).status_code == 405
    sign_in(client, personas.teacher)
    assert client.post(url).status_code == 403


# --- Demo mailbox ---------------------------------------------------------------------------------


def test_the_demo_mailbox_is_not_found_outside_demo_mode(client, personas, mailbag, settings):
    settings.DEMO_MODE = False
    sign_in(client, personas.headteacher)
    message = mailbag["ours"]
    for name, args in [("outbox:demo-mailbox", []), ("outbox:demo-message", [message.pk]),
                       ("outbox:demo-message-html", [message.pk])]:
        assert client.get(reverse(name, args=args)).status_code == 404, name


def test_the_demo_mailbox_lists_every_email_newest_first(client, personas, mailbag):
    sign_in(client, personas.teacher)
    response = client.get(reverse("outbox:demo-mailbox"))
    assert response.status_code == 200
    recipients = [m.recipient for m in response.context["page"]]
    assert recipients == ["bounced@example.net", "dpo-note@example.net", "theirs@example.net", "ours@example.net"]
    assert reverse("outbox:demo-message", args=[mailbag["ours"].pk]) in response.content.decode()


def test_a_demo_message_shows_headers_and_a_clickable_text_body(client, personas, mailbag, settings):
    sign_in(client, personas.teacher)
    message = mailbag["ours"]
    response = client.get(reverse("outbox:demo-message", args=[message.pk]))
    html = response.content.decode()
    link = f"{settings.SITE_URL}/p/our-secret-token/"
    assert f'<a href="{link}" rel="nofollow">{link}</a>' in html
    assert "ours@example.net" in html and "Hello Ava from Laxey Test School" in html
    assert reverse("outbox:demo-message-html", args=[message.pk]) in html
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in html


def test_a_demo_message_text_body_is_escaped_on_the_page(client, personas, queue_greeting):
    message = queue_greeting(name="<script>alert(1)</script>")
    sign_in(client, personas.teacher)
    html = client.get(reverse("outbox:demo-message", args=[message.pk])).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_raw_html_body_allows_inline_styles_but_no_scripts_and_only_our_frames(client, personas, mailbag):
    sign_in(client, personas.teacher)
    response = client.get(reverse("outbox:demo-message-html", args=[mailbag["ours"].pk]))
    assert response.status_code == 200
    assert "our-secret-token" in response.content.decode()
    assert '<base target="_blank">' in response.content.decode()
    csp = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert csp["style-src"] == "'unsafe-inline'"
    assert csp["script-src"] == "'none'"
    assert csp["default-src"] == "'none'"
    assert csp["frame-ancestors"] == "'self'"
    assert "unsafe-inline" not in csp["script-src"] and "unsafe-eval" not in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize("name", ["outbox:list", "outbox:demo-mailbox", "outbox:demo-message"])
def test_the_main_pages_keep_the_strict_csp(client, personas, mailbag, name):
    sign_in(client, personas.headteacher)
    args = [mailbag["ours"].pk] if name == "outbox:demo-message" else []
    response = client.get(reverse(name, args=args))
    policy = response["Content-Security-Policy"]
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "style-src 'self'" in policy and "script-src 'self'" in policy
    assert response["X-Frame-Options"] == "DENY"


def test_the_demo_message_pages_need_a_staff_member(client, personas, mailbag):
    url = reverse("outbox:demo-message", args=[mailbag["ours"].pk])
    assert client.get(url).status_code == 302
    raw = reverse("outbox:demo-message-html", args=[mailbag["ours"].pk])
    assert client.get(raw).status_code == 302
    sign_in(client, personas.other_teacher)
    assert client.get(url).status_code == 200
