"""The gate turning red after scheduling: the session shows it, and the host and headteacher are told once
(sessions.changes.sessions_gate_watch, beat every 5 minutes)."""

import datetime as dt

import pytest
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from outbox.models import OutboxMessage
from schools.models import Membership, Role
from sessions import changes, tasks
from sessions.models import SessionAlert, VideoSession
from sessions.services import session_cancel
from tests.sessions.sessions_setup import ZOOM_URL, scheduled_session

pytestmark = pytest.mark.django_db


def host_leaves(personas):
    """The teacher (the host) is no longer on the school's staff: the gate's third check turns red."""
    Membership.objects.filter(user=personas.teacher, school=personas.school).delete()


def host_returns(personas):
    Membership.objects.create(user=personas.teacher, school=personas.school, organisation=personas.organisation,
                              role=Role.TEACHER)


def told() -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(template="session-gate-red").order_by("pk"))


def test_a_green_gate_tells_no_one(personas):
    session = scheduled_session(personas)
    result = changes.sessions_gate_watch()
    assert (result.checked, result.red, result.alerted) == (1, 0, 0)
    assert not SessionAlert.objects.exists() and told() == []
    session.refresh_from_db()
    assert session.gate_red_since is None


def test_a_gate_turned_red_is_told_to_the_host_and_headteacher_once(personas):
    session = scheduled_session(personas, title="Owls phonics", password="Sesame-7749")
    host_leaves(personas)
    first = changes.sessions_gate_watch()
    second = changes.sessions_gate_watch()
    assert (first.red, first.alerted) == (1, 1)
    assert (second.red, second.alerted) == (1, 0)
    session.refresh_from_db()
    assert session.gate_red_since is not None
    alert = SessionAlert.objects.get()
    assert alert.kind == SessionAlert.Kind.GATE_RED and alert.session == session
    assert "is not a member of staff of" in alert.message
    messages = told()
    assert sorted(m.recipient for m in messages) == sorted([personas.teacher.email, personas.headteacher.email])
    for message in messages:
        assert "Owls phonics" in message.subject
        assert "is not a member of staff of" in message.body_text and "may no longer go ahead" in message.body_text
        assert f"{settings.SITE_URL}/sessions/{session.pk}/" in message.body_text
        for secret in ("Sesame-7749", ZOOM_URL):
            assert secret not in message.body_text + message.body_html + message.subject


def test_red_then_green_then_red_tells_again(personas):
    session = scheduled_session(personas)
    host_leaves(personas)
    changes.sessions_gate_watch()
    host_returns(personas)
    result = changes.sessions_gate_watch()
    session.refresh_from_db()
    assert result.cleared == 1 and session.gate_red_since is None
    assert len(told()) == 2  # nobody is told that it is green again (the page shows it)
    host_leaves(personas)
    assert changes.sessions_gate_watch().alerted == 1
    assert SessionAlert.objects.filter(kind=SessionAlert.Kind.GATE_RED).count() == 2 and len(told()) == 4


def test_the_gate_is_computed_once_per_school_platform_and_host(personas, monkeypatch):
    for day in (1, 2, 3):
        scheduled_session(personas, starts_at=timezone.now() + dt.timedelta(days=day))
    scheduled_session(personas, host=personas.headteacher)
    calls = []
    real = changes.session_gate

    def counted(**kwargs):
        calls.append((kwargs["school"].pk, kwargs["platform"].pk, kwargs["host"].pk))
        return real(**kwargs)

    monkeypatch.setattr(changes, "session_gate", counted)
    host_leaves(personas)
    result = changes.sessions_gate_watch()
    assert (result.checked, result.red, result.alerted) == (4, 3, 3)
    assert sorted(calls) == sorted({(personas.school.pk, s.platform_id, s.host_id)
                                    for s in VideoSession.objects.all()})
    assert len(calls) == 2


def test_cancelled_and_started_sessions_are_not_watched(personas):
    cancelled = scheduled_session(personas)
    session_cancel(session=cancelled, actor=personas.teacher, reason="Snow day")
    started = scheduled_session(personas, starts_at=timezone.now() + dt.timedelta(days=2))
    VideoSession.objects.filter(pk=started.pk).update(starts_at=timezone.now() - dt.timedelta(minutes=5))
    host_leaves(personas)
    result = changes.sessions_gate_watch()
    assert (result.checked, result.alerted) == (0, 0) and told() == []


def test_the_session_page_partial_shows_since_when_the_gate_is_red(personas):
    session = scheduled_session(personas)
    assert "failed since" not in render_to_string("sessions/_gate_watch.html", {"session": session})
    host_leaves(personas)
    changes.sessions_gate_watch()
    session.refresh_from_db()
    local = timezone.localtime(session.gate_red_since, personas.school.tz)
    html = render_to_string("sessions/_gate_watch.html", {"session": session})
    assert f"A check has failed since {local:%A %-d %B %Y, %H:%M}" in html


def test_the_task_runs_the_watch_and_beat_runs_the_task_every_five_minutes(personas):
    scheduled_session(personas)
    host_leaves(personas)
    assert tasks.sessions_gate_watch.delay().get() == {"checked": 1, "red": 1, "alerted": 1, "cleared": 0}
    (entry,) = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "sessions.tasks.sessions_gate_watch"]
    assert entry["schedule"] == 300.0
