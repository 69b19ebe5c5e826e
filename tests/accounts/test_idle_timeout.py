from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.urls import reverse

from .conftest import post_password

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_request_after_the_idle_timeout_is_sent_to_sign_in(client, personas):
    with time_machine.travel(START, tick=False) as traveller:
        post_password(client, personas.teacher.username)
        assert client.get(reverse("schools:dashboard")).status_code == 200

        traveller.shift(timedelta(seconds=settings.SESSION_COOKIE_AGE + 1))
        response = client.get(reverse("schools:dashboard"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login"))


def test_activity_before_the_idle_timeout_keeps_the_session_alive(client, personas):
    with time_machine.travel(START, tick=False) as traveller:
        post_password(client, personas.teacher.username)
        for _ in range(3):
            # Each request pushes the expiry forward, so three gaps of nearly the timeout are fine.
            traveller.shift(timedelta(seconds=settings.SESSION_COOKIE_AGE - 60))
            assert client.get(reverse("schools:dashboard")).status_code == 200
