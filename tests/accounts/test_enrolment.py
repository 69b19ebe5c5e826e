import re

import pytest
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.services import backup_codes_generate
from schools.models import AuditEntry

from .conftest import post_code, post_password, totp_code

pytestmark = pytest.mark.django_db


def _enrol(client, user) -> list[str]:
    """Sign in with the password, scan the QR code, confirm a code; returns the backup codes shown."""
    response = post_password(client, user.username, follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("accounts:two-factor-setup"))
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post(reverse("accounts:two-factor-setup"), {"code": totp_code(device)}, follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("accounts:backup-codes"))
    return re.findall(r"<li><code>([a-z2-7]{8})</code></li>", response.text)


def test_setup_page_shows_a_qr_code_and_the_key_without_inline_styles(client, headteacher_without_device):
    client.force_login(headteacher_without_device)
    response = client.get(reverse("accounts:two-factor-setup"))
    assert response.status_code == 200
    # Secrets on the page: not kept in a shared computer's cache.
    assert "no-store" in response["Cache-Control"]
    html = response.text
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert 'role="img"' in svg and "<path" in svg
    assert "style" not in svg and "<script" not in svg
    assert "<style" not in html and " style=" not in html
    device = TOTPDevice.objects.get(user=headteacher_without_device, confirmed=False)
    assert "issuer=Gatehouse" in device.config_url
    from base64 import b32encode

    secret = b32encode(device.bin_key).decode()
    assert " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)) in html
    # Reloading keeps the same key, so a code already scanned still works.
    client.get(reverse("accounts:two-factor-setup"))
    assert TOTPDevice.objects.filter(user=headteacher_without_device).count() == 1


def test_enrolment_end_to_end_with_backup_codes_that_work_once(client, headteacher_without_device):
    user = headteacher_without_device
    codes = _enrol(client, user)

    assert len(codes) == 10 and len(set(codes)) == 10
    assert TOTPDevice.objects.get(user=user).confirmed
    assert set(StaticToken.objects.filter(device__user=user).values_list("token", flat=True)) == set(codes)
    assert client.get(reverse("schools:dashboard")).status_code == 200
    assert {"auth.two_factor_enrolled", "auth.backup_codes_generated"} <= set(
        AuditEntry.objects.values_list("action", flat=True)
    )
    # Shown once only.
    again = client.get(reverse("accounts:backup-codes"))
    assert codes[0] not in again.text
    assert "shown only once" in again.text

    # A backup code signs in once...
    client.post(reverse("accounts:logout"))
    post_password(client, user.username)
    response = post_code(client, backup_code=codes[0].upper())
    assert response["Location"] == reverse("schools:dashboard")
    assert AuditEntry.objects.filter(action="auth.backup_code_used", data__remaining=9).exists()

    # ...and never again.
    client.post(reverse("accounts:logout"))
    post_password(client, user.username)
    response = post_code(client, backup_code=codes[0])
    assert response.status_code == 200
    assert "not right, or has already been used" in response.text
    assert client.get(reverse("schools:dashboard"))["Location"].startswith(reverse("accounts:verify"))


def test_a_wrong_setup_code_leaves_the_device_unconfirmed(client, headteacher_without_device):
    client.force_login(headteacher_without_device)
    client.get(reverse("accounts:two-factor-setup"))
    device = TOTPDevice.objects.get(user=headteacher_without_device)
    wrong = "123456" if totp_code(device) != "123456" else "654321"
    response = client.post(reverse("accounts:two-factor-setup"), {"code": wrong})
    assert response.status_code == 200
    assert "does not match" in response.text
    device.refresh_from_db()
    assert not device.confirmed
    assert client.get(reverse("schools:dashboard"))["Location"].startswith(reverse("accounts:two-factor-setup"))


def test_setup_page_sends_someone_already_set_up_to_the_security_page(client_for, personas):
    client = client_for(personas.headteacher)
    assert client.get(reverse("accounts:two-factor-setup"))["Location"] == reverse("accounts:security")


def test_backup_codes_generate_replaces_the_previous_codes(personas):
    user = personas.teacher
    first = backup_codes_generate(user=user, actor=None)
    second = backup_codes_generate(user=user, actor=user)
    assert len(second) == 10
    assert not set(first) & set(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert StaticDevice.objects.filter(user=user).count() == 1
    entries = AuditEntry.objects.filter(action="auth.backup_codes_generated").order_by("seq")
    assert [e.actor_kind for e in entries] == ["system", "staff"]
    assert all(code not in str(e.data) for e in entries for code in second)
