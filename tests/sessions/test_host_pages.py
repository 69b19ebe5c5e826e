"""The host's pages: the invitations on the session page, the roster, the checklist, attendance and incidents."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from consent.services import consent_refuse
from outbox.models import OutboxMessage
from riskassess.models import Assessment
from riskassess.services import video_lessons_assessment_status
from schools.models import AuditEntry
from sessions.host import attendance_record, incident_report, session_roster
from sessions.models import Attendance, Delivery, Incident, SessionAlert, VideoSession
from tests.consent.consent_setup import guardian_of, pupil_at
from tests.factories import GroupFactory

from .emails_dispatch import consenting_family, current_notice
from .sessions_setup import green_gate, session_row

pytestmark = pytest.mark.django_db

Status = Delivery.Status


def _url(name: str, session: VideoSession) -> str:
    return reverse(f"video_sessions:{name}", kwargs={"pk": session.pk})


def _session(personas, group, *, minutes_from_now: int = 24 * 60, host=None, **fields) -> VideoSession:
    """A session of `group` hosted by the teacher, starting `minutes_from_now` (negative: already started)."""
    session = session_row(personas.school, host or personas.teacher,
                          starts_at=timezone.now() + dt.timedelta(minutes=minutes_from_now), **fields)
    session.groups.add(group)
    return session


def _deliveries(session, group, count: int) -> list[Delivery]:
    """`count` invitations cycling through every status, each naming one consenting child of `group`."""
    statuses = list(Status)
    rows = []
    for n in range(count):
        guardian, (child,) = consenting_family(session.school, group, first_names=(f"Kid{n:03d}",))
        status = statuses[n % len(statuses)]
        rows.append(Delivery.objects.create(
            session=session, guardian=guardian, status=status, pupil_ids=[child.pk], attempts=n % 4,
            reason={Status.FAILED: "the mail server refused the address (550)",
                    Status.SKIPPED: "consent withdrawn before sending",
                    Status.CANCELLED: "the parent withdrew consent"}.get(status, ""),
            sent_at=timezone.now() if status == Status.SENT else None,
            possible_duplicate=1 if n == 4 else 0))
    return rows


# --- Invitations on the session page -------------------------------------------------------------------------

def test_the_session_page_shows_every_invitation_status_with_reasons_children_and_counts(personas, client_for):
    group = GroupFactory(school=personas.school)
    session = _session(personas, group, minutes_from_now=30)
    _deliveries(session, group, 7)
    page = client_for(personas.teacher).get(_url("session", session)).content.decode()
    for label in ("Queued", "Sending", "Waiting to retry", "Sent", "Failed", "Cancelled", "Skipped"):
        assert f">{label} <span class=\"badge text-bg-light\">1</span>" in page, label
    assert "All <span class=\"badge text-bg-light\">7</span>" in page
    assert "the mail server refused the address (550)" in page
    assert "consent withdrawn before sending" in page
    assert "Kid000" in page and "Kid006" in page
    assert "Possible duplicate" in page
    assert page.count('class="delivery-row"') == 7
    # Problems first: the failed row comes before the queued one.
    assert page.index('data-status="failed"') < page.index('data-status="pending"')


def test_the_invitations_can_be_filtered_by_status(personas, client_for):
    group = GroupFactory(school=personas.school)
    session = _session(personas, group, minutes_from_now=30)
    _deliveries(session, group, 7)
    page = client_for(personas.teacher).get(_url("session", session) + "?status=failed").content.decode()
    assert page.count('class="delivery-row"') == 1 and 'data-status="failed"' in page


def test_before_the_send_time_the_page_says_when_invitations_go(personas, client_for):
    group = GroupFactory(school=personas.school)
    session = _session(personas, group, minutes_from_now=3 * 60, lead_minutes=60)
    send = timezone.localtime(session.send_at, personas.school.tz)
    page = client_for(personas.teacher).get(_url("session", session)).content.decode()
    assert f"Invitations are sent 60 minutes before the start, at {send:%H:%M}" in page


def test_after_the_send_time_without_invitations_the_page_says_nobody_consented(personas, client_for):
    green_gate(personas)
    group = GroupFactory(school=personas.school)
    group.pupils.add(pupil_at(personas.school))
    session = _session(personas, group, minutes_from_now=20, lead_minutes=60)
    page = client_for(personas.teacher).get(_url("session", session)).content.decode()
    assert "No invitation has been made: no parent or carer of the children in this session has active consent" in page
    assert "Being prepared" not in page and "cannot go ahead" not in page


def test_after_the_send_time_with_a_red_gate_the_page_gives_the_gate_as_the_reason_not_consent(
        personas, client_for):
    group = GroupFactory(school=personas.school)
    consenting_family(personas.school, group, first_names=("Ava",))
    consenting_family(personas.school, group, first_names=("Ben",))
    session = _session(personas, group, minutes_from_now=20, lead_minutes=60)  # no signed PIA: red
    page = client_for(personas.teacher).get(_url("session", session)).content.decode()
    assert "No invitation is sent while the lesson cannot go ahead" in page
    assert "active consent" in page and "no parent or carer" not in page


def test_after_the_send_time_with_consent_and_no_invitation_yet_the_page_says_they_are_being_prepared(
        personas, client_for):
    green_gate(personas)
    group = GroupFactory(school=personas.school)
    consenting_family(personas.school, group, first_names=("Ava",))
    session = _session(personas, group, minutes_from_now=20, lead_minutes=60)
    page = client_for(personas.teacher).get(_url("session", session)).content.decode()
    assert "Being prepared: invitations go within a minute" in page
    assert "no parent or carer" not in page and "cannot go ahead" not in page


def test_a_long_list_of_invitations_is_paginated(personas, client_for):
    group = GroupFactory(school=personas.school)
    session = _session(personas, group, minutes_from_now=30)
    _deliveries(session, group, 55)
    client = client_for(personas.teacher)
    first = client.get(_url("session", session)).content.decode()
    assert first.count('class="delivery-row"') == 50 and "Page 1 of 2" in first
    second = client.get(_url("session", session) + "?page=2").content.decode()
    assert second.count('class="delivery-row"') == 5


def _page_queries(client, session) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(_url("session", session)).status_code == 200
    return len(queries)


def test_the_session_page_takes_the_same_number_of_queries_for_3_and_40_invitations(personas, client_for):
    client = client_for(personas.teacher)
    small_group, big_group = GroupFactory(school=personas.school), GroupFactory(school=personas.school)
    small, big = _session(personas, small_group, minutes_from_now=30), _session(personas, big_group,
                                                                                minutes_from_now=30)
    _deliveries(small, small_group, 3)
    _deliveries(big, big_group, 40)
    for session in (small, big):
        SessionAlert.objects.create(session=session, kind=SessionAlert.Kind.DELIVERY_FAILED, message="Bounced")
    _page_queries(client, small)  # warm the per-request caches (session, scope)
    assert _page_queries(client, small) == _page_queries(client, big)


def test_alerts_are_listed_on_the_session_page(personas, client_for):
    session = _session(personas, GroupFactory(school=personas.school))
    SessionAlert.objects.create(session=session, kind=SessionAlert.Kind.WITHDRAWN_AFTER_SEND,
                                message="A parent withdrew consent after the invitation was sent.")
    page = client_for(personas.teacher).get(_url("session", session)).content.decode()
    assert "A parent withdrew after the invitation was sent" in page
    assert "A parent withdrew consent after the invitation was sent." in page


# --- Roster --------------------------------------------------------------------------------------------------

def _mixed_group(personas, consenting: int = 2, refused: int = 1, silent: int = 1):
    group = GroupFactory(school=personas.school)
    notice = current_notice(personas.school)
    for n in range(consenting):
        consenting_family(personas.school, group, first_names=(f"Yes{n:03d}",))
    for n in range(refused):
        child = pupil_at(personas.school, first_name=f"No{n:03d}")
        group.pupils.add(child)
        consent_refuse(guardian=guardian_of(child), pupil=child, notice=notice)
    for n in range(silent):
        child = pupil_at(personas.school, first_name=f"Quiet{n:03d}")
        group.pupils.add(child)
        guardian_of(child)
    return group


def test_the_roster_splits_admitted_children_from_those_without_consent(personas, client_for):
    group = _mixed_group(personas)
    _, (picked,) = consenting_family(personas.school, GroupFactory(school=personas.school),
                                    first_names=("Picked",))
    session = _session(personas, group)
    session.pupils.add(picked)
    response = client_for(personas.teacher).get(_url("roster", session))
    page = response.content.decode()
    admitted = page[page.index("roster-admitted-list"):page.index("refused-heading")]
    refused = page[page.index("roster-refused-list"):]
    assert all(name in admitted for name in ("Yes000", "Yes001", "Picked"))
    assert "No000" in refused and "Quiet000" in refused and "No000" not in admitted
    assert 'May be admitted <span class="badge text-bg-success">3</span>' in page
    assert 'no consent <span class="badge text-bg-danger">2</span>' in page


def test_children_sharing_a_first_name_are_told_apart_by_initial(personas):
    group = GroupFactory(school=personas.school)
    consenting_family(personas.school, group, first_names=("Sam",))
    twin = pupil_at(personas.school, first_name="Sam", last_name="Zed")
    group.pupils.add(twin)
    roster = session_roster(_session(personas, group))
    assert [c.name for c in roster.refused] == ["Sam Z."]
    assert roster.admitted[0].name.startswith("Sam ") and roster.shared_first_names == ["Sam"]


def test_the_roster_takes_the_same_number_of_queries_for_4_and_40_children(personas, client_for):
    client = client_for(personas.teacher)
    small = _session(personas, _mixed_group(personas, 2, 1, 1))
    big = _session(personas, _mixed_group(personas, 20, 10, 10))

    def queries(session):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(_url("roster", session)).status_code == 200
        return len(captured)

    queries(small)
    assert queries(small) == queries(big)


# --- Checklist -----------------------------------------------------------------------------------------------

def test_the_checklist_has_the_protocol_and_the_approved_assessments_controls(personas, client_for):
    green_gate(personas)
    version = video_lessons_assessment_status(school=personas.school).version
    hazard = version.hazards.exclude(controls="").order_by("position").first()
    session = _session(personas, GroupFactory(school=personas.school))
    page = client_for(personas.office).get(_url("checklist", session)).content.decode()
    assert "Turn the waiting room on" in page
    assert f"“{version.assessment.title}”, version {version.number}" in page
    assert hazard.controls.split("\n")[0][:40] in page.replace("&#x27;", "'")
    assert page.count("<dt>") == version.hazards.exclude(controls="").count()


def test_without_an_approved_assessment_the_checklist_says_so(personas, client_for):
    session = _session(personas, GroupFactory(school=personas.school))
    page = client_for(personas.teacher).get(_url("checklist", session)).content.decode()
    assert "No approved risk assessment for live video lessons applies" in page


# --- Attendance ----------------------------------------------------------------------------------------------

def _attendance_post(session, present: dict, adult: dict | None = None) -> dict:
    data = {f"present_{pk}": value for pk, value in present.items()}
    data.update({f"adult_{pk}": value for pk, value in (adult or {}).items()})
    return data


def test_attendance_before_the_start_says_when_it_opens(personas, client_for):
    session = _session(personas, _mixed_group(personas), minutes_from_now=90)
    page = client_for(personas.teacher).get(_url("attendance", session)).content.decode()
    assert "Attendance opens at the start of the session" in page
    assert 'name="present_' not in page


def test_attendance_after_the_start_saves_every_child_and_updates_on_resave(personas, client_for):
    group = _mixed_group(personas, 2, 1, 0)
    session = _session(personas, group, minutes_from_now=-10)
    ids = sorted(group.pupils.values_list("pk", flat=True))
    client = client_for(personas.teacher)
    page = client.get(_url("attendance", session)).content.decode()
    assert page.count('class="attendance-row') == 3 and "Not invited" in page and "without consent" in page
    response = client.post(_url("attendance", session), _attendance_post(
        session, {ids[0]: "yes", ids[1]: "yes", ids[2]: "no"}, {ids[0]: "yes", ids[1]: "unknown", ids[2]: "yes"}))
    assert response.status_code == 302
    saved = {a.pupil_id: (a.present, a.adult_present) for a in Attendance.objects.filter(session=session)}
    assert saved == {ids[0]: (True, True), ids[1]: (True, None), ids[2]: (False, None)}
    client.post(_url("attendance", session), _attendance_post(session, {ids[0]: "no", ids[1]: "yes", ids[2]: "no"},
                                                              {ids[1]: "no"}))
    assert Attendance.objects.filter(session=session).count() == 3
    assert Attendance.objects.get(session=session, pupil_id=ids[1]).adult_present is False
    assert not Attendance.objects.get(session=session, pupil_id=ids[0]).present
    entries = AuditEntry.objects.filter(action="session.attendance_recorded")
    assert entries.count() == 2 and entries.order_by("pk").first().data["present"] == 2


def test_attendance_with_a_child_unanswered_saves_nothing(personas, client_for):
    group = _mixed_group(personas, 2, 0, 0)
    session = _session(personas, group, minutes_from_now=-10)
    first = group.pupils.order_by("pk").first()
    response = client_for(personas.teacher).post(_url("attendance", session), {f"present_{first.pk}": "yes"})
    assert response.status_code == 200
    assert "was present." in response.content.decode()
    assert not Attendance.objects.exists()


def test_attendance_of_a_cancelled_session_is_refused(personas, client_for):
    group = _mixed_group(personas, 1, 0, 0)
    session = _session(personas, group, minutes_from_now=-10, status=VideoSession.Status.CANCELLED)
    pupil = group.pupils.get()
    response = client_for(personas.teacher).post(_url("attendance", session), {f"present_{pupil.pk}": "yes"})
    assert response.status_code == 302 and not Attendance.objects.exists()
    with pytest.raises(Exception, match="cancelled"):
        attendance_record(session=session, actor=personas.teacher, rows={pupil.pk: (True, None)})


def test_attendance_refuses_a_child_who_is_not_in_the_session(personas):
    session = _session(personas, _mixed_group(personas, 1, 0, 0), minutes_from_now=-10)
    stranger = pupil_at(personas.school)
    with pytest.raises(Exception, match="only for the children of this session"):
        attendance_record(session=session, actor=personas.teacher, rows={stranger.pk: (True, True)})
    assert not Attendance.objects.exists()


# --- Incidents -----------------------------------------------------------------------------------------------

def _report(client, session, **overrides):
    data = {"kind": Incident.Kind.UNINVITED, "description": "An adult <b>nobody knew</b> joined as 'Ava'.",
            "ended_early": "on"}
    data.update(overrides)
    return client.post(_url("incident", session), data)


def test_an_incident_is_recorded_alerted_emailed_and_flags_the_assessment(personas, client_for):
    green_gate(personas)
    session = _session(personas, GroupFactory(school=personas.school), minutes_from_now=-5)
    response = _report(client_for(personas.teacher), session)
    assert response.status_code == 302
    incident = Incident.objects.get()
    assert incident.kind == Incident.Kind.UNINVITED and incident.ended_early
    assert incident.description == "An adult <b>nobody knew</b> joined as 'Ava'."
    assert incident.flagged_assessment is not None
    assert Assessment.objects.get(pk=incident.flagged_assessment_id).review_flagged_at is not None
    assert not video_lessons_assessment_status(school=personas.school).ok  # the gate turns red
    alert = SessionAlert.objects.get(session=session, kind=SessionAlert.Kind.INCIDENT)
    assert "Uninvited participant" in alert.message and "ended early" in alert.message
    email = OutboxMessage.objects.get(template="session-incident")
    assert email.recipient == personas.headteacher.email
    assert "nobody knew" not in email.body_text and "nobody knew" not in email.body_html
    assert "Uninvited participant" in email.subject
    link = _url("session", session)
    assert link in email.body_text and link in email.body_html
    entry = AuditEntry.objects.get(action="session.incident_reported")
    assert entry.data["kind"] == "uninvited" and "nobody" not in str(entry.data)


def test_a_technical_problem_does_not_flag_the_assessment(personas, client_for):
    green_gate(personas)
    session = _session(personas, GroupFactory(school=personas.school), minutes_from_now=-5)
    _report(client_for(personas.office), session, kind=Incident.Kind.TECHNICAL, description="Sound failed.",
            ended_early="")
    incident = Incident.objects.get()
    assert incident.flagged_assessment is None and not incident.ended_early
    assert video_lessons_assessment_status(school=personas.school).ok
    assert OutboxMessage.objects.filter(template="session-incident").count() == 1


def test_an_incident_without_a_description_is_refused_and_changes_nothing(personas, client_for):
    session = _session(personas, GroupFactory(school=personas.school), minutes_from_now=-5)
    response = _report(client_for(personas.teacher), session, description="   ")
    assert response.status_code == 200 and "Say what happened." in response.content.decode()
    assert not Incident.objects.exists() and not SessionAlert.objects.exists()
    assert not OutboxMessage.objects.filter(template="session-incident").exists()


def test_incident_reports_open_at_the_start_and_never_for_a_cancelled_session(personas, client_for):
    client = client_for(personas.teacher)
    ahead = _session(personas, GroupFactory(school=personas.school), minutes_from_now=60)
    assert "Incident reports open at the start" in client.get(_url("incident", ahead)).content.decode()
    _report(client, ahead)
    cancelled = _session(personas, GroupFactory(school=personas.school), minutes_from_now=-5,
                         status=VideoSession.Status.CANCELLED)
    assert _report(client, cancelled).status_code == 302
    assert not Incident.objects.exists()
    with pytest.raises(Exception, match="opens at the start"):
        incident_report(session=ahead, actor=personas.teacher, kind="technical", description="x", ended_early=False)


def test_an_incident_can_be_reported_after_the_session_ended(personas, client_for):
    session = _session(personas, GroupFactory(school=personas.school), minutes_from_now=-3 * 24 * 60)
    assert _report(client_for(personas.teacher), session).status_code == 302
    assert Incident.objects.filter(session=session).count() == 1


def test_what_happened_is_shown_to_the_headteacher_and_the_reporter_only(personas, client_for):
    session = _session(personas, GroupFactory(school=personas.school), minutes_from_now=-5,
                       host=personas.headteacher)
    _report(client_for(personas.teacher), session, kind=Incident.Kind.SAFEGUARDING)
    for user, sees in ((personas.teacher, True), (personas.headteacher, True), (personas.office, False),
                       (personas.dpo, False)):
        page = client_for(user).get(_url("session", session)).content.decode()
        assert "Safeguarding concern" in page, user
        assert ("nobody knew" in page) is sees, user
        if sees:
            assert "&lt;b&gt;nobody knew&lt;/b&gt;" in page


def test_the_list_puts_the_hosts_next_sessions_first(personas, client_for):
    session_row(personas.school, personas.teacher, title="My lesson")
    session_row(personas.school, personas.headteacher, title="Head assembly")
    page = client_for(personas.teacher).get(reverse("video_sessions:list")).content.decode()
    box = page[page.index("Your next sessions as host"):page.index("</section>")]
    assert "My lesson" in box and "Head assembly" not in box
    assert "Head assembly" in page  # the full list still shows the school's sessions


def test_the_incident_email_escapes_the_title_in_html_only(personas):
    session = session_row(personas.school, personas.teacher, title="Owls <b> & co",
                          starts_at=timezone.now() - dt.timedelta(minutes=5))
    incident_report(session=session, actor=personas.office, kind=Incident.Kind.CONTENT, description="Rude video.",
                    ended_early=False)
    email = OutboxMessage.objects.get(template="session-incident")
    assert '"Owls <b> & co"' in email.body_text and "Inappropriate content" in email.body_text
    assert "Owls &lt;b&gt; &amp; co" in email.body_html and "<b> &" not in email.body_html
    assert "Rude video" not in email.body_text + email.body_html + email.subject


def test_only_the_host_creator_or_headteacher_record_attendance_and_only_school_staff_report(personas, client_for):
    group = _mixed_group(personas, 1, 0, 0)
    session = _session(personas, group, minutes_from_now=-10)
    pupil = group.pupils.get()
    assert client_for(personas.office).post(_url("attendance", session),
                                            {f"present_{pupil.pk}": "yes"}).status_code == 403
    assert client_for(personas.dpo).post(_url("incident", session), {
        "kind": "technical", "description": "x"}).status_code == 403
    with pytest.raises(PermissionDenied):
        attendance_record(session=session, actor=personas.office, rows={pupil.pk: (True, None)})
    with pytest.raises(PermissionDenied):
        incident_report(session=session, actor=personas.siro, kind="technical", description="x", ended_early=False)
    assert not Attendance.objects.exists() and not Incident.objects.exists()
    attendance_record(session=session, actor=personas.headteacher, rows={pupil.pk: (True, None)})
    assert Attendance.objects.get().recorded_by == personas.headteacher


def test_times_on_the_session_page_are_in_the_schools_time_zone(personas, client_for):
    personas.school.time_zone = "Asia/Tokyo"
    personas.school.save(update_fields=["time_zone"])
    group = GroupFactory(school=personas.school)
    session = _session(personas, group, minutes_from_now=30)
    (sent,) = [d for d in _deliveries(session, group, 7) if d.status == Status.SENT]
    Delivery.objects.filter(pk=sent.pk).update(sent_at=dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.UTC))
    page = client_for(personas.teacher).get(_url("session", session)).content.decode()
    assert "2 Mar, 10:30" in page  # 01:30 UTC is 10:30 in Tokyo


def test_a_child_without_consent_marked_present_prompts_an_incident_report(personas, client_for):
    group = _mixed_group(personas, 0, 1, 0)
    session = _session(personas, group, minutes_from_now=-10)
    refused = group.pupils.get()
    response = client_for(personas.teacher).post(_url("attendance", session), {f"present_{refused.pk}": "yes"},
                                                 follow=True)
    assert "Marked present without consent: No000" in response.content.decode()
    assert Attendance.objects.get().present


def test_the_session_page_says_since_when_the_gate_is_red(personas, client_for):
    session = _session(personas, GroupFactory(school=personas.school), gate_red_since=timezone.now())
    page = client_for(personas.teacher).get(_url("session", session)).content.decode()
    assert "A check has failed since" in page
