"""Each person's own email preferences on the security page: the daily digest, on or off."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from schools.models import AuditEntry

pytestmark = pytest.mark.django_db

URL = reverse("accounts:email-preferences")


def test_the_security_page_offers_the_daily_digest_and_says_when_it_comes(client_for, personas):
    personas.organisation.digest_hour = 6
    personas.organisation.save()
    response = client_for(personas.teacher).get(reverse("accounts:security"))
    assert "Email preferences" in response.text and "Send me the daily digest" in response.text
    assert 'name="daily_digest"' in response.text and "checked" in response.text
    assert "It comes each day at 06:00 (Europe/London)" in response.text


def test_turning_the_digest_off_changes_only_the_signed_in_person_and_is_audited_once(client_for, personas):
    client = client_for(personas.teacher)
    # No box ticked: off. A forged field naming someone else is ignored: the form has no such field.
    response = client.post(URL, {"user": personas.headteacher.pk})
    assert response.status_code == 302 and response["Location"] == reverse("accounts:security")
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    assert message.startswith("The daily digest is off")
    personas.teacher.refresh_from_db()
    personas.headteacher.refresh_from_db()
    assert personas.teacher.daily_digest is False and personas.headteacher.daily_digest is True
    client.post(URL, {})  # the same again: nothing more to record
    (entry,) = AuditEntry.objects.filter(action="account.digest_changed")
    assert (entry.actor_id, entry.object_id, entry.data) == (personas.teacher.pk, str(personas.teacher.pk),
                                                            {"daily_digest": False})
    assert entry.school_id == personas.school.pk
    assert "checked" not in client.get(reverse("accounts:security")).text.split('name="daily_digest"')[1][:40]


def test_turning_it_back_on_says_when_it_comes(client_for, personas):
    personas.teacher.daily_digest = False
    personas.teacher.save()
    response = client_for(personas.teacher).post(URL, {"daily_digest": "on"})
    personas.teacher.refresh_from_db()
    assert personas.teacher.daily_digest is True
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "The daily digest is on. It comes each day at 07:00 (Europe/London) when there is something to tell."]


def test_the_preferences_change_only_by_post_and_only_when_signed_in(client, client_for, personas):
    assert client.post(URL, {"daily_digest": "on"})["Location"].startswith(reverse("accounts:login"))
    assert client_for(personas.teacher).get(URL).status_code == 405
