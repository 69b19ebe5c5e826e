import pytest
from django.contrib.auth.hashers import make_password
from django.urls import reverse

from accounts.services import backup_codes_generate
from schools.models import AuditEntry
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "another long passphrase 2026"


def test_security_page_shows_two_factor_on_and_backup_codes_left(client_for, personas):
    user = personas.headteacher
    backup_codes_generate(user=user, actor=user)
    response = client_for(user).get(reverse("accounts:security"))
    assert response.status_code == 200
    assert "<strong>On.</strong>" in response.text
    assert "10 unused backup codes" in response.text
    assert reverse("accounts:backup-codes-regenerate") in response.text
    assert reverse("accounts:password-change") in response.text


def test_security_page_offers_set_up_when_two_factor_is_off(client_for, personas):
    response = client_for(personas.teacher).get(reverse("accounts:security"))
    assert "<strong>Off.</strong>" in response.text
    assert reverse("accounts:two-factor-setup") in response.text


def test_changing_the_password_is_audited_and_keeps_the_user_signed_in_and_verified(client_for, personas):
    user = personas.headteacher
    client = client_for(user)
    response = client.post(
        reverse("accounts:password-change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response["Location"] == reverse("accounts:security")
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert AuditEntry.objects.filter(action="auth.password_changed", actor_id=user.pk).exists()
    assert client.get(reverse("schools:dashboard")).status_code == 200


def test_changing_the_password_needs_the_current_one(client_for, personas):
    client = client_for(personas.teacher)
    response = client.post(
        reverse("accounts:password-change"),
        {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 200
    assert not AuditEntry.objects.filter(action="auth.password_changed").exists()


@pytest.mark.real_hasher
def test_a_newly_set_password_is_hashed_with_argon2():
    user = UserFactory()
    user.set_password(NEW_PASSWORD)
    user.save()
    assert user.password.startswith("argon2")
    assert make_password("x").startswith("argon2")
