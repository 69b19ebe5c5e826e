"""In the browser: the organisation admin defines a 5×5 matrix of their own (a refusal first, then the preview,
then the confirmation), and the organisation's heat map shows the versions approved on each matrix apart.
Every page passes the axe-core scan; screenshots go to test-artifacts/."""

import pytest
from django.urls import reverse
from django.utils import timezone

from riskassess.models import RiskMatrix
from riskassess.services import assessment_create_from_template, version_approve, version_submit
from schools.models import School
from tests.pia.pia_setup import draft_pia

from .test_pia_signoff import sign_in
from .test_staff_sign_in import blocking_violations

pytestmark = pytest.mark.browser


def _approved(personas):
    school = School.objects.get(pk=personas.school.pk)  # fresh: its organisation's matrix may have changed
    assessment = assessment_create_from_template(school=school, actor=personas.headteacher,
                                                 assessor_name="M Kelly", assessed_on=timezone.localdate())
    version = assessment.versions.get()
    version_submit(version=version, actor=personas.headteacher)
    return version_approve(version=version, actor=personas.headteacher)


def test_the_organisation_admin_defines_a_five_by_five_matrix_and_reads_the_organisations_heat_map(
        live_server, transactional_db, personas, page, artifacts):
    _approved(personas)
    assessment_create_from_template(school=personas.school, actor=personas.headteacher, assessor_name="M Kelly",
                                    assessed_on=timezone.localdate())  # an open draft, re-mapped
    draft_pia(personas.organisation, personas.headteacher)
    sign_in(page, live_server, personas.org_admin)
    page.goto(live_server.url + reverse("riskassess:matrix", args=[personas.organisation.pk]))
    page.get_by_label("5×5: five levels each way").check()
    page.get_by_label("Likelihood 2").fill("Rare")  # the same as level 1: refused
    page.get_by_label("Band 3: highest rating").fill("9")  # not above band 2's 9
    page.get_by_role("button", name="Preview the change").click()
    assert page.get_by_text("“Rare” is already the label of likelihood level 1").is_visible()
    assert page.get_by_text("Band 3's highest rating (9) must be above band 2's (9)").is_visible()
    page.screenshot(path=str(artifacts / "risk-matrix-errors.png"), full_page=True)
    assert not blocking_violations(page)

    page.get_by_label("Likelihood 2").fill("Unlikely")
    page.get_by_label("Band 1: label").fill("Acceptable")
    page.get_by_label("Band 2: label").fill("Watch")
    page.get_by_label("Band 2: highest rating").fill("9")
    page.get_by_label("Band 3: label").fill("Act soon")
    page.get_by_label("Band 3: highest rating").fill("15")
    page.get_by_label("Band 4: label").fill("Act now")
    page.get_by_label("Band 5: label").fill("Stop")
    page.get_by_label("Band 5: highest rating").fill("25")
    page.get_by_label("Band 4: highest rating").fill("20")
    page.get_by_role("button", name="Preview the change").click()
    assert page.get_by_role("heading", name="Preview: nothing has changed yet").is_visible()
    assert page.get_by_text("Disclosure of personal information").is_visible()  # the PIA draft's risk
    page.screenshot(path=str(artifacts / "risk-matrix-preview.png"), full_page=True)
    assert not blocking_violations(page)
    assert not RiskMatrix.objects.exists()

    page.get_by_role("button", name="Confirm: use this 5×5 matrix").click()
    assert page.get_by_text("now uses the 5×5 matrix").is_visible()
    assert [band.label for band in RiskMatrix.objects.get().matrix().bands] == [
        "Acceptable", "Watch", "Act soon", "Act now", "Stop"]
    page.screenshot(path=str(artifacts / "risk-matrix-changed.png"), full_page=True)

    _approved(personas)  # on the new matrix
    page.goto(live_server.url + reverse("riskassess:organisation-heatmap", args=[personas.organisation.pk]))
    assert page.get_by_text("Not every assessment was scored on the same matrix").is_visible()
    page.locator(".heat-cell.has-hazards a").first.click()
    assert page.locator("#cell-hazards").get_by_text("Pupils sharing inappropriate content").first.is_visible()
    page.screenshot(path=str(artifacts / "risk-organisation-heatmap.png"), full_page=True)
    assert not blocking_violations(page)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the grids stack, nothing is cut off
    page.screenshot(path=str(artifacts / "risk-organisation-heatmap-phone.png"), full_page=True)
    # Wide grids scroll sideways inside their own frame; nothing else runs off the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.goto(live_server.url + reverse("riskassess:matrix", args=[personas.organisation.pk]))
    page.screenshot(path=str(artifacts / "risk-matrix-phone.png"), full_page=True)
