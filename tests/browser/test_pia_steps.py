"""In a browser: the office answers the screening (the page says a PIA is recommended as soon as one answer is
yes), starts from the template, and edits step three: the rating follows the scores before saving, a risk is
added and moved up, one removed, all saved in one go. Screenshots at desktop and phone widths, and an axe-core scan."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from pia.models import PiaVersion
from schools.models import Role
from tests.factories import PASSWORD, MembershipFactory, SchoolFactory, UserFactory

from .test_parent_journey import PHONE
from .test_staff_sign_in import blocking_violations

pytestmark = pytest.mark.browser


@pytest.fixture
def office(transactional_db):
    school = SchoolFactory(name="Laxey School")
    user = UserFactory(username="office", first_name="Olive", last_name="Quayle")
    user.set_password(PASSWORD)
    user.save()
    MembershipFactory(user=user, role=Role.OFFICE, school=school)
    return user


def _sign_in(page, live_server) -> None:
    page.goto(live_server.url + reverse("accounts:login"))
    page.fill("input[name=username]", "office")
    page.fill("input[name=password]", PASSWORD)
    page.locator("form[action$='/login/'] button[type=submit]").click()
    page.wait_for_url(f"**{reverse('schools:dashboard')}")


def test_office_screens_starts_from_the_template_and_edits_the_risks(
    live_server, office, browser, page, artifacts
):
    _sign_in(page, live_server)
    page.goto(live_server.url + reverse("pia:new"))
    result = page.locator("[data-screening-result]")
    for index in range(8):
        page.locator(f"#id_answer_{_key(index)}_1").check()  # every answer no
    expect(result).to_contain_text("a PIA is not indicated")
    page.locator(f"#id_answer_{_key(0)}_0").check()
    expect(result).to_have_text("A PIA is recommended: 1 of 8 answers are yes.")
    page.get_by_label("Project title").fill("Zoom")
    page.get_by_role("button", name="Create the PIA").click()
    expect(page.locator(".alert-success")).to_contain_text("The screening recommends a PIA")
    version = PiaVersion.objects.get()
    assert blocking_violations(page) == []
    page.screenshot(path=str(artifacts / "pia-steps-version.png"), full_page=True)

    page.goto(live_server.url + reverse("pia:step", kwargs={"pk": version.pk, "step": "risks"}))
    first = page.locator("[data-row]").first
    expect(first.locator("output")).to_have_text("4 Medium")
    first.get_by_label("Likelihood").select_option("3")
    first.get_by_label("Severity").select_option("3")
    expect(first.locator("output")).to_have_text("9 High")
    assert version.risks.order_by("position").first().rating == 4  # only a preview so far
    page.locator("[data-row]").nth(1).get_by_label("Remove this row").check()
    new = page.locator("#new-row")
    new.get_by_label("Privacy issue").fill("Chat logs kept by the platform")
    new.get_by_label("Likelihood").select_option("1")
    new.get_by_label("Severity").select_option("2")
    expect(new.locator("output")).to_have_text("2 Low")
    new.get_by_role("button", name="Move up").click()  # above Zoombombing, the last of the template's risks
    assert blocking_violations(page) == []
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.locator(".alert-success")).to_contain_text("Saved")
    risks = list(version.risks.order_by("position"))
    assert len(risks) == 6
    assert (risks[0].rating, risks[-2].privacy_issue, risks[-2].rating) == (9, "Chat logs kept by the platform", 2)
    assert risks[-1].privacy_issue.startswith("Zoombombing")
    assert not any(risk.privacy_issue.startswith("Data breach") for risk in risks)

    page.set_viewport_size(PHONE)
    page.reload()
    page.screenshot(path=str(artifacts / "pia-steps-risks-phone.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, "the step page scrolls sideways on a phone"


def _key(index: int) -> str:
    from pia.questions import SCREENING

    return SCREENING[index].key
