import re
from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from outbox.models import OutboxMessage
from schools.models import AuditEntry

from .conftest import post_code, post_password, totp_code

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a brand new long passphrase 42"


def _request_reset(client, email: str, **extra):
    return client.post(reverse("accounts:password-reset"), {"email": email}, **extra)


def _reset_link(message: OutboxMessage) -> str:
    return re.search(r"(\S+/accounts/password-reset/\S+/\S+/)", message.body_text).group(1)


def test_reset_queues_one_outbox_message_with_a_link_from_site_url_not_the_host_header(
    client, personas, settings
):
    settings.ALLOWED_HOSTS = ["testserver", "attacker.example"]
    settings.SITE_URL = "https://gatehouse.example.org"
    user = personas.headteacher
    response = _request_reset(client, user.email.upper(), HTTP_HOST="attacker.example")
    assert response["Location"] == reverse("accounts:password-reset-done")

    message = OutboxMessage.objects.get()
    assert message.template == "password-reset"
    assert message.recipient == user.email
    assert message.related_type == "accounts.user" and message.related_id == str(user.pk)
    # Never on a school's outbox page, where a colleague could follow the link.
    assert message.school_id is None and message.organisation_id is None
    link = _reset_link(message)
    assert link.startswith("https://gatehouse.example.org/accounts/password-reset/")
    assert "attacker.example" not in message.body_text + message.body_html
    assert link in message.body_html
    assert message.subject == "Reset your Gatehouse password"


def test_unknown_email_gets_the_same_page_and_queues_nothing(client, personas):
    known = _request_reset(client, personas.teacher.email, follow=True)
    OutboxMessage.objects.all().delete()
    unknown = _request_reset(client, "nobody@example.org", follow=True)
    assert unknown.redirect_chain == known.redirect_chain
    assert unknown.text == known.text
    assert not OutboxMessage.objects.exists()


def test_reset_requests_are_audited_without_revealing_whether_the_account_exists(client, personas):
    _request_reset(client, personas.teacher.email)
    _request_reset(client, "nobody@example.org")
    known, unknown = AuditEntry.objects.filter(action="auth.password_reset_requested").order_by("seq")
    fields = ("actor_kind", "actor_id", "actor_label", "object_type", "object_id", "school_id", "data")
    assert [getattr(known, f) for f in fields] == [getattr(unknown, f) for f in fields]
    assert personas.teacher.email not in known.actor_label + str(known.data)


def test_reset_link_sets_the_new_password_and_the_second_factor_is_still_needed(client, personas):
    user = personas.headteacher
    _request_reset(client, user.email)
    link = urlsplit(_reset_link(OutboxMessage.objects.get())).path

    response = client.get(link)  # as a mail scanner would: changes nothing
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("correct horse battery staple")
    form_url = response["Location"]
    assert "set-password" in form_url
    page = client.get(form_url)
    assert page.status_code == 200
    assert 'autocomplete="new-password"' in page.text

    response = client.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response["Location"] == reverse("accounts:password-reset-complete")
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert "_auth_user_id" not in client.session
    assert AuditEntry.objects.filter(action="auth.password_changed", actor_id=user.pk, data__via="reset link").exists()

    # Signing in with the new password still asks for the code.
    response = post_password(client, user.username, NEW_PASSWORD)
    assert response["Location"].startswith(reverse("accounts:verify"))
    assert client.get(reverse("schools:dashboard"))["Location"].startswith(reverse("accounts:verify"))
    assert post_code(client, totp_code(user.totpdevice_set.get()))["Location"] == reverse("schools:dashboard")


def test_a_used_reset_link_does_not_work_again(client, personas):
    user = personas.teacher
    _request_reset(client, user.email)
    link = urlsplit(_reset_link(OutboxMessage.objects.get())).path
    form_url = client.get(link)["Location"]
    client.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    response = client.get(link)
    assert response.status_code == 200
    assert "This link does not work any more" in response.text
