"""Cancelling and changing a session: what happens to its invitations (sessions/changes.py)."""

import pytest

from sessions.dispatch import session_url
from tests.sessions.sessions_setup import session_row

pytestmark = pytest.mark.django_db


def test_alert_emails_link_to_the_sessions_own_page(personas):
    session = session_row(personas.school, personas.teacher)
    assert session_url(session).endswith(f"/sessions/{session.pk}/")
