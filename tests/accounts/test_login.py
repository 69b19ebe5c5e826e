import re

import pytest
from django.urls import reverse

from schools.models import AuditEntry

from .conftest import post_code, post_password, totp_code

pytestmark = pytest.mark.django_db


def test_login_with_password_then_totp_code_lands_on_the_dashboard(client, personas):
    user = personas.headteacher
    response = post_password(client, user.username)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:verify"))

    response = client.get(response["Location"])
    assert response.status_code == 200
    assert 'autocomplete="one-time-code"' in response.text
    assert 'inputmode="numeric"' in response.text

    response = post_code(client, totp_code(user.totpdevice_set.get()), follow=True)
    assert response.redirect_chain[-1][0] == reverse("schools:dashboard")
    assert response.status_code == 200
    assert list(AuditEntry.objects.order_by("seq").values_list("action", flat=True)) == [
        "auth.login",
        "auth.two_factor_verified",
    ]


def test_login_accepts_the_email_address_in_any_case(client, personas):
    user = personas.teacher
    response = post_password(client, user.email.upper())
    assert response.status_code == 302
    assert response["Location"] == reverse("schools:dashboard")
    assert client.get(reverse("schools:dashboard")).status_code == 200


def test_teacher_without_a_device_is_signed_in_by_password_alone(client, personas):
    response = post_password(client, personas.teacher.username, follow=True)
    assert response.redirect_chain[-1][0] == reverse("schools:dashboard")


def test_wrong_password_is_refused_and_audited_without_the_password(client, personas):
    response = post_password(client, personas.teacher.username, "not my password at all")
    assert response.status_code == 200
    assert "do not match an account" in response.text
    assert "_auth_user_id" not in client.session
    entry = AuditEntry.objects.get(action="auth.login_failed")
    assert entry.actor_kind == AuditEntry.ActorKind.SYSTEM
    assert personas.teacher.username in entry.actor_label
    assert "not my password" not in str(entry.data) + entry.actor_label
    # Filed under the targeted account's school, so its headteacher sees it.
    assert entry.school_id == personas.school.pk


def test_failed_login_audit_truncates_a_long_username(client, personas):
    post_password(client, "x" * 200, "whatever")
    entry = AuditEntry.objects.get(action="auth.login_failed")
    assert entry.data["username"] == "x" * 64
    assert entry.school_id is None


def test_an_absurdly_long_username_is_refused_calmly(client, personas):
    # It used to reach django-axes and overflow its 255-character column (a 500 on PostgreSQL).
    response = post_password(client, "x" * 500, "whatever")
    assert response.status_code == 200
    assert "longer than any username" in response.text


def test_wrong_totp_code_is_refused_and_audited(client, personas):
    user = personas.headteacher
    post_password(client, user.username)
    response = post_code(client, "000000" if totp_code(user.totpdevice_set.get()) != "000000" else "111111")
    assert response.status_code == 200
    assert "That code is not right" in response.text
    assert AuditEntry.objects.filter(action="auth.two_factor_failed").count() == 1
    assert client.get(reverse("schools:dashboard"))["Location"].startswith(reverse("accounts:verify"))


def test_repeated_wrong_codes_are_slowed_down_with_a_message(client, personas):
    user = personas.headteacher
    device = user.totpdevice_set.get()
    post_password(client, user.username)
    device.throttling_failure_count = 3
    device.throttle_increment()  # the 4th failure: 8 seconds to wait from now
    response = post_code(client, totp_code(device))
    assert "Too many wrong codes in a row" in response.text
    assert "Wait 8 seconds" in response.text or "Wait 7 seconds" in response.text
    assert client.get(reverse("schools:dashboard")).status_code == 302


def test_login_redirects_to_a_safe_next_after_the_second_factor(client, personas):
    user = personas.headteacher
    audit = reverse("schools:audit")
    response = post_password(client, user.username, **{"QUERY_STRING": f"next={audit}"})
    verify_url = response["Location"]
    assert "next=%2Faudit%2F" in verify_url
    response = client.post(verify_url, {"code": totp_code(user.totpdevice_set.get()), "next": audit})
    assert response["Location"] == audit


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_login_ignores_a_next_that_leaves_the_site(client, personas, next_url):
    response = client.post(
        reverse("accounts:login"),
        {"username": personas.teacher.username, "password": "correct horse battery staple", "next": next_url},
    )
    assert response["Location"] == reverse("schools:dashboard")


def test_login_page_says_when_idle_sessions_end(client, settings):
    settings.SESSION_COOKIE_AGE = 20 * 60
    response = client.get(reverse("accounts:login"))
    assert "For your security you are signed out after 20 minutes without activity" in response.text


def test_login_page_has_labels_and_autocomplete_and_no_inline_script_or_style(client):
    html = client.get(reverse("accounts:login")).text
    assert 'autocomplete="username"' in html
    assert 'autocomplete="current-password"' in html
    assert re.search(r'<label\s+for="id_username"', html) and re.search(r'<label\s+for="id_password"', html)
    assert "<style" not in html and " style=" not in html
    assert "<script>" not in html


def test_signed_in_user_visiting_login_goes_to_the_dashboard(client_for, personas):
    client = client_for(personas.teacher)
    assert client.get(reverse("accounts:login"))["Location"] == reverse("schools:dashboard")


def test_logout_is_post_only_and_audited(client_for, personas):
    client = client_for(personas.headteacher)
    assert client.get(reverse("accounts:logout")).status_code == 405
    response = client.post(reverse("accounts:logout"))
    assert response["Location"] == reverse("accounts:login")
    assert "_auth_user_id" not in client.session
    assert AuditEntry.objects.filter(action="auth.logout", actor_id=personas.headteacher.pk).exists()
    assert client.get(reverse("schools:dashboard")).status_code == 302


def test_verify_page_sends_a_verified_user_on(client_for, personas):
    client = client_for(personas.headteacher)
    assert client.get(reverse("accounts:verify"))["Location"] == reverse("schools:dashboard")


def test_a_blank_form_is_not_recorded_as_a_failed_sign_in(client, personas):
    response = client.post(reverse("accounts:login"), {"username": personas.teacher.username, "password": ""})
    assert response.status_code == 200
    assert not AuditEntry.objects.filter(action="auth.login_failed").exists()
