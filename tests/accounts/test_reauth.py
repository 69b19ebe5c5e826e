from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import time_machine
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticToken

from accounts.reauth import (
    confirm_identity_required,
    identity_confirmation_consume,
    identity_confirmation_record,
    identity_recently_confirmed,
)
from accounts.services import backup_codes_generate
from schools.models import AuditEntry
from tests.factories import PASSWORD

from .conftest import post_code, post_password, totp_code

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PROTECTED = reverse("accounts:backup-codes-regenerate")


def _confirm(client, **data):
    return client.post(reverse("accounts:confirm"), {"next": PROTECTED, **data})


def _request(user):
    request = RequestFactory().post("/sign/")
    request.user = user
    request.session = SessionStore()
    return request


def test_a_protected_page_redirects_to_confirm_when_never_confirmed(client_for, personas):
    client = client_for(personas.headteacher)
    response = client.get(PROTECTED)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('accounts:confirm')}?{urlencode({'next': PROTECTED})}"
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert 'autocomplete="current-password"' in page.text
    assert 'autocomplete="one-time-code"' in page.text


def test_password_and_code_confirm_identity_until_it_goes_stale(client_for, personas):
    user = personas.headteacher
    device = user.totpdevice_set.get()
    with time_machine.travel(START, tick=False) as traveller:
        client = client_for(user)
        response = _confirm(client, password=PASSWORD, code=totp_code(device))
        assert response["Location"] == PROTECTED
        assert client.get(PROTECTED).status_code == 200
        assert AuditEntry.objects.filter(action="auth.reauthenticated", actor_id=user.pk).exists()

        traveller.shift(timedelta(seconds=settings.REAUTH_MAX_AGE_SECONDS - 5))
        assert client.get(PROTECTED).status_code == 200
        traveller.shift(timedelta(seconds=10))
        assert client.get(PROTECTED)["Location"].startswith(reverse("accounts:confirm"))


def test_a_wrong_code_is_refused_audited_and_counted_towards_lockout(client_for, personas):
    from axes.models import AccessAttempt

    user = personas.headteacher
    client = client_for(user)
    wrong = "000000" if totp_code(user.totpdevice_set.get()) != "000000" else "111111"
    response = _confirm(client, password=PASSWORD, code=wrong)
    assert response.status_code == 200
    assert "That code is not right" in response.text
    assert client.get(PROTECTED).status_code == 302
    entry = AuditEntry.objects.get(action="auth.reauthentication_failed")
    assert entry.data == {"failed": "second_factor"}
    assert AccessAttempt.objects.get(username=user.username).failures_since_start == 1


def test_a_wrong_password_is_refused_and_counted_towards_lockout(client_for, personas):
    from axes.models import AccessAttempt

    user = personas.headteacher
    client = client_for(user)
    response = _confirm(client, password="not it", code=totp_code(user.totpdevice_set.get()))
    assert "not your current password" in response.text
    assert AuditEntry.objects.get(action="auth.reauthentication_failed").data == {"failed": "password"}
    assert AccessAttempt.objects.get(username=user.username).failures_since_start == 1


def test_repeated_failed_confirmations_lock_the_account(client_for, personas):
    user = personas.teacher
    client = client_for(user)
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _confirm(client, password=f"wrong {attempt}").status_code == 200
    assert _confirm(client, password="wrong again").status_code == 429
    assert _confirm(client, password=PASSWORD).status_code == 429


def test_a_backup_code_can_confirm_identity(client_for, personas):
    user = personas.headteacher
    codes = backup_codes_generate(user=user, actor=user)
    client = client_for(user)
    assert _confirm(client, password=PASSWORD, backup_code=codes[3])["Location"] == PROTECTED
    assert not StaticToken.objects.filter(token=codes[3]).exists()


def test_a_user_without_a_second_factor_confirms_with_the_password_alone(client_for, personas):
    client = client_for(personas.teacher)
    page = client.get(reverse("accounts:confirm"))
    assert 'name="code"' not in page.text
    response = client.post(reverse("accounts:confirm"), {"password": PASSWORD, "next": "/dashboard/"})
    assert response["Location"] == "/dashboard/"


def test_confirm_ignores_a_next_that_leaves_the_site(client_for, personas):
    client = client_for(personas.teacher)
    response = client.post(reverse("accounts:confirm"), {"password": PASSWORD, "next": "https://evil.example/"})
    assert response["Location"] == reverse("accounts:security")


def test_regenerating_backup_codes_after_confirming_shows_new_codes(client_for, personas):
    user = personas.headteacher
    old = backup_codes_generate(user=user, actor=user)
    client = client_for(user)
    _confirm(client, password=PASSWORD, code=totp_code(user.totpdevice_set.get()))
    response = client.post(PROTECTED, follow=True)
    assert response.redirect_chain[-1][0] == reverse("accounts:backup-codes")
    new = set(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert len(new) == 10 and not new & set(old)
    assert all(code in response.text for code in new)


def test_the_decorator_wraps_any_view(personas):
    @confirm_identity_required
    def sign(request):
        return HttpResponse("signed")

    request = _request(personas.dpo)
    assert sign(request).status_code == 302
    identity_confirmation_record(request)
    assert sign(request).content == b"signed"


def test_consume_uses_a_confirmation_exactly_once(personas):
    request = _request(personas.dpo)
    assert identity_confirmation_consume(request) is False
    identity_confirmation_record(request)
    assert identity_recently_confirmed(request)
    assert identity_confirmation_consume(request) is True
    assert not identity_recently_confirmed(request)
    assert identity_confirmation_consume(request) is False


def test_a_confirmation_belongs_to_the_user_who_made_it(personas):
    request = _request(personas.dpo)
    identity_confirmation_record(request)
    request.user = personas.siro
    assert not identity_recently_confirmed(request)


def test_a_stale_confirmation_cannot_be_consumed(personas):
    with time_machine.travel(START, tick=False) as traveller:
        request = _request(personas.dpo)
        identity_confirmation_record(request)
        traveller.shift(timedelta(seconds=settings.REAUTH_MAX_AGE_SECONDS + 1))
        assert identity_confirmation_consume(request) is False


def test_signing_in_with_password_and_code_counts_as_confirming_for_the_next_few_minutes(client, personas):
    user = personas.headteacher
    with time_machine.travel(START, tick=False) as traveller:
        post_password(client, user.username)
        post_code(client, totp_code(user.totpdevice_set.get()))
        assert client.get(PROTECTED).status_code == 200  # no second code straight after signing in
        traveller.shift(timedelta(seconds=settings.REAUTH_MAX_AGE_SECONDS + 5))
        assert client.get(PROTECTED)["Location"].startswith(reverse("accounts:confirm"))


def test_a_used_code_is_refused_with_a_sentence_that_says_to_wait_for_the_next(client, personas):
    user = personas.headteacher
    code = totp_code(user.totpdevice_set.get())
    post_password(client, user.username)
    post_code(client, code)
    client.post(reverse("accounts:logout"))
    post_password(client, user.username)
    response = post_code(client, code)
    assert "each code works only once, so if you have just used it, wait for the next one" in response.text
