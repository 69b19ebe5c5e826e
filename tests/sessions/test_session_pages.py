"""The session pages: upcoming sessions, the schedule form with the gate, the session page with the password
masked, edit, cancel and the protocol pages."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from pia.models import Platform
from schools.models import AuditEntry
from sessions.models import Protocol, VideoSession
from tests.conftest import sign_in
from tests.factories import GroupFactory, TOTPDeviceFactory
from tests.sessions.sessions_setup import ZOOM_URL, green_gate, scheduled_session, session_row, video_purpose

pytestmark = pytest.mark.django_db


def _form(personas, group, **overrides) -> dict:
    day = timezone.localdate(timezone.now(), personas.school.tz) + dt.timedelta(days=2)
    data = {
        "title": "Year 3 story time", "platform": str(green_gate(personas).pk), "host": str(personas.teacher.pk),
        "groups": [str(group.pk)], "meeting_url": ZOOM_URL, "meeting_id": "812 3456 7890", "password": "",
        "start_date": day.isoformat(), "start_time": "09:00", "duration_minutes": "30", "lead_minutes": "60",
        "repeat_weekly_until": "",
    }
    data["purpose"] = str(video_purpose(personas.organisation).pk)
    data.update(overrides)
    return data


def _schedule_url(personas) -> str:
    return reverse("video_sessions:schedule", kwargs={"school_pk": personas.school.pk})


# --- upcoming sessions --------------------------------------------------------------------------------------

def test_the_list_says_when_there_are_no_sessions(personas, client_for):
    response = client_for(personas.teacher).get(reverse("video_sessions:list"))
    assert "No upcoming sessions" in response.content.decode()
    assert "Schedule a session" in response.content.decode()


def test_the_list_shows_the_schools_sessions_and_never_another_schools(personas, client_for):
    ours = session_row(personas.school, personas.teacher, title="Our assembly")
    session_row(personas.other_school, personas.other_teacher, title="Their assembly")
    page = client_for(personas.dpo).get(reverse("video_sessions:list")).content.decode()
    assert "Our assembly" in page and "Their assembly" not in page
    assert reverse("video_sessions:session", kwargs={"pk": ours.pk}) in page
    assert "Schedule a session" not in page  # the DPO reads, never schedules


def test_mine_shows_only_the_sessions_i_host_or_scheduled(personas, client_for):
    session_row(personas.school, personas.teacher, title="Teacher lesson")
    session_row(personas.school, personas.headteacher, title="Head assembly")
    page = client_for(personas.teacher).get(reverse("video_sessions:list") + "?show=mine").content.decode()
    assert "Teacher lesson" in page and "Head assembly" not in page


def test_cancelled_and_past_sessions_are_left_out_unless_asked(personas, client_for):
    session_row(personas.school, personas.teacher, title="Called off", status="cancelled")
    session_row(personas.school, personas.teacher, title="Last month", starts_at=timezone.now() - dt.timedelta(days=30))
    client = client_for(personas.teacher)
    page = client.get(reverse("video_sessions:list")).content.decode()
    assert "Called off" not in page and "Last month" not in page
    page = client.get(reverse("video_sessions:list") + "?include_cancelled=on").content.decode()
    assert "Called off" in page and "Last month" not in page


def test_the_list_is_paginated(personas, client_for):
    start = timezone.now() + dt.timedelta(days=1)
    for n in range(27):
        session_row(personas.school, personas.teacher, title=f"Lesson {n:02d}", starts_at=start + dt.timedelta(hours=n))
    client = client_for(personas.teacher)
    first = client.get(reverse("video_sessions:list")).content.decode()
    assert "Lesson 00" in first and "Lesson 26" not in first and "Page 1 of 2" in first
    second = client.get(reverse("video_sessions:list") + "?page=2").content.decode()
    assert "Lesson 26" in second and "Lesson 00" not in second


def test_the_navigation_has_a_sessions_entry(personas, client_for):
    page = client_for(personas.office).get(reverse("schools:dashboard")).content.decode()
    assert reverse("video_sessions:list") in page


# --- scheduling ---------------------------------------------------------------------------------------------

def test_the_schedule_form_shows_each_platforms_gate_with_its_reasons(personas, client_for):
    green_gate(personas)
    Platform.objects.create(organisation=personas.organisation, name="Teams", kind="teams")
    page = client_for(personas.teacher).get(_schedule_url(personas)).content.decode()
    assert "No PIA is attached to Teams" in page
    assert page.count("text-bg-success\">Can go ahead") == 1 and page.count("text-bg-danger\">Cannot go ahead") == 1
    assert "Who can fix it: The DPO advises on the PIA, then the headteacher and the SIRO sign it." in page


def test_scheduling_through_the_form_opens_the_session_with_the_password_masked(personas, client_for):
    group = GroupFactory(school=personas.school)
    client = client_for(personas.teacher)
    response = client.post(_schedule_url(personas), _form(personas, group), follow=True)
    session = VideoSession.objects.get()
    assert response.redirect_chain[-1][0] == reverse("video_sessions:session", kwargs={"pk": session.pk})
    page = response.content.decode()
    assert "Scheduled for" in page and "Gatehouse made a password" in page
    assert session.password not in page and "••••••••" in page
    assert timezone.localtime(session.starts_at, personas.school.tz).time() == dt.time(9, 0)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"meeting_url": "javascript:alert(1)"}, "must start with https://"),
    ({"meeting_url": "http://zoom.us/j/1"}, "must start with https://"),
    ({"title": "Story\r\nBcc: all@example.org"}, "one line"),
    ({"title": "Story time\r\n"}, "one line"),
    ({"duration_minutes": "45"}, "at most 30"),
    ({"lead_minutes": "5"}, "From 10 minutes"),
    ({"groups": []}, "at least one group or pupil"),
])
def test_bad_input_on_the_schedule_form_is_shown_and_nothing_is_saved(personas, client_for, overrides, message):
    group = GroupFactory(school=personas.school)
    response = client_for(personas.teacher).post(_schedule_url(personas), _form(personas, group, **overrides))
    assert response.status_code == 200 and message in response.content.decode()
    assert not VideoSession.objects.exists()


def test_a_missing_hour_on_the_form_is_refused_with_a_clear_message(personas, client_for):
    group = GroupFactory(school=personas.school)
    data = _form(personas, group, start_date="2027-03-28", start_time="01:30")
    with time_machine.travel(dt.datetime(2027, 3, 1, 12, tzinfo=dt.UTC), tick=False):
        response = client_for(personas.teacher).post(_schedule_url(personas), data)
    assert "01:30 does not exist on 28 March 2027" in response.content.decode()
    assert not VideoSession.objects.exists()


def test_a_time_that_happens_twice_is_scheduled_at_the_first_and_the_page_says_so(personas, client_for):
    group = GroupFactory(school=personas.school)
    data = _form(personas, group, start_date="2027-10-31", start_time="01:30")
    with time_machine.travel(dt.datetime(2027, 3, 1, 12, tzinfo=dt.UTC), tick=False):
        response = client_for(personas.teacher).post(_schedule_url(personas), data, follow=True)
    assert "happens twice that night" in response.content.decode()
    assert VideoSession.objects.get().starts_at == dt.datetime(2027, 10, 31, 0, 30, tzinfo=dt.UTC)


def test_a_red_gate_on_the_form_refuses_with_its_reason(personas, client_for):
    group = GroupFactory(school=personas.school)
    green_gate(personas)
    teams = Platform.objects.create(organisation=personas.organisation, name="Teams", kind="teams")
    data = _form(personas, group, platform=str(teams.pk), meeting_url="https://teams.microsoft.com/l/meetup-join/1")
    response = client_for(personas.teacher).post(_schedule_url(personas), data)
    assert "The session may not be scheduled: No PIA is attached to Teams." in response.content.decode()
    assert not VideoSession.objects.exists()


# --- the session page ---------------------------------------------------------------------------------------

def test_the_session_page_shows_the_gate_the_protocol_and_never_the_password(personas, client_for):
    session = scheduled_session(personas, password="Owl-7731")
    url = reverse("video_sessions:session", kwargs={"pk": session.pk})
    page = client_for(personas.office).get(url).content.decode()
    assert "The session may go ahead" in page
    assert "Owl-7731" not in page and ZOOM_URL not in page and "us02web.zoom.us" in page
    assert "Waiting room" in page and "At most 30 minutes" in page and "Host checklist" in page
    assert "Show the password" not in page  # the office did not schedule it and does not host it
    assert "Edit or reschedule" not in page


def test_the_session_page_shows_each_red_reason(personas, client_for):
    session = session_row(personas.school, personas.teacher)
    url = reverse("video_sessions:session", kwargs={"pk": session.pk})
    page = client_for(personas.teacher).get(url).content.decode()
    assert "The session may not go ahead" in page
    assert "No PIA is attached to Zoom." in page and "No approved risk assessment for live video lessons." in page


def test_the_host_reveals_the_password_by_post_and_it_is_audited(personas, client_for):
    session = scheduled_session(personas, password="Owl-7731")
    client = client_for(personas.teacher)
    url = reverse("video_sessions:session", kwargs={"pk": session.pk})
    assert "Show the password" in client.get(url).content.decode()
    response = client.post(reverse("video_sessions:password", kwargs={"pk": session.pk}))
    assert "Owl-7731" in response.content.decode() and "no-store" in response["Cache-Control"]
    assert AuditEntry.objects.filter(action="session.password_revealed", object_id=str(session.pk)).exists()
    assert "Owl-7731" not in client.get(url).content.decode()


# --- edit and cancel ----------------------------------------------------------------------------------------

def test_the_edit_form_never_shows_the_password_and_a_new_time_raises_the_revision(personas, client_for):
    session = scheduled_session(personas, password="Owl-7731")
    client = client_for(personas.teacher)
    url = reverse("video_sessions:edit", kwargs={"pk": session.pk})
    page = client.get(url).content.decode()
    assert "Owl-7731" not in page and 'value="09:00"' in page
    local = timezone.localtime(session.starts_at, personas.school.tz)
    data = {"title": session.title, "platform": session.platform_id, "host": session.host_id,
            "groups": [g.pk for g in session.groups.all()], "meeting_url": ZOOM_URL, "meeting_id": session.meeting_id,
            "password": "", "start_date": local.date().isoformat(), "start_time": "10:15", "duration_minutes": "30",
            "lead_minutes": "60"}
    response = client.post(url, data, follow=True)
    assert "Parents already invited will be sent the new details" in response.content.decode()
    session.refresh_from_db()
    assert session.revision == 2 and timezone.localtime(session.starts_at, personas.school.tz).time() == dt.time(10, 15)
    assert session.password == "Owl-7731"


def test_cancelling_needs_a_reason_on_the_page(personas, client_for):
    session = scheduled_session(personas)
    client = client_for(personas.headteacher)
    url = reverse("video_sessions:cancel", kwargs={"pk": session.pk})
    assert "This field is required" in client.post(url, {"reason": ""}).content.decode()
    response = client.post(url, {"reason": "Staff training day"}, follow=True)
    assert "The session is cancelled." in response.content.decode()
    assert "Staff training day" in response.content.decode()
    assert VideoSession.objects.get(pk=session.pk).status == "cancelled"


# --- the protocol -------------------------------------------------------------------------------------------

def _protocol_data(**overrides) -> dict:
    data = {name: "on" for name, kind in Protocol.RULES if kind == "flag"}
    data |= {"lock_after_minutes": "5", "max_duration_minutes": "30", "notes": ""}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_the_headteacher_tightens_the_schools_protocol_but_cannot_loosen_it(personas, client_for):
    client = client_for(personas.headteacher)
    url = reverse("video_sessions:school-protocol", kwargs={"school_pk": personas.school.pk})
    response = client.post(url, _protocol_data(chat_closed=None, max_duration_minutes="40"))
    page = response.content.decode()
    assert "stays on" in page and "At most 30 minutes" in page and not Protocol.objects.exists()
    response = client.post(url, _protocol_data(max_duration_minutes="20"), follow=True)
    assert "Saved version 1 of Laxey Test School" in response.content.decode()
    assert "At most 20 minutes." in response.content.decode()


def test_the_organisation_admin_saves_a_new_version_of_the_organisations_protocol(personas, client_for):
    url = reverse("video_sessions:organisation-protocol", kwargs={"organisation_pk": personas.organisation.pk})
    response = client_for(personas.org_admin).post(url, _protocol_data(lock_after_minutes="3"), follow=True)
    assert "Saved version 1 of the organisation" in response.content.decode()
    assert Protocol.objects.get(school__isnull=True).lock_after_minutes == 3


def test_the_teacher_reads_the_protocol_without_a_form(personas, client_for):
    url = reverse("video_sessions:school-protocol", kwargs={"school_pk": personas.school.pk})
    page = client_for(personas.teacher).get(url).content.decode()
    assert "the seed's protocol" in page and "Save a new version" not in page


def test_the_admin_lists_sessions_read_only_and_never_shows_the_link_or_password(personas, client):
    session = scheduled_session(personas, password="Owl-7731")
    user = User.objects.create_superuser("root", "root@example.org", "x")
    TOTPDeviceFactory(user=user)
    sign_in(client, user)
    assert client.get(reverse("admin:video_sessions_videosession_add")).status_code == 403
    assert client.get(reverse("admin:video_sessions_protocol_changelist")).status_code == 200
    page = client.get(reverse("admin:video_sessions_videosession_change", args=[session.pk])).content.decode()
    assert "Year 3 story time" in page and "Owl-7731" not in page and "us02web.zoom.us" not in page
