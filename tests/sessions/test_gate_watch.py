"""The gate turning red after scheduling: the session shows it, and the host and headteacher are told once
(sessions.gate_watch.sessions_gate_watch, beat every 5 minutes): at once when the lesson starts within 24 hours,
else in their daily digest (tests/schools/test_digest.py)."""

import datetime as dt

import pytest
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from outbox.models import OutboxMessage
from schools.models import DigestItem, Membership, Role
from sessions import gate_watch, tasks
from sessions.gate import gate_for
from sessions.models import SessionAlert, VideoSession
from sessions.services import session_cancel
from tests.sessions.sessions_setup import ZOOM_URL, flag_the_risk_assessment, scheduled_session

pytestmark = pytest.mark.django_db


def host_leaves(personas):
    """The teacher (the host) is no longer on the school's staff: the gate's third check turns red."""
    Membership.objects.filter(user=personas.teacher, school=personas.school).delete()


def host_returns(personas):
    Membership.objects.create(user=personas.teacher, school=personas.school, organisation=personas.organisation,
                              role=Role.TEACHER)


def told() -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(template="session-gate-red").order_by("pk"))


def told_green() -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(template="session-gate-green").order_by("pk"))


def watch_a_little_later():
    """The watch's next run, once the notices have waited the few minutes in which more lessons may turn red."""
    import time_machine

    with time_machine.travel(timezone.now() + gate_watch.COALESCE_FOR + dt.timedelta(seconds=1)):
        return gate_watch.sessions_gate_watch()


def soon(hours: float = 3) -> dt.datetime:
    """A start within the 24 hours in which a lesson that cannot go ahead is told at once."""
    return timezone.now() + dt.timedelta(hours=hours)


def test_a_green_gate_tells_no_one(personas):
    session = scheduled_session(personas)
    result = gate_watch.sessions_gate_watch()
    assert (result.checked, result.red, result.alerted) == (1, 0, 0)
    assert not SessionAlert.objects.exists() and told() == []
    session.refresh_from_db()
    assert session.gate_red_since is None


def test_a_lesson_within_24_hours_turned_red_is_told_to_the_host_and_headteacher_at_once_and_once(personas):
    session = scheduled_session(personas, title="Owls phonics", password="Sesame-7749", starts_at=soon())
    host_leaves(personas)
    first = gate_watch.sessions_gate_watch()
    second = watch_a_little_later()
    third = watch_a_little_later()
    assert (first.red, first.alerted, first.told) == (1, 1, 0)  # more may turn red in the next few minutes
    assert (second.red, second.alerted, second.told) == (1, 0, 2)
    assert (third.red, third.alerted, third.told) == (1, 0, 0)
    session.refresh_from_db()
    assert session.gate_red_since is not None
    alert = SessionAlert.objects.get()
    assert alert.kind == SessionAlert.Kind.GATE_RED and alert.session == session
    assert "is not a member of staff of" in alert.message
    messages = told()
    assert sorted(m.recipient for m in messages) == sorted([personas.teacher.email, personas.headteacher.email])
    for message in messages:
        assert message.subject.startswith("Cannot go ahead: Owls phonics")
        assert "is not a member of staff of" in message.body_text and "cannot go ahead" in message.body_text
        assert f"{settings.SITE_URL}/sessions/{session.pk}/" in message.body_text
        for secret in ("Sesame-7749", ZOOM_URL):
            assert secret not in message.body_text + message.body_html + message.subject


def test_the_email_says_who_can_fix_each_reason_and_what_the_reader_can_do_themselves(personas):
    scheduled_session(personas, title="Owls phonics", starts_at=soon(0.4))  # within half an hour: told at once
    host_leaves(personas)
    assert gate_watch.sessions_gate_watch().told == 2
    by_person = {m.recipient: m for m in told()}
    fixer = "Who can fix it: The headteacher adds the host to the school's staff, or the lesson gets another host."
    to_host, to_head = by_person[personas.teacher.email], by_person[personas.headteacher.email]
    for message in (to_host, to_head):
        assert fixer in message.body_text and fixer in message.body_html.replace("&#x27;", "'")
        assert "Put it right, or cancel the lesson" not in message.body_text + message.body_html
    assert "What you can do: you cannot put this right yourself" in to_host.body_text
    assert "or cancel the lesson on its page" in to_host.body_text and "Wait for them" in to_host.body_text
    assert "What you can do: as the school's headteacher, put it right" in to_head.body_text
    assert "cannot put this right yourself" not in to_head.body_text + to_head.body_html
    assert "cannot put this right yourself" in to_host.body_html


def test_red_then_green_then_red_tells_again(personas):
    session = scheduled_session(personas, starts_at=soon())
    host_leaves(personas)
    gate_watch.sessions_gate_watch()
    watch_a_little_later()
    host_returns(personas)
    result = gate_watch.sessions_gate_watch()
    session.refresh_from_db()
    assert result.cleared == 1 and session.gate_red_since is None
    assert len(told()) == 2 and len(told_green()) == 2  # the two told it cannot go ahead hear it can again
    host_leaves(personas)
    assert gate_watch.sessions_gate_watch().alerted == 1
    watch_a_little_later()
    assert SessionAlert.objects.filter(kind=SessionAlert.Kind.GATE_RED).count() == 2 and len(told()) == 4


def test_the_gate_is_computed_once_per_school_platform_and_host(personas, monkeypatch):
    for day in (1, 2, 3):
        scheduled_session(personas, starts_at=timezone.now() + dt.timedelta(days=day))
    scheduled_session(personas, host=personas.headteacher)
    calls = []
    real = gate_watch.session_gate

    def counted(**kwargs):
        calls.append((kwargs["school"].pk, kwargs["platform"].pk, kwargs["host"].pk))
        return real(**kwargs)

    monkeypatch.setattr(gate_watch, "session_gate", counted)
    host_leaves(personas)
    result = gate_watch.sessions_gate_watch()
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
    result = gate_watch.sessions_gate_watch()
    assert (result.checked, result.alerted) == (0, 0) and told() == []


def test_the_session_page_partial_shows_since_when_the_gate_is_red(personas):
    session = scheduled_session(personas)
    assert "failed since" not in render_to_string("sessions/_gate_watch.html", {"session": session,
                                                                               "gate": gate_for(session)})
    host_leaves(personas)
    gate_watch.sessions_gate_watch()
    session.refresh_from_db()
    local = timezone.localtime(session.gate_red_since, personas.school.tz)
    html = render_to_string("sessions/_gate_watch.html", {"session": session, "gate": gate_for(session)})
    assert f"A check has failed since {local:%A %-d %B %Y, %H:%M}" in html


def _page(client_for, personas, session) -> str:
    """The lesson's page as the headteacher sees it (the host may be off the staff)."""
    return client_for(personas.headteacher).get(reverse("video_sessions:session", kwargs={"pk": session.pk})
                                            ).content.decode()


def test_green_again_before_the_next_watch_the_page_says_the_checks_pass_and_never_that_it_may_not_go_ahead(
        personas, client_for):
    session = scheduled_session(personas, starts_at=soon())
    host_leaves(personas)
    gate_watch.sessions_gate_watch()
    red = _page(client_for, personas, session)
    assert "A check has failed since" in red and "The session may not go ahead" in red
    assert "session-alert-resolved" not in red
    host_returns(personas)  # put right; the watch clears its mark only at its next run
    session.refresh_from_db()
    assert session.gate_red_since is not None
    page = _page(client_for, personas, session)
    assert "The session may go ahead" in page
    assert "may not go ahead" not in page and "A check has failed since" not in page
    assert "Every check passes again: a check had failed since" in page and "Invitations go as usual." in page
    alerts = page[page.index('id="alerts-heading"'):page.index("</section>", page.index('id="alerts-heading"'))]
    assert "Resolved" in alerts and "The checks pass again since. At the time:" in alerts
    assert "is not a member of staff of" in alerts


def test_an_alert_of_an_earlier_red_spell_reads_as_resolved_while_a_new_one_is_current(personas, client_for):
    session = scheduled_session(personas, starts_at=soon())
    host_leaves(personas)
    gate_watch.sessions_gate_watch()
    host_returns(personas)
    gate_watch.sessions_gate_watch()
    host_leaves(personas)
    gate_watch.sessions_gate_watch()
    page = _page(client_for, personas, session)
    assert page.count("session-alert-resolved") == 1
    assert page.count('<strong>The session may not go ahead</strong>') == 1


def test_the_task_runs_the_watch_and_beat_runs_the_task_every_five_minutes(personas):
    scheduled_session(personas, starts_at=soon())
    host_leaves(personas)
    assert tasks.sessions_gate_watch.delay().get() == {"checked": 1, "red": 1, "alerted": 1, "cleared": 0,
                                                       "told": 0, "parents_told": 0, "resumed": 0,
                                                       "told_green": 0, "not_held": 0}
    (entry,) = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "sessions.tasks.sessions_gate_watch"]
    assert entry["schedule"] == 300.0


def test_a_lesson_more_than_24_hours_ahead_turned_red_waits_for_the_digest_with_no_email_at_once(personas):
    session = scheduled_session(personas, starts_at=timezone.now() + dt.timedelta(days=3))
    flag_the_risk_assessment(personas)
    result = gate_watch.sessions_gate_watch()
    assert (result.red, result.alerted, result.told) == (1, 1, 0) and told() == []
    assert SessionAlert.objects.get().kind == SessionAlert.Kind.GATE_RED  # the page still shows it
    items = DigestItem.objects.filter(kind=DigestItem.Kind.GATE_RED).order_by("user_id")
    assert [i.user for i in items] == sorted([personas.teacher, personas.headteacher], key=lambda u: u.pk)
    assert all(i.related_id == str(session.pk) and i.told_at is None and i.digest is None for i in items)
    assert "was flagged for review after an incident: Uninvited person joined" in items[0].text


def test_ten_lessons_within_24_hours_turning_red_give_each_person_one_email_naming_all_ten(personas):
    titles = [f"Lesson {n}" for n in range(1, 11)]
    for n, title in enumerate(titles):
        scheduled_session(personas, title=title, starts_at=soon(hours=2 + n))
    flag_the_risk_assessment(personas)
    assert gate_watch.sessions_gate_watch().alerted == 10
    result = watch_a_little_later()
    assert (result.red, result.alerted, result.told) == (10, 0, 2)
    messages = told()
    assert sorted(m.recipient for m in messages) == sorted([personas.teacher.email, personas.headteacher.email])
    for message in messages:
        assert message.subject == "10 lessons in the next 24 hours cannot go ahead"
        for title in titles:
            assert f'"{title}"' in message.body_text and f">{title}</h2>" in message.body_html
    assert gate_watch.sessions_gate_watch().told == 0


def test_ten_lessons_turning_red_over_two_runs_a_few_minutes_apart_make_one_email_per_person(personas):
    import time_machine

    first = [scheduled_session(personas, title=f"Lesson {n}", starts_at=soon(hours=2 + n)) for n in range(1, 6)]
    later = [scheduled_session(personas, title=f"Lesson {n}", host=personas.headteacher,
                               starts_at=soon(hours=2 + n)) for n in range(6, 11)]
    assert len(first + later) == 10
    host_leaves(personas)  # the teacher's five turn red now
    assert gate_watch.sessions_gate_watch().alerted == 5
    assert told() == []
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=2)):
        flag_the_risk_assessment(personas)  # and the headteacher's five two minutes later
        assert gate_watch.sessions_gate_watch().alerted == 5
    assert told() == []
    assert watch_a_little_later().told == 2
    (to_head,) = [m for m in told() if m.recipient == personas.headteacher.email]
    assert to_head.subject == "10 lessons in the next 24 hours cannot go ahead"
    assert all(f'"Lesson {n}"' in to_head.body_text for n in range(1, 11))
    assert watch_a_little_later().told == 0


def test_a_lesson_starting_within_half_an_hour_is_told_without_waiting(personas):
    scheduled_session(personas, starts_at=timezone.now() + dt.timedelta(minutes=25))
    host_leaves(personas)
    assert gate_watch.sessions_gate_watch().told == 2


def test_a_lesson_red_for_days_is_told_at_once_when_it_comes_within_24_hours_if_no_digest_told_it(personas):
    import time_machine

    session = scheduled_session(personas, starts_at=timezone.now() + dt.timedelta(days=3))
    flag_the_risk_assessment(personas)
    assert gate_watch.sessions_gate_watch().told == 0
    # The headteacher heard of it in a digest; the host, who turned the digest off, did not.
    DigestItem.objects.filter(user=personas.headteacher).update(digest=_digest_for(personas.headteacher))
    personas.teacher.daily_digest = False
    personas.teacher.save(update_fields=["daily_digest"])
    with time_machine.travel(session.starts_at - dt.timedelta(hours=23)):
        result = gate_watch.sessions_gate_watch()
    assert (result.alerted, result.told) == (0, 1)
    assert [m.recipient for m in told()] == [personas.teacher.email]
    assert DigestItem.objects.get(user=personas.teacher).told_at is not None


def _digest_for(user):
    from schools.models import Digest

    return Digest.objects.create(user=user, day=timezone.localdate(), sent=True)


def test_a_lesson_green_again_drops_the_notices_nobody_heard_of_yet(personas):
    scheduled_session(personas, starts_at=timezone.now() + dt.timedelta(days=3))
    host_leaves(personas)
    gate_watch.sessions_gate_watch()
    assert DigestItem.objects.count() == 2
    host_returns(personas)
    result = gate_watch.sessions_gate_watch()
    assert (result.cleared, result.told_green) == (1, 0)
    assert not DigestItem.objects.exists() and told_green() == []  # nobody had been told: nobody hears


def test_staff_told_a_lesson_cannot_go_ahead_are_emailed_once_when_it_can_again_one_email_for_all(personas):
    first = scheduled_session(personas, title="Owls phonics", starts_at=soon(2))
    second = scheduled_session(personas, title="Bats maths", starts_at=soon(4))
    host_leaves(personas)
    gate_watch.sessions_gate_watch()
    assert watch_a_little_later().told == 2
    host_returns(personas)
    result = gate_watch.sessions_gate_watch()
    assert (result.cleared, result.told_green) == (2, 2)
    messages = told_green()
    assert sorted(m.recipient for m in messages) == sorted([personas.teacher.email, personas.headteacher.email])
    for message in messages:
        assert message.subject == "2 lessons can go ahead again"
        assert "can go ahead as planned" in message.body_text
        assert '"Owls phonics"' in message.body_text and '"Bats maths"' in message.body_text
        assert ">Bats maths</h2>" in message.body_html
        for session in (first, second):
            assert f"{settings.SITE_URL}/sessions/{session.pk}/" in message.body_text
        assert ZOOM_URL not in message.body_text + message.body_html
    assert message.kind_label == "Lesson can go ahead again"
    assert watch_a_little_later().told_green == 0 and len(told_green()) == 2


def test_green_again_tells_only_those_told_in_this_red_spell(personas):
    session = scheduled_session(personas, starts_at=soon(3))
    host_leaves(personas)
    gate_watch.sessions_gate_watch()
    watch_a_little_later()  # told
    host_returns(personas)
    assert gate_watch.sessions_gate_watch().told_green == 2
    host_leaves(personas)
    gate_watch.sessions_gate_watch()  # red again, not told yet (the few minutes for more to turn red)
    host_returns(personas)
    result = gate_watch.sessions_gate_watch()
    assert (result.cleared, result.told_green) == (1, 0) and len(told_green()) == 2
    session.refresh_from_db()
    assert session.gate_red_since is None
