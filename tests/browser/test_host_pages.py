"""The host on a phone: the session page with its invitations, the roster, attendance and an incident report;
and attendance for a class of 36 on a tablet, with and without JavaScript. Each page passes axe-core;
screenshots kept in test-artifacts/."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from consent.services import consent_refuse
from outbox.models import OutboxMessage
from sessions.models import Attendance, Delivery, Incident, SessionAlert
from tests.browser.conftest import signed_in_context
from tests.browser.test_staff_sign_in import blocking_violations
from tests.consent.consent_setup import guardian_of, pupil_at
from tests.factories import GroupFactory
from tests.sessions.emails_dispatch import consenting_family, current_notice
from tests.sessions.sessions_setup import green_gate, session_row

pytestmark = pytest.mark.browser

Status = Delivery.Status


def _started_session(personas):
    """A session that started five minutes ago: Ava and Ben invited (one sent, one failed), Ivy refused."""
    green_gate(personas)
    owls = GroupFactory(school=personas.school, name="Owls")
    session = session_row(personas.school, personas.teacher, title="Owls story time",
                          starts_at=timezone.now() - dt.timedelta(minutes=5))
    session.groups.add(owls)
    for name, status, reason in (("Ava", Status.SENT, ""), ("Ben", Status.FAILED, "the address was refused (550)")):
        guardian, (child,) = consenting_family(personas.school, owls, first_names=(name,))
        Delivery.objects.create(session=session, guardian=guardian, status=status, pupil_ids=[child.pk], attempts=1,
                                reason=reason, sent_at=timezone.now() if status == Status.SENT else None)
    ivy = pupil_at(personas.school, first_name="Ivy")
    owls.pupils.add(ivy)
    consent_refuse(guardian=guardian_of(ivy), pupil=ivy, notice=current_notice(personas.school))
    return session


@pytest.fixture
def host_phone(browser, live_server, personas):
    context = signed_in_context(browser, live_server, personas.teacher, viewport={"width": 390, "height": 844},
                                is_mobile=True, has_touch=True)
    yield context.new_page()
    context.close()


def test_the_host_follows_a_session_records_attendance_and_reports_an_incident_on_a_phone(
        live_server, transactional_db, personas, host_phone, artifacts):
    page = host_phone
    session = _started_session(personas)
    page.goto(live_server.url + reverse("video_sessions:session", kwargs={"pk": session.pk}))
    invitations = page.locator("section", has=page.get_by_role("heading", name="Invitations"))
    assert "the address was refused (550)" in invitations.inner_text()
    assert page.locator(".delivery-row").count() == 2
    assert blocking_violations(page) == []
    page.screenshot(path=artifacts / "host-session-phone.png", full_page=True)

    page.get_by_role("link", name="Roster for the waiting room").click()
    assert page.locator(".roster-admitted-list").inner_text().split() == ["Ava", "Ben"]
    assert page.locator(".roster-refused-list").inner_text().split() == ["Ivy"]
    assert blocking_violations(page) == []
    page.screenshot(path=artifacts / "host-roster-phone.png", full_page=True)

    page.goto(live_server.url + reverse("video_sessions:attendance", kwargs={"pk": session.pk}))
    for name, present in (("Ava", "Present"), ("Ben", "Absent")):
        page.get_by_role("group", name=f"Was {name} present?").get_by_label(present).check()
    page.get_by_role("group", name="Was an adult with Ava?").get_by_label("Yes").check()
    assert not page.get_by_role("group", name="Was Ivy present?").is_visible()  # not invited: folded away
    assert blocking_violations(page) == []
    page.get_by_role("button", name="Save attendance").click()
    assert page.get_by_text("Attendance saved for 2 children.").is_visible()
    assert Attendance.objects.filter(session=session, present=True, adult_present=True).count() == 1

    page.get_by_role("link", name="Report an incident").click()
    page.get_by_label("Uninvited participant").check()
    page.get_by_label("What happened").fill("Someone called 'Ava2' joined; I removed them and locked the meeting.")
    page.get_by_label("The session was ended early because of it").check()
    assert blocking_violations(page) == []
    page.get_by_role("button", name="Report the incident").click()
    assert page.get_by_text("Incident recorded. The headteacher has been emailed.").is_visible()
    assert page.locator(".session-alert[data-kind=incident]").is_visible()
    page.screenshot(path=artifacts / "host-incident-reported-phone.png", full_page=True)
    incident = Incident.objects.get(session=session)
    assert incident.ended_early and incident.flagged_assessment is not None
    assert SessionAlert.objects.filter(session=session, kind=SessionAlert.Kind.INCIDENT).exists()
    assert OutboxMessage.objects.filter(template="session-incident", recipient=personas.headteacher.email).exists()


def _class_of_36(personas):
    """A lesson that started 35 minutes ago for a class of 36: Aoife Corrigan and Aoife Cowan invited (their
    parents consented and were sent the link), the other 34 without consent."""
    green_gate(personas)
    oak = GroupFactory(school=personas.school, name="Oak class")
    session = session_row(personas.school, personas.teacher, title="Oak class phonics",
                          starts_at=timezone.now() - dt.timedelta(minutes=35))
    session.groups.add(oak)
    invited = []
    for last_name in ("Corrigan", "Cowan"):
        guardian, (child,) = consenting_family(personas.school, oak, first_names=("Aoife",))
        child.last_name = last_name
        child.save(update_fields=["last_name"])
        Delivery.objects.create(session=session, guardian=guardian, status=Status.SENT, pupil_ids=[child.pk],
                                attempts=1, sent_at=timezone.now(), sent_revision=1)
        invited.append(child)
    for n in range(34):
        child = pupil_at(personas.school, first_name=f"Pupil{n:02d}")
        oak.pupils.add(child)
        guardian_of(child)
    return session, invited


def _host_tablet(browser, live_server, personas, *, javascript: bool = True):
    return signed_in_context(browser, live_server, personas.teacher, viewport={"width": 820, "height": 1180},
                             is_mobile=True, has_touch=True, java_script_enabled=javascript)


def test_attendance_for_2_invited_of_a_class_of_36_takes_four_taps_on_a_tablet(
        browser, live_server, transactional_db, personas, artifacts):
    session, (corrigan, cowan) = _class_of_36(personas)
    context = _host_tablet(browser, live_server, personas)
    page = context.new_page()
    page.goto(live_server.url + reverse("video_sessions:session", kwargs={"pk": session.pk}))
    taps = 0

    page.get_by_role("link", name="Attendance", exact=True).click()
    taps += 1
    invited = page.locator(".attendance-expected")
    assert invited.locator(".attendance-row").count() == 2
    assert [name.strip() for name in invited.locator("tbody th").all_inner_texts()] == ["Aoife Cor.", "Aoife Cow."]
    assert not page.get_by_role("group", name="Was Pupil00 present?").is_visible()
    page.screenshot(path=artifacts / "host-attendance-tablet.png", full_page=True)
    assert blocking_violations(page) == []

    page.get_by_role("group", name="Was Aoife Cow. present?").get_by_label("Absent").check()
    taps += 1
    page.get_by_role("button", name="Mark the rest present").click()
    taps += 1
    assert page.get_by_text("1 child not yet answered is marked present").is_visible()
    assert page.get_by_role("group", name="Was Aoife Cor. present?").get_by_label("Present").is_checked()
    assert page.get_by_role("group", name="Was Aoife Cow. present?").get_by_label("Absent").is_checked()
    page.get_by_role("button", name="Save attendance").click()
    taps += 1
    assert page.get_by_text("Attendance saved for 2 children.").is_visible()
    assert taps == 4
    saved = {a.pupil_id: a.present for a in Attendance.objects.filter(session=session)}
    assert saved == {corrigan.pk: True, cowan.pk: False}

    # A child of the class who joined anyway: open the folded list and record them too.
    page.goto(live_server.url + reverse("video_sessions:attendance", kwargs={"pk": session.pk}))
    page.locator(".attendance-others summary").click()
    page.get_by_role("group", name="Was Pupil07 present?").get_by_label("Present").check()
    assert blocking_violations(page) == []
    page.screenshot(path=artifacts / "host-attendance-tablet-expanded.png", full_page=True)
    page.get_by_role("button", name="Save attendance").click()
    assert page.get_by_text("Marked present without consent: Pupil07.").is_visible()
    assert Attendance.objects.filter(session=session).count() == 3
    context.close()


def test_mark_the_rest_present_works_without_javascript_and_keeps_absent(
        browser, live_server, transactional_db, personas, artifacts):
    session, (corrigan, cowan) = _class_of_36(personas)
    context = _host_tablet(browser, live_server, personas, javascript=False)
    page = context.new_page()
    page.goto(live_server.url + reverse("video_sessions:attendance", kwargs={"pk": session.pk}))
    page.get_by_role("group", name="Was Aoife Cow. present?").get_by_label("Absent").check()
    page.get_by_role("button", name="Mark the rest present").click()
    assert page.get_by_text("1 child not yet answered is marked present.").is_visible()
    assert not Attendance.objects.exists()
    assert page.get_by_role("group", name="Was Aoife Cor. present?").get_by_label("Present").is_checked()
    assert page.get_by_role("group", name="Was Aoife Cow. present?").get_by_label("Absent").is_checked()
    page.screenshot(path=artifacts / "host-attendance-tablet-no-javascript.png", full_page=True)
    page.get_by_role("button", name="Save attendance").click()
    assert page.get_by_text("Attendance saved for 2 children.").is_visible()
    assert {a.pupil_id: a.present for a in Attendance.objects.all()} == {corrigan.pk: True, cowan.pk: False}
    context.close()
