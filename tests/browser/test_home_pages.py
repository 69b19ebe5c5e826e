"""Every role's home page in a real browser, on a desk and on a 390 px phone: what a person came for is on the
first screen, and each page passes axe-core with no serious or critical violation. Screenshots are kept in
test-artifacts/ (home-<role>-<device>.png)."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from consent.models import RightsRequest
from riskassess.services import assessment_flag_for_review
from sessions.models import Delivery, Incident
from tests.browser.conftest import signed_in_context
from tests.browser.test_staff_sign_in import blocking_violations
from tests.consent.consent_setup import guardian_of, publish, pupil_at
from tests.factories import GroupFactory
from tests.pia.pia_setup import draft_pia
from tests.sessions.sessions_setup import scheduled_session, session_row, video_purpose

pytestmark = pytest.mark.browser

DEVICES = {"desk": {"viewport": {"width": 1280, "height": 900}},
           "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}}


def _a_busy_week(personas):
    """A lesson ready, one blocked, a failed invitation, an overdue request, an incident, a PIA waiting."""
    from consent.services import consent_give
    from pia import services as pia_services

    notice = publish(video_purpose(personas.organisation))
    owls = GroupFactory(school=personas.school, name="Owls")
    for n in range(3):
        pupil = pupil_at(personas.school, first_name=f"Child{n}")
        owls.pupils.add(pupil)
        if n == 0:
            consent_give(guardian=guardian_of(pupil), pupil=pupil, notice=notice, attestation=True)
        else:
            guardian_of(pupil)
    ready = scheduled_session(personas, title="Owls story time", groups=[owls])
    blocked = session_row(personas.school, personas.dpo, title="Owls phonics",
                          starts_at=timezone.now() + dt.timedelta(days=2))
    blocked.groups.add(owls)
    Delivery.objects.create(session=ready, guardian=owls.pupils.first().guardians.first(),
                            status=Delivery.Status.FAILED, reason="the address was refused (550)")
    RightsRequest.objects.create(school=personas.school, guardian=owls.pupils.first().guardians.first(),
                                 guardian_label="Sinéad Corrigan", kind=RightsRequest.Kind.ACCESS,
                                 due_on=timezone.localdate() - dt.timedelta(days=2))
    Incident.objects.create(session=ready, kind=Incident.Kind.UNINVITED, description="Someone joined.",
                            reported_by=personas.teacher)
    version = draft_pia(personas.organisation, personas.office, school=personas.school, title="Teams")
    pia_services.version_submit(version=version, actor=personas.office)
    assessment = personas.school.risk_assessments.first() or personas.organisation.risk_assessments.first()
    assert assessment is not None
    return assessment


def _signed_in_page(browser, live_server, user, device: str):
    context = signed_in_context(browser, live_server, user, **DEVICES[device])
    return context, context.new_page()


EXPECTED = {
    "headteacher": ("Lessons in the next 14 days", "Cannot go ahead yet", "Sinéad Corrigan"),
    "teacher": ("Your lessons", "Owls story time", "Incidents you reported"),
    "office": ("Parents who have not answered", "Send a request or reminder", "could not be sent"),
    "dpo": ("Give your advice on the PIA “Teams”", "Across the organisation", "Laxey Test School"),
}


def test_each_home_page_shows_its_person_what_needs_them_and_passes_axe(
        live_server, transactional_db, browser, personas, artifacts):
    # One busy week for every person (building it is most of the test's time), each on a desk and a phone.
    _a_busy_week(personas)
    for persona, texts in EXPECTED.items():
        for device in DEVICES:
            context, page = _signed_in_page(browser, live_server, getattr(personas, persona), device)
            try:
                page.goto(live_server.url + reverse("schools:dashboard"))
                assert page.locator("h1").inner_text().strip() == "Home"
                for text in texts:
                    assert page.get_by_text(text).first.is_visible(), f"{text!r} is not on {persona}'s home page"
                if device == "phone":
                    # Nothing wider than the screen: no sideways scrolling to read a lesson.
                    assert page.evaluate("document.documentElement.scrollWidth") <= 390
                page.screenshot(path=artifacts / f"home-{persona}-{device}.png", full_page=True)
                assert not blocking_violations(page), f"{persona} ({device}): serious or critical violations"
            finally:
                context.close()


def test_the_head_follows_a_blocked_lesson_from_home_to_its_reason(live_server, transactional_db, browser,
                                                                   personas, artifacts):
    assessment = _a_busy_week(personas)
    assessment_flag_for_review(assessment=assessment, reason="An uninvited adult joined.", actor=personas.teacher)
    context, page = _signed_in_page(browser, live_server, personas.headteacher, "desk")
    try:
        page.goto(live_server.url + reverse("schools:dashboard"))
        assert page.get_by_text("You can review it: open the risk assessment").first.is_visible()
        page.get_by_role("link", name="Owls story time").first.click()
        page.wait_for_url("**/sessions/*/")
        assert page.get_by_text("flagged for review after an incident").first.is_visible()
        page.goto(live_server.url + reverse("video_sessions:list") + "?blocked_only=on")
        assert page.get_by_role("link", name="Owls story time").first.is_visible()
        page.screenshot(path=artifacts / "sessions-blocked-only.png", full_page=True)
        assert not blocking_violations(page)
    finally:
        context.close()
