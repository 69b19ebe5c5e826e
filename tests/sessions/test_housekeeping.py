"""Meeting passwords are erased 24 hours after the end of the session (design.md, retention)."""

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from schools.models import AuditEntry
from sessions.models import VideoSession
from sessions.tasks import sessions_housekeeping

from .emails_dispatch import PASSWORD, due_session

pytestmark = pytest.mark.django_db


def test_the_password_is_kept_until_24_hours_after_the_end_then_erased_and_audited(personas):
    session = due_session(personas, minutes_ahead=30)  # 30 minutes long: ends an hour from now
    end = session.ends_at
    with time_machine.travel(end + dt.timedelta(hours=23, minutes=59)):
        assert sessions_housekeeping() == {"passwords_erased": 0}
    session.refresh_from_db()
    assert session.password == PASSWORD and session.password_erased_at is None
    with time_machine.travel(end + dt.timedelta(hours=24, minutes=1)):
        assert sessions_housekeeping() == {"passwords_erased": 1}
        erased_at = timezone.now()
    session.refresh_from_db()
    assert session.password == "" and abs(session.password_erased_at - erased_at) < dt.timedelta(seconds=5)
    entry = AuditEntry.objects.filter(action="session.passwords_erased").get()
    assert entry.data == {"sessions": 1}
    # Safe to repeat: nothing more to erase, nothing more audited.
    with time_machine.travel(end + dt.timedelta(hours=30)):
        assert sessions_housekeeping() == {"passwords_erased": 0}
    assert AuditEntry.objects.filter(action="session.passwords_erased").count() == 1


def test_a_longer_session_keeps_its_password_24_hours_after_its_own_end(personas):
    short = due_session(personas, minutes_ahead=30)
    long = due_session(personas, minutes_ahead=30)
    VideoSession.objects.filter(pk=long.pk).update(duration_minutes=180)
    with time_machine.travel(short.ends_at + dt.timedelta(hours=24, minutes=1)):
        assert sessions_housekeeping() == {"passwords_erased": 1}
    assert VideoSession.objects.get(pk=long.pk).password == PASSWORD
    assert VideoSession.objects.get(pk=short.pk).password == ""
