"""A headteacher edits a draft risk assessment's rows in the table: the rating and band follow the scores
before saving, a row is added, one removed (and undone, then removed again), one moved up with its button and
one dragged, all saved in one go; the database holds exactly that. Without JavaScript the same table adds a
row. Screenshots at desktop and phone widths, with a validation error, and an axe-core scan."""

import datetime as dt

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from riskassess.models import AssessmentVersion
from riskassess.services import assessment_create_from_template
from schools.models import Role
from tests.factories import PASSWORD, MembershipFactory, SchoolFactory, TOTPDeviceFactory, UserFactory

from .test_parent_journey import PHONE
from .test_staff_sign_in import blocking_violations, current_code

pytestmark = pytest.mark.browser


@pytest.fixture
def draft(transactional_db) -> tuple[AssessmentVersion, object, object]:
    school = SchoolFactory(name="Laxey School")
    head = UserFactory(username="head", first_name="Michael", last_name="Kelly")
    head.set_password(PASSWORD)
    head.save()
    MembershipFactory(user=head, role=Role.HEADTEACHER, school=school)
    device = TOTPDeviceFactory(user=head, confirmed=True)
    assessment = assessment_create_from_template(school=school, actor=head, assessor_name="Michael Kelly",
                                                 assessed_on=dt.date(2026, 1, 5), review_on=dt.date(2027, 1, 5))
    return assessment.versions.get(), head, device


def _sign_in(page, live_server, device) -> None:
    page.goto(live_server.url + reverse("accounts:login"))
    page.fill("input[name=username]", "head")
    page.fill("input[name=password]", PASSWORD)
    page.locator("form[action$='/login/'] button[type=submit]").click()
    page.wait_for_url(f"**{reverse('accounts:verify')}**")
    page.fill("input[name=code]", current_code(device))
    page.locator("form[action$='/verify/'] button[type=submit]").click()
    page.wait_for_url(f"**{reverse('schools:dashboard')}")


def _rows_url(live_server, version) -> str:
    return live_server.url + reverse("riskassess:version-rows", kwargs={"pk": version.pk})


def _ids(version) -> list[int]:
    return list(version.hazards.order_by("position", "id").values_list("pk", flat=True))


def test_headteacher_edits_rows_in_the_table_and_sees_ratings_before_saving(
    live_server, draft, browser, page, artifacts
):
    version, _head, device = draft
    ids = _ids(version)
    _sign_in(page, live_server, device)
    page.goto(_rows_url(live_server, version))

    # The scores of the first row change: its rating and band follow at once, before anything is saved.
    first = page.locator("#row-rows-0")
    expect(first.locator("output").first).to_have_text("4 Medium")
    first.get_by_label("Likelihood (L)", exact=True).select_option("3")
    first.get_by_label("Severity (S)", exact=True).select_option("3")
    expect(first.locator("output").first).to_have_text("9 High")
    first.get_by_label("Residual likelihood", exact=True).select_option("1")
    expect(first.locator("output").nth(1)).to_have_text("—")
    first.get_by_label("Residual severity", exact=True).select_option("2")
    expect(first.locator("output").nth(1)).to_have_text("2 Low")
    assert version.hazards.get(pk=ids[0]).rating == 4  # only a preview so far

    # Add a row: a blank form at the end, rated as its scores are chosen.
    assert page.locator("tbody[data-row]").count() == 6  # the no-JavaScript blank row is replaced by the button
    page.get_by_role("button", name="Add a row").click()
    added = page.locator("#" + page.locator("tbody[data-row]").last.get_attribute("id"))
    expect(added.locator("[data-row-number]")).to_have_text("New row 7")
    added.get_by_label("Location or activity element").fill("Breakout rooms")
    added.get_by_label("Potential hazard").fill("Pupils left alone in a breakout room")
    added.get_by_label("Who is affected").fill("Pupils")
    added.get_by_label("Likelihood (L)", exact=True).select_option("2")
    added.get_by_label("Severity (S)", exact=True).select_option("3")
    expect(added.locator("output").first).to_have_text("6 High")
    added.get_by_label("Action taken to reduce or control the risk").fill("Breakout rooms switched off")

    # Remove the second row; undo; remove it again.
    second = page.locator("#row-rows-1")
    second.get_by_role("button", name="Remove").click()
    expect(second.get_by_text("will be removed when you save")).to_be_visible()
    expect(second.get_by_label("Potential hazard")).to_be_hidden()
    second.get_by_role("button", name="Undo").click()
    expect(second.get_by_label("Potential hazard")).to_be_visible()
    second.get_by_role("button", name="Remove").click()

    # Move the third row up: with the second marked for removal, it becomes the first.
    third = page.locator("#row-rows-2")
    third.get_by_role("button", name="Move up").click()
    expect(third.locator("[data-row-number]")).to_have_text("Row 1")
    expect(first.locator("[data-row-number]")).to_have_text("Row 2")
    assert third.locator("input[data-order]").input_value() == "1"
    # Drag the new row by its number above the row before it (rows near each other: Playwright's drag
    # follows a scrolling page badly, and people drag within the screen they see).
    sixth = page.locator("#row-rows-5")
    added.locator("[data-row-number]").drag_to(sixth.locator("[data-row-number]"), target_position={"x": 5, "y": 2})
    expect(added.locator("[data-row-number]")).to_have_text("New row 5")
    expect(sixth.locator("[data-row-number]")).to_have_text("Row 6")
    # At 1280 px the whole table fits the window: no column is pushed out of sight.
    assert page.evaluate("document.querySelector('#risk-rows').getBoundingClientRect().right <= window.innerWidth")
    page.screenshot(path=artifacts / "risk-rows-desktop.png", full_page=True)
    assert blocking_violations(page) == []

    page.get_by_role("button", name="Save the rows").click()
    page.wait_for_url(f"**{reverse('riskassess:assessment', kwargs={'pk': version.assessment_id})}*")
    expect(page.get_by_text("Saved: 1 row added, 1 row changed, 1 row removed, the order saved.")).to_be_visible()

    rows = list(version.hazards.order_by("position", "id"))
    assert [h.pk for h in rows] == [ids[2], ids[0], ids[3], ids[4], rows[4].pk, ids[5]]
    assert (rows[1].likelihood, rows[1].severity, rows[1].rating, rows[1].residual_rating) == (3, 3, 9, 2)
    new = rows[4]
    assert (new.activity_element, new.hazard, new.rating, new.controls) == (
        "Breakout rooms", "Pupils left alone in a breakout room", 6, "Breakout rooms switched off")
    assert len(rows) == 6 and ids[1] not in [h.pk for h in rows]


def test_the_table_shows_errors_per_row_and_field_on_a_desktop_and_a_phone(
    live_server, draft, browser, page, artifacts
):
    version, _head, device = draft
    ids = _ids(version)
    _sign_in(page, live_server, device)
    page.goto(_rows_url(live_server, version))
    page.locator("#row-rows-1").get_by_label("Potential hazard").fill("")
    page.locator("#row-rows-3").get_by_label("Residual likelihood", exact=True).select_option("2")
    page.locator("#row-rows-0").get_by_label("Likelihood (L)", exact=True).select_option("3")
    page.locator("#row-rows-4").get_by_role("button", name="Remove").click()
    page.get_by_role("button", name="Save the rows").click()
    page.wait_for_load_state()

    summary = page.get_by_role("alert").filter(has_text="Nothing was saved")
    expect(summary).to_contain_text("2 rows need attention")
    expect(summary.get_by_role("link", name="Potential hazard: This field is required.")).to_be_visible()
    expect(page.locator("#id_rows-1-hazard")).to_have_class("form-control form-control-sm is-invalid")
    expect(page.locator("#id_rows-3-residual_severity-error")).to_have_text("Give both residual scores, or neither.")
    # What was typed stays on the page, and its rating is previewed from it.
    expect(page.locator("#row-rows-0 output").first).to_have_text("6 High")
    expect(page.locator("#row-rows-4").get_by_text("will be removed when you save")).to_be_visible()
    page.screenshot(path=artifacts / "risk-rows-error-desktop.png", full_page=True)
    assert blocking_violations(page) == []
    assert version.hazards.get(pk=ids[0]).likelihood == 2  # nothing saved

    phone = browser.new_context(viewport=PHONE, locale="en-GB", is_mobile=True, has_touch=True)
    phone.add_cookies(page.context.cookies())
    small = phone.new_page()
    small.goto(_rows_url(live_server, version))
    small.locator("#row-rows-1").get_by_label("Potential hazard").fill("")
    small.get_by_role("button", name="Save the rows").click()
    small.wait_for_load_state()
    expect(small.get_by_role("alert").filter(has_text="Nothing was saved")).to_contain_text("1 row needs attention")
    assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "no sideways scrolling"
    small.screenshot(path=artifacts / "risk-rows-error-phone.png", full_page=True)
    small.locator("#row-rows-1").screenshot(path=artifacts / "risk-rows-error-phone-row.png")
    assert blocking_violations(small) == []
    phone.close()


def test_without_javascript_the_blank_row_adds_a_row_and_the_boxes_remove_one(live_server, draft, browser, artifacts):
    version, _head, device = draft
    ids = _ids(version)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB", java_script_enabled=False)
    page = context.new_page()
    _sign_in(page, live_server, device)
    page.goto(_rows_url(live_server, version))
    expect(page.get_by_role("button", name="Add a row")).to_be_hidden()
    blank = page.locator("#row-rows-6")
    expect(blank.locator("[data-row-number]")).to_have_text("New row")
    blank.get_by_label("Location or activity element").fill("Breakout rooms")
    blank.get_by_label("Potential hazard").fill("Pupils left alone in a breakout room")
    blank.get_by_label("Likelihood (L)", exact=True).select_option("1")
    blank.get_by_label("Severity (S)", exact=True).select_option("3")
    blank.get_by_label("Position").fill("1")
    page.locator("#row-rows-5").get_by_label("Remove").check()
    page.screenshot(path=artifacts / "risk-rows-nojs.png", full_page=True)
    page.get_by_role("button", name="Save and add another row").click()
    page.wait_for_url(f"**{reverse('riskassess:version-rows', kwargs={'pk': version.pk})}#new-row")
    expect(page.get_by_text("Saved: 1 row added, 1 row removed, the order saved.")).to_be_visible()
    expect(page.locator("#new-row [data-row-number]")).to_have_text("New row")
    phone = browser.new_context(viewport=PHONE, locale="en-GB", is_mobile=True, has_touch=True,
                                java_script_enabled=False)
    phone.add_cookies(context.cookies())
    small = phone.new_page()
    small.goto(_rows_url(live_server, version))
    assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "no sideways scrolling"
    small.locator("#row-rows-0").screenshot(path=artifacts / "risk-rows-nojs-phone-row.png")
    phone.close()
    context.close()

    rows = list(version.hazards.order_by("position", "id"))
    assert [h.pk for h in rows[1:]] == ids[:5]
    assert (rows[0].activity_element, rows[0].rating) == ("Breakout rooms", 3)
