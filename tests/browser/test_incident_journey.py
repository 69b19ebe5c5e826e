"""An incident from report to review in the browser: the teacher reports an uninvited participant in a Laxey
lesson; Laxey's lessons stop while Dhoon's go ahead with a notice; the headteacher finds it on the home page,
opens the flagged assessment, confirms it's them and records "Reviewed — no change needed"; Laxey is green
again and the log shows the incident closed. Every page passes axe-core; screenshots go to test-artifacts/."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from riskassess.models import ReviewFlag
from schools.models import AuditEntry
from sessions.models import Incident
from tests.sessions.incidents_setup import federation
from tests.sessions.sessions_setup import session_row

from .conftest import signed_in_context
from .test_pia_signoff import confirm_its_me
from .test_staff_sign_in import blocking_violations

pytestmark = pytest.mark.browser


@pytest.fixture
def signed_in_page(browser, live_server):
    contexts = []

    def open_as(user):
        context = signed_in_context(browser, live_server, user, viewport={"width": 1280, "height": 900})
        contexts.append(context)
        return context.new_page()

    yield open_as
    for context in contexts:
        context.close()


def _url(live_server, name, **kwargs) -> str:
    return live_server.url + reverse(name, kwargs=kwargs)


def test_an_incident_is_reported_reviewed_by_the_head_and_the_school_goes_green_again(
        live_server, transactional_db, personas, signed_in_page, artifacts):
    fed = federation(personas)
    tomorrow = session_row(personas.school, personas.teacher, title="Owls maths",
                           starts_at=timezone.now() + dt.timedelta(days=1))
    dhoon_tomorrow = session_row(fed.dhoon, fed.dhoon_teacher, title="Wrens maths",
                                 starts_at=timezone.now() + dt.timedelta(days=1))

    # The teacher reports it.
    teacher = signed_in_page(personas.teacher)
    teacher.goto(_url(live_server, "video_sessions:incident", pk=fed.laxey_lesson.pk))
    teacher.get_by_label("Uninvited participant").check()
    teacher.get_by_label("What happened").fill("Someone called 'Ava2' joined; I removed them and locked it.")
    teacher.get_by_role("button", name="Report the incident").click()
    assert teacher.get_by_text("no lesson at Laxey Test School can be scheduled").is_visible()
    assert blocking_violations(teacher) == []
    teacher.screenshot(path=artifacts / "incident-reported.png", full_page=True)

    # Dhoon goes ahead, with the notice (seen by the organisation admin).
    admin = signed_in_page(personas.org_admin)
    admin.goto(_url(live_server, "video_sessions:session", pk=dhoon_tomorrow.pk))
    assert admin.get_by_text("The session may go ahead").is_visible()
    assert admin.locator(".gate-notice").inner_text().endswith(
        "under review after an incident at Laxey Test School; lessons here may go ahead meanwhile.")
    assert blocking_violations(admin) == []
    admin.screenshot(path=artifacts / "incident-other-school-amber.png", full_page=True)

    # The headteacher: the home page, the flagged assessment, "confirm it's you", the review.
    head = signed_in_page(personas.headteacher)
    head.goto(_url(live_server, "schools:dashboard"))
    incidents = head.locator(".home-incidents")
    assert "Under review" in incidents.inner_text() and "Uninvited participant" in incidents.inner_text()
    assert head.get_by_text("Cannot go ahead yet").first.is_visible()
    assert blocking_violations(head) == []
    head.screenshot(path=artifacts / "incident-head-home.png", full_page=True)

    incidents.get_by_role("link", name="risk assessment to review").first.click()
    review = head.locator("#review")
    assert "Lessons stopped at Laxey Test School" in review.inner_text()
    assert "The other schools of Test Federation see a notice and go ahead." in review.inner_text()
    assert blocking_violations(head) == []
    head.screenshot(path=artifacts / "incident-flagged-assessment.png", full_page=True)

    head.get_by_role("link", name="Reviewed — no change needed…").click()
    confirm_its_me(head, personas.headteacher)
    head.wait_for_url(f"**{reverse('riskassess:assessment-review', kwargs={'pk': fed.assessment.pk})}")
    head.get_by_label("Why no change is needed").fill("The waiting room held and the host removed them at once.")
    assert blocking_violations(head) == []
    head.screenshot(path=artifacts / "incident-review-no-change.png", full_page=True)
    head.get_by_role("button", name="Reviewed — no change needed").click()
    assert head.get_by_text("lessons at Laxey Test School may go ahead again").is_visible()
    assert "Reviews after incidents" in head.content()
    head.screenshot(path=artifacts / "incident-reviewed.png", full_page=True)

    # Green again, and the log shows the incident closed with the reason.
    head.goto(_url(live_server, "video_sessions:session", pk=tomorrow.pk))
    assert head.get_by_text("The session may go ahead").is_visible()
    head.goto(_url(live_server, "video_sessions:incidents-school", school_pk=personas.school.pk))
    row = head.locator(".incident-row").first
    assert "Closed" in row.inner_text() and "The waiting room held" in row.inner_text()
    assert blocking_violations(head) == []
    head.screenshot(path=artifacts / "incident-log.png", full_page=True)
    row.get_by_role("link", name="Uninvited participant").click()
    assert "Someone called 'Ava2' joined" in head.locator(".incident-description").inner_text()
    assert "Reviewed: no change needed" in head.locator("#review").inner_text()
    assert blocking_violations(head) == []
    head.screenshot(path=artifacts / "incident-report-page.png", full_page=True)

    incident = Incident.objects.get(session=fed.laxey_lesson)
    assert incident.status == Incident.Status.CLOSED
    assert ReviewFlag.objects.get().outcome == ReviewFlag.Outcome.NO_CHANGE
    assert AuditEntry.objects.filter(action="risk.reviewed_no_change", actor_id=personas.headteacher.pk).exists()
