"""A parent on a phone opens their personal link, gives consent, sees the confirmation, and withdraws
from the same link — in no more clicks than giving took (promise 5) — on pages that pass axe-core."""

from urllib.parse import urlsplit

import pytest

from consent.links import guardian_link_issue
from consent.models import ConsentState, ConsentStatus
from tests.consent.consent_setup import guardian_of, publish, pupil_at, purpose_for
from tests.factories import SchoolFactory

from .test_staff_sign_in import blocking_violations

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport=PHONE, locale="en-GB", is_mobile=True, has_touch=True)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


class Clicks:
    """Counts the clicks a person makes, so the two journeys can be compared."""

    def __init__(self):
        self.count = 0

    def click(self, locator) -> None:
        self.count += 1
        locator.click()


def test_a_parent_gives_then_withdraws_consent_from_the_same_link_on_a_phone(
    live_server, transactional_db, phone, artifacts
):
    school = SchoolFactory(name="Laxey School")
    purpose = purpose_for(school)
    publish(purpose)
    pupil = pupil_at(school, first_name="Ada", last_name="Byron")
    guardian = guardian_of(pupil)
    path = urlsplit(guardian_link_issue(guardian=guardian, purpose=purpose)).path

    phone.goto(live_server.url + path)
    assert phone.get_by_role("heading", name="Ada Byron").is_visible()
    assert blocking_violations(phone) == []
    phone.screenshot(path=artifacts / "parent-page.png", full_page=True)

    giving = Clicks()
    giving.click(phone.get_by_label("Yes, my child may take part"))
    giving.click(phone.get_by_label("I have parental responsibility for this child"))
    giving.click(phone.get_by_role("button", name="Save my answer for Ada"))
    phone.wait_for_url("**/done/**")
    assert phone.get_by_text("Consent given").first.is_visible()
    assert blocking_violations(phone) == []
    phone.screenshot(path=artifacts / "parent-done.png", full_page=True)
    assert ConsentStatus.objects.get(pupil=pupil).state == ConsentState.GIVEN

    # The same link, opened again from the email.
    phone.goto(live_server.url + path)
    assert blocking_violations(phone) == []
    phone.screenshot(path=artifacts / "parent-page-consented.png", full_page=True)
    withdrawing = Clicks()
    withdrawing.click(phone.get_by_role("button", name="Withdraw consent for Ada"))
    phone.wait_for_url("**/done/**")
    assert phone.get_by_text("Consent withdrawn").first.is_visible()
    phone.screenshot(path=artifacts / "parent-withdrawn.png", full_page=True)

    assert ConsentStatus.objects.get(pupil=pupil).state == ConsentState.WITHDRAWN
    assert withdrawing.count <= giving.count
