"""Scheduling, changing and cancelling sessions through the services: the link, the title, the password, the
school's time zone across DST, recurrence, the protocol's cap, the lead time and the audience."""

import datetime as dt
import json
import logging

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone

from consent.models import Purpose
from pia.models import Platform
from riskassess.models import Assessment
from riskassess.services import assessment_flag_for_review
from schools.models import AuditEntry
from sessions.models import Protocol, VideoSession
from sessions.protocol import protocol_save
from sessions.services import (
    PASSWORD_ALPHABET,
    clean_meeting_url,
    session_cancel,
    session_password_reveal,
    session_schedule,
    session_update,
)
from tests.factories import GroupFactory, PupilFactory
from tests.sessions.sessions_setup import schedule_kwargs, scheduled_session

pytestmark = pytest.mark.django_db

UTC = dt.UTC
# Europe/London in 2027: clocks go forward on Sunday 28 March (01:00 GMT), back on Sunday 31 October (01:00 GMT).
BEFORE_2027_CHANGES = dt.datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def _errors(call) -> dict:
    with pytest.raises(ValidationError) as error:
        call()
    return error.value.message_dict


def _schedule(personas, **overrides) -> list[VideoSession]:
    return session_schedule(**schedule_kwargs(personas, **overrides))


# --- scheduling ---------------------------------------------------------------------------------------------

def test_scheduling_behind_a_green_gate_creates_the_session_and_an_audit_entry(personas):
    session = scheduled_session(personas)
    assert session.status == "scheduled" and session.revision == 1 and session.series is None
    assert session.host == personas.teacher and session.created_by == personas.teacher
    assert session.purpose == Purpose.objects.get(organisation=personas.organisation)
    assert session.send_at == session.starts_at - dt.timedelta(minutes=60)
    entry = AuditEntry.objects.get(action="session.scheduled")
    assert entry.data["session_ids"] == [session.pk] and entry.data["password_generated"] is True


def test_a_blank_password_is_generated_strong_and_different_each_time(personas):
    first, second = scheduled_session(personas), scheduled_session(personas)
    assert len(first.password) == 10 and set(first.password) <= set(PASSWORD_ALPHABET)
    assert first.password != second.password


def test_a_given_password_is_kept(personas):
    assert scheduled_session(personas, password="Owl-7731").password == "Owl-7731"


def test_the_password_and_link_are_encrypted_at_rest(personas):
    session = scheduled_session(personas, password="Owl-7731")
    with connection.cursor() as cursor:
        cursor.execute("SELECT password, meeting_url FROM video_sessions_videosession WHERE id = %s", [session.pk])
        raw_password, raw_url = cursor.fetchone()
    assert raw_password and "Owl-7731" not in raw_password
    assert raw_url and "zoom.us" not in raw_url
    assert VideoSession.objects.get(pk=session.pk).password == "Owl-7731"


def test_the_password_never_reaches_the_audit_trail_or_the_logs(personas, caplog):
    caplog.set_level(logging.DEBUG)
    session = scheduled_session(personas, password="Owl-7731")
    session_update(session=session, actor=personas.teacher, password="Fox-2468")
    session_password_reveal(session=session, actor=personas.teacher)
    session_cancel(session=session, actor=personas.teacher, reason="Snow day")
    audit = json.dumps([entry.data for entry in AuditEntry.objects.all()]) + " ".join(
        AuditEntry.objects.values_list("object_repr", flat=True))
    for secret in ("Owl-7731", "Fox-2468", "81234567890"):
        assert secret not in audit
        assert secret not in caplog.text
    assert AuditEntry.objects.filter(action="session.password_revealed").count() == 1


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "JavaScript://zoom.us/%0aalert(1)", "http://zoom.us/j/123", "data:text/html,hi",
    "https://user@zoom.us/j/123", "https://zoom.us@evil.example/j/123", "https://zoom.us/j/1 23",
    "https://zoom.us/j/123\r\nBcc: x@example.org", " https://zoom.us/j/123", "https://evil.example/j/123",
    "https://zoom.us.evil.example/j/123", "https://notzoom.us/j/123", "//zoom.us/j/123", "https://",
    "https://127.0.0.1/j/1",
])
def test_a_meeting_link_that_is_not_https_on_the_platforms_host_is_refused(personas, url):
    assert "meeting_url" in _errors(lambda: _schedule(personas, meeting_url=url))
    assert not VideoSession.objects.exists()


@pytest.mark.parametrize(("kind", "url"), [
    ("zoom", "https://zoom.us/j/123?pwd=abc"), ("zoom", "https://us02web.zoom.us/j/123"),
    ("teams", "https://teams.microsoft.com/l/meetup-join/19%3ameeting"), ("teams", "https://teams.live.com/meet/9"),
    ("webex", "https://school.webex.com/meet/room"), ("jitsi", "https://meet.jit.si/LaxeyYear3"),
    ("jitsi", "https://jitsi.school.example/room"), ("bigbluebutton", "https://bbb.school.example:8443/b/abc"),
])
def test_links_on_each_platforms_allowed_hosts_are_accepted(kind, url):
    assert clean_meeting_url(url, kind=kind) == url


@pytest.mark.parametrize(("kind", "url"), [
    ("teams", "https://teams.microsoft.com.evil.example/x"), ("teams", "https://zoom.us/j/1"),
    ("webex", "https://webex.com.evil.example/x"), ("jitsi", "http://meet.jit.si/room"),
])
def test_links_off_a_platforms_allowed_hosts_are_refused(kind, url):
    with pytest.raises(ValidationError):
        clean_meeting_url(url, kind=kind)


@pytest.mark.parametrize("title", ["Story time\r\nBcc: all@example.org", "Story time\n", "Story\rtime",
                                   "Story\u2028time", "Story\x00time"])
def test_a_title_with_a_line_break_or_control_character_is_refused(personas, title):
    assert "title" in _errors(lambda: _schedule(personas, title=title))


def test_a_duration_over_the_protocols_maximum_is_refused(personas):
    assert "duration_minutes" in _errors(lambda: _schedule(personas, duration_minutes=31))
    assert _schedule(personas, duration_minutes=30)[0].duration_minutes == 30


def test_a_school_that_tightens_the_protocol_lowers_the_cap(personas):
    values = {"max_duration_minutes": 20, "lock_after_minutes": 5, "notes": ""}
    values |= {name: True for name, kind in Protocol.RULES if kind == "flag"}
    protocol_save(actor=personas.headteacher, organisation=personas.organisation, school=personas.school,
                  values=values)
    errors = _errors(lambda: _schedule(personas, duration_minutes=25))
    assert "at most 20" in errors["duration_minutes"][0]


@pytest.mark.parametrize(("lead", "ok"), [(9, False), (10, True), (1440, True), (1441, False)])
def test_the_lead_time_is_ten_minutes_to_a_day(personas, lead, ok):
    if ok:
        assert _schedule(personas, lead_minutes=lead)[0].lead_minutes == lead
    else:
        assert "lead_minutes" in _errors(lambda: _schedule(personas, lead_minutes=lead))


def test_groups_and_pupils_must_be_of_the_school_and_at_least_one_is_needed(personas):
    assert "groups" in _errors(lambda: _schedule(personas, groups=[GroupFactory(school=personas.other_school)]))
    assert "groups" in _errors(lambda: _schedule(personas, groups=[], pupils=[]))
    assert "pupils" in _errors(lambda: _schedule(personas, groups=[],
                                                 pupils=[PupilFactory(school=personas.other_school)]))
    left = PupilFactory(school=personas.school, left_on=timezone.localdate())
    assert "pupils" in _errors(lambda: _schedule(personas, groups=[], pupils=[left]))
    pupil = PupilFactory(school=personas.school)
    session = _schedule(personas, groups=[], pupils=[pupil])[0]
    assert list(session.pupils.all()) == [pupil]


def test_a_platform_of_another_organisation_is_refused(personas):
    theirs = Platform.objects.create(organisation=personas.other_school.organisation, name="Zoom", kind="zoom")
    assert "platform" in _errors(lambda: _schedule(personas, platform=theirs))


def test_only_the_schools_teachers_office_and_headteacher_schedule(personas):
    for actor in (personas.office, personas.headteacher):
        assert _schedule(personas, actor=actor)
    for actor in (personas.dpo, personas.org_admin, personas.other_teacher):
        with pytest.raises(PermissionDenied):
            _schedule(personas, actor=actor)


def test_a_start_in_the_past_is_refused(personas):
    past = timezone.localtime(timezone.now(), personas.school.tz).replace(tzinfo=None) - dt.timedelta(hours=1)
    assert "starts_at" in _errors(lambda: _schedule(personas, starts_at=past))


def test_without_a_consent_purpose_nothing_is_scheduled(personas):
    kwargs = schedule_kwargs(personas)
    Purpose.objects.all().delete()
    kwargs["purpose"] = None
    assert "__all__" in _errors(lambda: session_schedule(**kwargs))


# --- the school's time zone and DST -------------------------------------------------------------------------

@pytest.mark.parametrize(("day", "utc_hour"), [
    (dt.date(2027, 3, 27), 9), (dt.date(2027, 3, 28), 8), (dt.date(2027, 3, 29), 8),
    (dt.date(2027, 10, 30), 8), (dt.date(2027, 10, 31), 9), (dt.date(2027, 11, 1), 9),
])
def test_nine_oclock_in_london_around_each_dst_change_is_stored_as_the_right_instant(personas, day, utc_hour):
    with time_machine.travel(BEFORE_2027_CHANGES, tick=False):
        session = _schedule(personas, starts_at=dt.datetime.combine(day, dt.time(9, 0)))[0]
    stored = VideoSession.objects.get(pk=session.pk).starts_at
    assert stored == dt.datetime.combine(day, dt.time(utc_hour, 0), tzinfo=UTC)
    assert timezone.localtime(stored, personas.school.tz).time() == dt.time(9, 0)


def test_a_time_that_does_not_exist_on_the_spring_forward_night_is_refused(personas):
    with time_machine.travel(BEFORE_2027_CHANGES, tick=False):
        errors = _errors(lambda: _schedule(personas, starts_at=dt.datetime(2027, 3, 28, 1, 30)))
    assert "does not exist" in errors["starts_at"][0]
    assert not VideoSession.objects.exists()


def test_a_time_that_happens_twice_on_the_autumn_night_is_the_first_one_in_summer_time(personas):
    with time_machine.travel(BEFORE_2027_CHANGES, tick=False):
        session = _schedule(personas, starts_at=dt.datetime(2027, 10, 31, 1, 30))[0]
    assert session.starts_at == dt.datetime(2027, 10, 31, 0, 30, tzinfo=UTC)  # 01:30 BST, not 01:30 GMT


def test_weekly_sessions_keep_their_local_time_across_the_clocks_going_forward(personas):
    with time_machine.travel(BEFORE_2027_CHANGES, tick=False):
        sessions = _schedule(personas, starts_at=dt.datetime(2027, 3, 15, 9, 0),
                             repeat_weekly_until=dt.date(2027, 4, 5))
    assert [s.starts_at for s in sessions] == [
        dt.datetime(2027, 3, 15, 9, tzinfo=UTC), dt.datetime(2027, 3, 22, 9, tzinfo=UTC),
        dt.datetime(2027, 3, 29, 8, tzinfo=UTC), dt.datetime(2027, 4, 5, 8, tzinfo=UTC),
    ]
    assert len({s.series for s in sessions}) == 1 and sessions[0].series is not None
    entry = AuditEntry.objects.get(action="session.scheduled")
    assert entry.data["session_ids"] == [s.pk for s in sessions]


def test_weekly_sessions_keep_their_local_time_across_the_clocks_going_back(personas):
    with time_machine.travel(BEFORE_2027_CHANGES, tick=False):
        sessions = _schedule(personas, starts_at=dt.datetime(2027, 10, 25, 16, 0),
                             repeat_weekly_until=dt.date(2027, 11, 1))
    assert [s.starts_at for s in sessions] == [dt.datetime(2027, 10, 25, 15, tzinfo=UTC),
                                               dt.datetime(2027, 11, 1, 16, tzinfo=UTC)]


def test_a_weekly_series_that_would_land_on_a_missing_hour_is_refused_whole(personas):
    with time_machine.travel(BEFORE_2027_CHANGES, tick=False):
        errors = _errors(lambda: _schedule(personas, starts_at=dt.datetime(2027, 3, 21, 1, 30),
                                           repeat_weekly_until=dt.date(2027, 4, 4)))
    assert "28 March 2027" in errors["starts_at"][0]
    assert not VideoSession.objects.exists()


def test_a_weekly_series_is_at_most_26_sessions_and_ends_after_it_starts(personas):
    start = dt.datetime.combine(timezone.localdate() + dt.timedelta(days=1), dt.time(9, 0))
    too_long = _errors(lambda: _schedule(personas, starts_at=start,
                                         repeat_weekly_until=start.date() + dt.timedelta(weeks=26)))
    assert "At most 26" in too_long["repeat_weekly_until"][0]
    assert len(_schedule(personas, starts_at=start, repeat_weekly_until=start.date() + dt.timedelta(weeks=25))) == 26
    backwards = _errors(lambda: _schedule(personas, starts_at=start,
                                          repeat_weekly_until=start.date() - dt.timedelta(days=1)))
    assert "repeat_weekly_until" in backwards


# --- changing and cancelling --------------------------------------------------------------------------------

def test_moving_the_session_raises_its_revision_and_keeps_the_lead_time(personas):
    session = scheduled_session(personas)
    later = timezone.localtime(session.starts_at, personas.school.tz).replace(tzinfo=None) + dt.timedelta(hours=2)
    moved = session_update(session=session, actor=personas.teacher, starts_at=later)
    assert moved.revision == 2 and moved.starts_at == session.starts_at + dt.timedelta(hours=2)
    assert moved.send_at == moved.starts_at - dt.timedelta(minutes=60)
    assert AuditEntry.objects.get(action="session.updated").data["changed"] == ["starts_at"]


@pytest.mark.parametrize(("field", "value"), [
    ("meeting_url", "https://zoom.us/j/99999999999"), ("meeting_id", "999 9999 9999"), ("password", "New-Pass-9"),
])
def test_a_new_link_meeting_id_or_password_raises_the_revision(personas, field, value):
    session = scheduled_session(personas)
    assert session_update(session=session, actor=personas.teacher, **{field: value}).revision == 2


def test_a_new_title_or_a_blank_password_leaves_the_revision(personas):
    session = scheduled_session(personas, password="Owl-7731")
    updated = session_update(session=session, actor=personas.teacher, title="Year 3 reading", password="")
    assert updated.revision == 1 and updated.title == "Year 3 reading" and updated.password == "Owl-7731"


def test_changing_a_session_checks_the_rules_and_the_gate_again(personas):
    session = scheduled_session(personas)
    assert "meeting_url" in _errors(lambda: session_update(session=session, actor=personas.teacher,
                                                           meeting_url="http://zoom.us/j/1"))
    assert "title" in _errors(lambda: session_update(session=session, actor=personas.teacher, title="A\r\nB"))
    assessment_flag_for_review(assessment=Assessment.objects.get(school=personas.school), reason="Zoombombing",
                               actor=personas.headteacher)
    errors = _errors(lambda: session_update(session=session, actor=personas.teacher, title="New title"))
    assert "flagged for review" in " ".join(errors["__all__"])
    assert VideoSession.objects.get(pk=session.pk).title == "Year 3 story time"


def test_only_the_host_the_creator_and_the_headteacher_change_a_session(personas):
    session = scheduled_session(personas, actor=personas.office, host=personas.teacher)
    for actor in (personas.teacher, personas.office, personas.headteacher):
        session_update(session=session, actor=actor, title=f"By {actor.pk}")
    for actor in (personas.dpo, personas.org_admin, personas.other_teacher):
        with pytest.raises(PermissionDenied):
            session_update(session=session, actor=actor, title="Nope")
        with pytest.raises(PermissionDenied):
            session_cancel(session=session, actor=actor, reason="Nope")


def test_cancelling_needs_a_reason_and_is_audited_once(personas):
    session = scheduled_session(personas)
    assert "reason" in _errors(lambda: session_cancel(session=session, actor=personas.teacher, reason="  "))
    cancelled = session_cancel(session=session, actor=personas.teacher, reason="The teacher is ill")
    assert cancelled.status == "cancelled" and cancelled.cancelled_by == personas.teacher
    assert AuditEntry.objects.get(action="session.cancelled").data["reason"] == "The teacher is ill"
    assert "__all__" in _errors(lambda: session_cancel(session=session, actor=personas.teacher, reason="Again"))
    assert "__all__" in _errors(lambda: session_update(session=session, actor=personas.teacher, title="Back"))


def test_cancelling_one_week_of_a_series_leaves_the_others(personas):
    start = dt.datetime.combine(timezone.localdate() + dt.timedelta(days=1), dt.time(9, 0))
    first, second = _schedule(personas, starts_at=start, repeat_weekly_until=start.date() + dt.timedelta(weeks=1))
    session_cancel(session=first, actor=personas.teacher, reason="Trip")
    assert VideoSession.objects.get(pk=second.pk).status == "scheduled"


def test_a_started_session_can_no_longer_be_changed(personas):
    session = scheduled_session(personas)
    with time_machine.travel(session.starts_at + dt.timedelta(minutes=1), tick=False):
        assert "__all__" in _errors(lambda: session_update(session=session, actor=personas.teacher, title="Late"))
