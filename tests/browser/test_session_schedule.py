"""A teacher signs in, schedules a live lesson for a class in which some families consented and some did not,
and after the dispatcher has run, the demo mailbox shows an invitation for each consenting parent and none
for the others. The schedule form, the session page and the mailbox pass axe-core."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from consent.services import consent_refuse
from outbox.models import OutboxMessage
from sessions.dispatch import deliveries_plan, delivery_send_batch
from sessions.models import Delivery, VideoSession
from tests.browser.test_staff_sign_in import blocking_violations
from tests.consent.consent_setup import guardian_of, pupil_at
from tests.factories import PASSWORD, GroupFactory
from tests.sessions.emails_dispatch import consenting_family, current_notice
from tests.sessions.sessions_setup import ZOOM_URL, green_gate

pytestmark = pytest.mark.browser

INVITATION_SUBJECT = "Live lesson for"


@pytest.fixture
def demo_mailbox(settings, tmp_path):
    """The demo's email settings: what is sent is recorded where the demo mailbox reads it."""
    settings.DEMO_MODE = True
    settings.EMAIL_BACKEND = "outbox.demo_backend.DemoMailboxBackend"
    settings.EMAIL_FILE_PATH = tmp_path


def test_a_teacher_schedules_a_lesson_and_only_consenting_parents_are_invited(
        live_server, transactional_db, personas, page, artifacts, demo_mailbox):
    school, teacher = personas.school, personas.teacher
    green_gate(personas)
    current_notice(school)
    owls = GroupFactory(school=school, name="Owls")
    # Ava's and Ben's parents consented; Dot's parent has not answered; Eve's parent refused.
    invited = [consenting_family(school, owls, first_names=(name,))[0] for name in ("Ava", "Ben")]
    silent_child, refused_child = pupil_at(school, first_name="Dot"), pupil_at(school, first_name="Eve")
    owls.pupils.add(silent_child, refused_child)
    not_invited = [guardian_of(silent_child), guardian_of(refused_child)]
    consent_refuse(guardian=not_invited[1], pupil=refused_child, notice=current_notice(school))
    teacher.set_password(PASSWORD)
    teacher.save()

    page.goto(live_server.url + reverse("accounts:login"))
    page.fill("input[name=username]", teacher.username)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form[action$='/login/'] button[type=submit]").click()
    page.wait_for_url(f"**{reverse('schools:dashboard')}")

    page.goto(live_server.url + reverse("video_sessions:list"))
    page.get_by_role("link", name="Schedule a session").click()
    page.wait_for_url(f"**{reverse('video_sessions:schedule', kwargs={'school_pk': school.pk})}")
    # Forty minutes from now, with the default hour's lead: the invitations are due at once.
    start = timezone.localtime(timezone.now() + dt.timedelta(minutes=40), school.tz)
    form = page.locator("#schedule-form")
    form.locator("input[name=title]").fill("Owls story time")
    form.locator("select[name=platform]").select_option(label="Zoom")
    form.locator("select[name=host]").select_option(str(teacher.pk))
    form.get_by_label("Owls", exact=True).check()
    form.locator("input[name=meeting_url]").fill(ZOOM_URL)
    form.locator("input[name=meeting_id]").fill("812 3456 7890")
    form.locator("input[name=start_date]").fill(start.date().isoformat())
    form.locator("input[name=start_time]").fill(start.strftime("%H:%M"))
    form.locator("input[name=duration_minutes]").fill("30")
    form.locator("input[name=lead_minutes]").fill("60")
    assert page.locator(".platform-gate .badge").first.inner_text() == "Can go ahead"
    assert blocking_violations(page) == [], "the schedule form has serious or critical accessibility violations"
    page.screenshot(path=artifacts / "session-schedule-form.png", full_page=True)
    with page.expect_navigation():
        page.get_by_role("button", name="Schedule", exact=True).click()
    assert VideoSession.objects.count() == 1, [
        (el.get_attribute("name"), el.evaluate("e => e.validationMessage || e.className"))
        for el in page.locator(".is-invalid").all()]
    session = VideoSession.objects.get()
    assert page.url.endswith(reverse("video_sessions:session", kwargs={"pk": session.pk}))
    assert page.locator("h1").inner_text().strip().startswith("Owls story time")
    assert page.get_by_text("The session may go ahead").first.is_visible()
    assert session.password not in page.content()
    assert timezone.localtime(session.starts_at, school.tz).strftime("%H:%M") == start.strftime("%H:%M")
    assert blocking_violations(page) == [], "the session page has serious or critical accessibility violations"
    page.screenshot(path=artifacts / "session-scheduled.png", full_page=True)

    # A session already due is planned as soon as it is scheduled (Celery runs eagerly in the tests); the
    # beat's planner and the send task then run as the worker's would, and send nothing twice.
    deliveries_plan()
    delivery_send_batch(Delivery.objects.filter(session=session).values_list("pk", flat=True))
    assert Delivery.objects.filter(session=session, status=Delivery.Status.SENT).count() == 2
    assert Delivery.objects.filter(session=session).count() == 2

    page.goto(live_server.url + reverse("outbox:demo-mailbox"))
    rows = page.locator("tbody tr").filter(has_text=INVITATION_SUBJECT)
    assert rows.count() == 2
    listed = rows.all_inner_texts()
    for guardian in invited:
        assert sum(guardian.email in text for text in listed) == 1, guardian.email
    for guardian in not_invited:
        assert not any(guardian.email in text for text in listed), guardian.email
    assert {m.recipient for m in OutboxMessage.objects.filter(subject__startswith=INVITATION_SUBJECT)} == {
        g.email for g in invited}
    assert blocking_violations(page) == [], "the demo mailbox has serious or critical accessibility violations"
    page.screenshot(path=artifacts / "session-invitations-in-demo-mailbox.png", full_page=True)

    # The invitation opens in the mailbox: the time with its zone in the text part, and the HTML part.
    rows.filter(has_text="Ava").get_by_role("link").click()
    assert page.get_by_text("Owls story time").first.is_visible()
    assert "(Europe/London, " in page.locator("body").inner_text()
    html_part = page.frame_locator("iframe").first
    html_part.get_by_text("Ava is invited").first.wait_for()  # the sandboxed HTML part has loaded
    # A full-page screenshot leaves the frame blank: the frame is photographed on its own.
    page.locator("iframe").first.screenshot(path=artifacts / "session-invitation-html-part.png")
    page.screenshot(path=artifacts / "session-invitation-in-demo-mailbox.png", full_page=True)


def test_the_schedule_form_follows_the_groups_ticked_and_asks_to_confirm_a_shortfall(
        live_server, transactional_db, personas, page, artifacts):
    school, teacher = personas.school, personas.teacher
    green_gate(personas)
    owls = GroupFactory(school=school, name="Owls")
    consenting_family(school, owls, first_names=("Ava",))
    for name in ("Dot", "Eve", "Fay"):  # three children whose parents have not answered
        child = pupil_at(school, first_name=name, last_name="Quine")
        owls.pupils.add(child)
        guardian_of(child)
    teacher.set_password(PASSWORD)
    teacher.save()

    page.goto(live_server.url + reverse("accounts:login"))
    page.fill("input[name=username]", teacher.username)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form[action$='/login/'] button[type=submit]").click()
    page.wait_for_url(f"**{reverse('schools:dashboard')}")
    page.goto(live_server.url + reverse("video_sessions:schedule", kwargs={"school_pk": school.pk}))
    start = timezone.localtime(timezone.now() + dt.timedelta(days=1), school.tz)
    form = page.locator("#schedule-form")
    form.locator("input[name=title]").fill("Owls story time")
    form.locator("select[name=platform]").select_option(label="Zoom")
    form.locator("input[name=meeting_url]").fill(ZOOM_URL)
    form.locator("input[name=start_date]").fill(start.date().isoformat())
    form.locator("input[name=start_time]").fill("09:00")
    # With the script, "Check coverage" and "Find" are not needed: the page follows the boxes and the search.
    assert not page.get_by_role("button", name="Check coverage").is_visible()
    form.get_by_label("Owls", exact=True).check()
    coverage = page.locator("#coverage")
    coverage.locator(".coverage-summary").get_by_text("1 of 4 children may attend").wait_for()
    assert "3 with no answer yet: 3 parents have not answered" in coverage.inner_text()
    form.locator("#id_pupil_search").press_sequentially("quin")
    page.locator("#picker-found").get_by_text("Dot Quine").wait_for()
    assert page.locator("#picker-found").get_by_text("No answer").count() == 3
    assert blocking_violations(page) == [], "the schedule form with its coverage has serious or critical violations"
    page.screenshot(path=artifacts / "session-schedule-coverage.png", full_page=True)

    # Scheduling without ticking the box is refused by the server; ticking it schedules, and the page warns.
    with page.expect_navigation():
        page.get_by_role("button", name="Schedule", exact=True).click()
    assert not VideoSession.objects.exists()
    # Said at the top of the form, linked to the box further down, and again beside the box.
    summary = page.locator(".form-error-summary")
    assert summary.is_visible() and "Not saved yet: one thing needs your attention." in summary.inner_text()
    assert page.locator(".coverage-confirm").get_by_text("fewer than the federation's 50").is_visible()
    page.screenshot(path=artifacts / "session-schedule-refused.png")
    summary.get_by_role("link", name="Few children may attend").click()
    assert page.get_by_label("Schedule anyway: only 1 of 4 children may attend.").is_visible()
    page.get_by_label("Schedule anyway: only 1 of 4 children may attend.").check()
    page.locator("input[name=meeting_url]").fill(ZOOM_URL)  # nothing else was lost: only the box was missing
    with page.expect_navigation():
        page.get_by_role("button", name="Schedule", exact=True).click()
    session = VideoSession.objects.get()
    # (A browser keeps the fragment of the summary's link through the redirect.)
    assert page.url.split("#")[0].endswith(reverse("video_sessions:session", kwargs={"pk": session.pk}))
    assert page.locator(".coverage-warning").get_by_text("Only 1 of 4 children may attend").is_visible()
    page.screenshot(path=artifacts / "session-scheduled-with-warning.png", full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server.url + reverse("video_sessions:edit", kwargs={"pk": session.pk}))
    page.locator("#coverage .coverage-summary").get_by_text("1 of 4 children may attend").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=artifacts / "session-edit-coverage-phone.png", full_page=True)
