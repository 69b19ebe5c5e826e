"""A parent on a phone goes from their consent page to "Your data", downloads the copy of everything held,
and asks for a correction — without JavaScript doing anything, on pages that pass axe-core."""

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from consent.links import guardian_link_issue
from consent.models import RightsRequest
from consent.rights import rights_due_on, school_today
from tests.consent.consent_setup import guardian_of, publish, pupil_at, purpose_for
from tests.factories import SchoolFactory

from .test_parent_journey import PHONE
from .test_staff_sign_in import blocking_violations

pytestmark = pytest.mark.browser


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport=PHONE, locale="en-GB", is_mobile=True, has_touch=True,
                                  accept_downloads=True, java_script_enabled=False)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def _no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_parent_downloads_their_data_and_asks_for_a_correction_on_a_phone(
    live_server, transactional_db, browser, phone, artifacts
):
    school = SchoolFactory(name="Laxey School")
    purpose = purpose_for(school)
    publish(purpose)
    pupil = pupil_at(school, first_name="Ada", last_name="Byron", mis_id="MIS-ADA")
    guardian = guardian_of(pupil)
    path = urlsplit(guardian_link_issue(guardian=guardian, purpose=purpose)).path

    phone.goto(live_server.url + path)
    phone.get_by_role("link", name="See your data and your rights").click()
    phone.wait_for_url("**/rights/")
    assert phone.get_by_role("heading", name="Your data and your rights").is_visible()
    # axe-core is injected as a script, so it needs JavaScript: scan in a second, scripted view of the page.
    scanner = browser.new_context(viewport=PHONE, locale="en-GB", is_mobile=True, has_touch=True)
    scan = scanner.new_page()
    scan.goto(phone.url)
    for summary in scan.locator("summary").all():
        summary.click()  # every request form open, so that its fields are scanned too
    assert blocking_violations(scan) == []
    assert _no_horizontal_scroll(scan)
    scan.screenshot(path=artifacts / "parent-rights.png", full_page=True)

    with phone.expect_download() as download:
        phone.get_by_role("button", name="Download as JSON (for a computer)").click()
    data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert data["children"][0]["mis_id"] == "MIS-ADA"
    with phone.expect_download() as download:
        phone.get_by_role("button", name="Download as PDF (to read or print)").click()
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF-")

    phone.get_by_text("Open the correction form").click()
    phone.get_by_label("Which child is it about?").first.select_option(label="Ada Byron")
    phone.get_by_label("What is wrong, and what should it say?").fill("Ada's surname is Lovelace now.")
    phone.get_by_role("button", name="Send my correction request").click()
    phone.wait_for_url("**/rights/done/**")
    assert phone.get_by_text("Thank you: your request was sent").is_visible()
    scan.goto(phone.url)
    assert blocking_violations(scan) == []
    assert _no_horizontal_scroll(scan)
    scan.screenshot(path=artifacts / "parent-rights-done.png", full_page=True)
    scanner.close()

    request = RightsRequest.objects.get()
    assert (request.kind, request.pupil, request.details) == ("correction", pupil, "Ada's surname is Lovelace now.")
    assert request.due_on == rights_due_on(school_today(school, request.received_at))
