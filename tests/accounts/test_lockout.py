import pytest
from django.conf import settings
from django.urls import reverse

from schools.models import AuditEntry

from .conftest import post_password

pytestmark = pytest.mark.django_db


def test_after_five_wrong_passwords_even_the_right_one_gets_the_lockout_page(client, personas):
    user = personas.headteacher
    for attempt in range(1, settings.AXES_FAILURE_LIMIT):
        response = post_password(client, user.username, f"wrong password {attempt}")
        assert response.status_code == 200, attempt
    response = post_password(client, user.username, "wrong password 5")
    assert response.status_code == 429

    response = post_password(client, user.username)
    assert response.status_code == 429
    assert "Sign-in paused" in response.text
    assert "try again in 15 minutes" in response.text
    assert "contact your headteacher" in response.text
    assert "_auth_user_id" not in client.session

    entry = AuditEntry.objects.filter(action="auth.locked_out").first()
    assert entry is not None
    assert entry.actor_kind == AuditEntry.ActorKind.SYSTEM
    assert entry.data["username"] == user.username
    assert entry.object_id == str(user.pk)
    assert entry.school_id == personas.school.pk
    assert AuditEntry.objects.filter(action="auth.login_failed").count() >= settings.AXES_FAILURE_LIMIT


def test_lockout_counts_attempts_by_email_and_username_together(client, personas):
    user = personas.teacher
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        identifier = user.email.upper() if attempt % 2 else user.username
        post_password(client, identifier, f"wrong {attempt}")
    assert post_password(client, user.username).status_code == 429


def test_lockout_is_per_address_so_a_colleague_elsewhere_can_still_sign_in(client, personas):
    user = personas.teacher
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        post_password(client, user.username, f"wrong {attempt}", REMOTE_ADDR="10.0.0.1")
    response = post_password(client, user.username, REMOTE_ADDR="10.0.0.2")
    assert response.status_code == 302
    assert response["Location"] == reverse("schools:dashboard")
