"""The risk register's outputs: the version's PDF (stored once when approved), the CSV, the heat maps."""

import csv
import datetime as dt
import hashlib
import io
import shutil
import subprocess

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from riskassess import seed_template
from riskassess.models import AssessmentVersion
from riskassess.services import (
    assessment_create_from_template,
    hazard_save,
    version_approve,
    version_revise,
    version_submit,
)
from schools.models import AuditEntry

pytestmark = pytest.mark.django_db

Status = AssessmentVersion.Status
needs_poppler = pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils is not installed")


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def _assessment(school, headteacher, **kwargs):
    return assessment_create_from_template(school=school, actor=headteacher, assessor_name="M Kelly",
                                           assessed_on=dt.date(2026, 11, 1), review_on=dt.date(2027, 11, 1),
                                           **kwargs)


def _approve(version, actor):
    version_submit(version=version, actor=actor)
    return version_approve(version=version, actor=actor)


@pytest.fixture
def approved(personas):
    version = _assessment(personas.school, personas.headteacher).versions.get()
    hazard_save(version=version, actor=personas.headteacher, row=version.hazards.order_by("position").first(),
                residual_likelihood=1, residual_severity=2, further_action="Check the waiting room weekly")
    return _approve(version, personas.headteacher)


def _text(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def _content(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@needs_poppler
def test_an_approved_versions_pdf_is_the_seeds_form_with_rows_key_approval_and_page_numbers(
        approved, personas, client_for, tmp_path):
    response = client_for(personas.teacher).get(reverse("riskassess:version-pdf", args=[approved.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    pdf = _content(response)
    assert pdf.startswith(b"%PDF")
    text = " ".join(_text(pdf, tmp_path).split())
    for row in seed_template.HAZARDS:
        assert row["hazard"] in text
    assert "Check the waiting room weekly" in text
    assert "remote = 1" in text and "probable = 3" in text and "severe = 3" in text
    assert "low = 1–2" in text and "medium = 3–5" in text and "high = 6–9" in text
    assert "M Kelly" in text and "1 November 2026" in text and "1 November 2027" in text
    assert f"Approved by {personas.headteacher.get_full_name()}" in text
    assert approved.sha256 in text
    assert "Page 1 of" in text
    assert "DRAFT" not in text


def test_an_approved_versions_pdf_is_stored_once_and_then_served_as_stored(approved, personas, client_for):
    client = client_for(personas.dpo)
    url = reverse("riskassess:version-pdf", args=[approved.pk])
    first = _content(client.get(url))
    approved.refresh_from_db()
    assert approved.pdf and approved.pdf_sha256 == hashlib.sha256(first).hexdigest()
    stored_name = approved.pdf.name
    second = _content(client.get(url))
    assert second == first
    approved.refresh_from_db()
    assert approved.pdf.name == stored_name
    assert AuditEntry.objects.filter(action="risk.pdf_stored").count() == 1
    # A later revision and approval supersedes it; its PDF is still the one stored.
    draft = version_revise(assessment=approved.assessment, actor=personas.headteacher)
    AssessmentVersion.objects.filter(pk=draft.pk).update(review_on=dt.date(2027, 12, 1))  # the next review
    draft.refresh_from_db()
    _approve(draft, personas.headteacher)
    approved.refresh_from_db()
    assert approved.status == Status.SUPERSEDED
    assert _content(client.get(url)) == first


def test_a_tampered_stored_pdf_is_refused(approved, personas, client_for):
    client = client_for(personas.headteacher)
    url = reverse("riskassess:version-pdf", args=[approved.pk])
    client.get(url)
    approved.refresh_from_db()
    with open(approved.pdf.path, "ab") as handle:
        handle.write(b"tampered")
    client.raise_request_exception = True
    with pytest.raises(ValueError, match="does not match"):
        client.get(url)


@needs_poppler
def test_a_draft_renders_live_with_a_draft_watermark_and_is_never_stored(personas, client_for, tmp_path):
    version = _assessment(personas.school, personas.headteacher).versions.get()
    response = client_for(personas.office).get(reverse("riskassess:version-pdf", args=[version.pk]))
    assert response.status_code == 200
    text = _text(_content(response), tmp_path)
    assert "DRAFT" in text
    assert "Pupils sharing inappropriate content" in " ".join(text.split())
    version.refresh_from_db()
    assert not version.pdf and not version.pdf_sha256
    assert not AuditEntry.objects.filter(action="risk.pdf_stored").exists()


def _csv(response) -> list[dict]:
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment")
    return list(csv.DictReader(io.StringIO(_content(response).decode())))


def test_the_register_csv_has_every_column_and_marks_drafts(approved, personas, client_for):
    draft = version_revise(assessment=approved.assessment, actor=personas.headteacher)
    hazard_save(version=draft, actor=personas.headteacher, activity_element="Assembly", hazard="Zoombombing",
                likelihood=3, severity=3)
    rows = _csv(client_for(personas.teacher).get(
        reverse("riskassess:school-register-csv", args=[personas.school.pk])))
    approved_rows = [r for r in rows if r["Version status"] == "Approved"]
    draft_rows = [r for r in rows if r["Version status"] == "Draft"]
    assert (len(approved_rows), len(draft_rows)) == (6, 7)
    first = approved_rows[0]
    assert first["Potential hazard"] == "Pupils sharing inappropriate content"
    assert (first["Likelihood"], first["Severity"], first["Rating"], first["Band"]) == ("2", "2", "4", "Medium")
    assert (first["Residual rating"], first["Residual band"]) == ("2", "Low")
    assert first["Approved by"] and first["Review date"] == "2027-11-01"
    assert draft_rows[-1]["Band"] == "High" and draft_rows[-1]["Approved by"] == ""
    entry = AuditEntry.objects.get(action="risk.exported")
    assert entry.data == {"format": "csv", "scope": "school", "assessments": 1, "versions": 2, "rows": 13}


def test_the_register_csv_neutralises_formulas(personas, client_for):
    version = _assessment(personas.school, personas.headteacher).versions.get()
    hazard_save(version=version, actor=personas.headteacher, activity_element="=HYPERLINK(\"http://x\")",
                hazard="+1+1", who_affected="@SUM(A1)", controls="-2", likelihood=1, severity=1)
    rows = _csv(client_for(personas.headteacher).get(
        reverse("riskassess:school-register-csv", args=[personas.school.pk])))
    row = rows[-1]
    assert row["Location or activity element"] == "'=HYPERLINK(\"http://x\")"
    assert (row["Potential hazard"], row["Who is affected"], row["Action taken to reduce or control the risk"]) == (
        "'+1+1", "'@SUM(A1)", "'-2")


def test_a_schools_csv_leaves_out_other_schools_and_the_organisations_has_them_all(personas, client_for):
    _assessment(personas.school, personas.headteacher)
    _assessment(personas.other_school, personas.other_headteacher)
    rows = _csv(client_for(personas.headteacher).get(
        reverse("riskassess:school-register-csv", args=[personas.school.pk])))
    assert {r["School"] for r in rows} == {personas.school.name}
    rows = _csv(client_for(personas.dpo).get(
        reverse("riskassess:organisation-register-csv", args=[personas.organisation.pk])))
    assert {r["School"] for r in rows} == {personas.school.name} and len(rows) == 6
    assert AuditEntry.objects.filter(action="risk.exported", data__scope="organisation").count() == 1


def _cell(page: str, kind: str, likelihood: int, severity: int) -> str:
    marker = f"?kind={kind}&amp;likelihood={likelihood}&amp;severity={severity}#cell-hazards"
    start = page.index(marker)
    return page[start:page.index("</a>", start)]


def test_the_version_heat_map_counts_before_and_after_controls_with_band_words(approved, personas, client_for):
    response = client_for(personas.teacher).get(reverse("riskassess:version-heatmap", args=[approved.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    inherent = _cell(page, "inherent", 2, 2)
    assert "Medium" in inherent and '<span class="count">6</span>' in inherent
    residual = _cell(page, "residual", 1, 2)
    assert "Low" in residual and '<span class="count">1</span>' in residual
    assert '<span class="count">0</span>' in _cell(page, "inherent", 3, 3)
    assert "5 without residual scores not shown" in page
    assert '<th scope="col">Severe <span class="score">(3)</span></th>' in page
    assert '<th scope="row">Probable <span class="score">(3)</span></th>' in page


def test_choosing_a_cell_lists_its_hazards(approved, personas, client_for):
    url = reverse("riskassess:version-heatmap", args=[approved.pk])
    page = client_for(personas.teacher).get(url, {"kind": "residual", "likelihood": 1, "severity": 2})
    page = page.content.decode()
    assert 'id="cell-hazards"' in page
    assert "Pupils sharing inappropriate content" in page.split('id="cell-hazards"')[1]
    assert "A leaked link reaches others" not in page.split('id="cell-hazards"')[1]
    # An off-matrix or unknown choice lists nothing rather than failing.
    page = client_for(personas.teacher).get(url, {"kind": "residual", "likelihood": 9, "severity": "x"})
    assert page.status_code == 200 and 'id="cell-hazards"' not in page.content.decode()


def test_the_school_heat_map_counts_current_approved_versions_only(approved, personas, client_for):
    _assessment(personas.school, personas.headteacher)  # a draft: not counted
    _approve(_assessment(None, personas.org_admin, organisation=personas.organisation).versions.get(),
             personas.org_admin)
    _approve(_assessment(personas.other_school, personas.other_headteacher).versions.get(),
             personas.other_headteacher)
    page = client_for(personas.office).get(
        reverse("riskassess:school-heatmap", args=[personas.school.pk]), {"kind": "inherent", "likelihood": 2,
                                                                          "severity": 2}).content.decode()
    assert '<span class="count">12</span>' in _cell(page, "inherent", 2, 2)
    assert "2 current approved risk assessments" in page
    assert "organisation-wide" in page.split('id="cell-hazards"')[1]


def test_the_school_heat_map_takes_a_constant_number_of_queries(personas, client_for):
    client = client_for(personas.teacher)
    url = reverse("riskassess:school-heatmap", args=[personas.school.pk])
    _approve(_assessment(personas.school, personas.headteacher).versions.get(), personas.headteacher)

    def queries() -> int:
        with CaptureQueriesContext(connection) as context:
            response = client.get(url, {"kind": "inherent", "likelihood": 2, "severity": 2})
        assert response.status_code == 200
        return len(context.captured_queries)

    one = queries()
    for _ in range(4):
        _approve(_assessment(personas.school, personas.headteacher).versions.get(), personas.headteacher)
    assert queries() == one
    assert client.get(url, {"kind": "inherent", "likelihood": 2, "severity": 2}).content.decode().count(
        "Pupils sharing inappropriate content") == 5


def test_the_version_heat_map_takes_a_constant_number_of_queries(personas, client_for):
    version = _assessment(personas.school, personas.headteacher).versions.get()
    client = client_for(personas.teacher)
    url = reverse("riskassess:version-heatmap", args=[version.pk])

    def queries() -> int:
        with CaptureQueriesContext(connection) as context:
            client.get(url, {"kind": "inherent", "likelihood": 2, "severity": 2})
        return len(context.captured_queries)

    one = queries()
    for index in range(10):
        hazard_save(version=version, actor=personas.headteacher, activity_element="Assembly",
                    hazard=f"Hazard {index}", likelihood=2, severity=2)
    assert queries() == one


def test_the_school_heat_map_leaves_out_versions_approved_on_another_matrix_and_says_so(
        approved, personas, client_for):
    from riskassess.matrix import STANDARD_5X5
    from riskassess.models import RiskMatrix

    RiskMatrix.objects.create(organisation=personas.organisation, definition=STANDARD_5X5.as_dict())
    page = client_for(personas.teacher).get(
        reverse("riskassess:school-heatmap", args=[personas.school.pk])).content.decode()
    assert "1 approved assessment scored on an earlier matrix is not counted here" in page
    assert "Catastrophic" in page and '<span class="count">6</span>' not in page
    # Its own heat map still shows it on the matrix it was approved on.
    page = client_for(personas.teacher).get(reverse("riskassess:version-heatmap", args=[approved.pk])).content.decode()
    assert '<span class="count">6</span>' in _cell(page, "inherent", 2, 2)


# --- The organisation's heat map -------------------------------------------------------------------------


def _org_cell(page: str, key: str, kind: str, likelihood: int, severity: int) -> str:
    marker = f"?matrix={key}&amp;kind={kind}&amp;likelihood={likelihood}&amp;severity={severity}#cell-hazards"
    start = page.index(marker)
    return page[start:page.index("</a>", start)]


def _organisation_url(personas) -> str:
    return reverse("riskassess:organisation-heatmap", args=[personas.organisation.pk])


def test_the_organisation_heat_map_counts_every_schools_and_the_organisation_wide_current_versions(
        approved, personas, client_for):
    from riskassess.matrix import SEED_3X3
    from riskassess.outputs import matrix_key
    from tests.factories import SchoolFactory

    dhoon = SchoolFactory(organisation=personas.organisation, name="Dhoon Test School", slug="dhoon")
    _approve(_assessment(dhoon, personas.org_admin).versions.get(), personas.org_admin)
    _approve(_assessment(None, personas.org_admin, organisation=personas.organisation).versions.get(),
             personas.org_admin)
    _assessment(personas.school, personas.headteacher)  # a draft: not counted
    _approve(_assessment(personas.other_school, personas.other_headteacher).versions.get(),
             personas.other_headteacher)  # another organisation's: not counted

    key = matrix_key(SEED_3X3)
    response = client_for(personas.dpo).get(_organisation_url(personas),
                                            {"matrix": key, "kind": "inherent", "likelihood": 2, "severity": 2})
    assert response.status_code == 200
    page = response.content.decode()
    assert "3 current approved risk assessments of Test Federation" in page
    assert "Not every assessment was scored on the same matrix" not in page
    inherent = _org_cell(page, key, "inherent", 2, 2)
    assert "Medium" in inherent and '<span class="count">18</span>' in inherent
    residual = _org_cell(page, key, "residual", 1, 2)
    assert "Low" in residual and '<span class="count">1</span>' in residual
    listed = page.split('id="cell-hazards"')[1]
    assert listed.count("Pupils sharing inappropriate content") == 3
    assert "Laxey Test School" in listed and "Dhoon Test School" in listed and "organisation-wide" in listed
    assert "Other School" not in listed


def test_versions_approved_on_an_earlier_matrix_get_their_own_grids_and_the_page_says_so(
        approved, personas, client_for):
    from riskassess.matrix import SEED_3X3, STANDARD_5X5
    from riskassess.matrix_change import matrix_change
    from riskassess.outputs import matrix_key

    matrix_change(organisation=personas.organisation, matrix=STANDARD_5X5, actor=personas.org_admin)
    _approve(_assessment(personas.school, personas.headteacher).versions.get(), personas.headteacher)  # at 3 × 3
    client = client_for(personas.org_admin)
    page = client.get(_organisation_url(personas)).content.decode()
    assert "Not every assessment was scored on the same matrix" in page
    assert "1 on the current 5×5 matrix; 1 on an earlier 3×3 matrix" in page
    assert page.index("On the current 5×5 matrix") < page.index("On an earlier 3×3 matrix")
    current, earlier = matrix_key(STANDARD_5X5), matrix_key(SEED_3X3)
    assert '<span class="count">6</span>' in _org_cell(page, current, "inherent", 3, 3)
    assert '<span class="count">6</span>' in _org_cell(page, earlier, "inherent", 2, 2)
    assert '<span class="count">0</span>' in _org_cell(page, current, "inherent", 2, 2)  # nothing mixed in
    # Choosing a cell of the earlier matrix lists that version's hazards, on that matrix's labels.
    page = client.get(_organisation_url(personas), {"matrix": earlier, "kind": "inherent", "likelihood": 2,
                                                     "severity": 2}).content.decode()
    listed = page.split('id="cell-hazards"')[1]
    assert "likelihood possible (2) × severity serious (2) = 4, medium" in listed
    assert f'href="{reverse("riskassess:version", args=[approved.pk])}"' in listed


def test_the_organisation_heat_map_says_when_nothing_is_approved_yet(personas, client_for):
    _assessment(personas.school, personas.headteacher)
    page = client_for(personas.siro).get(_organisation_url(personas)).content.decode()
    assert "No approved risk assessment yet" in page and "heat-cell" not in page


def test_the_organisation_heat_map_takes_a_constant_number_of_queries(personas, client_for):
    client = client_for(personas.headteacher)
    _approve(_assessment(personas.school, personas.headteacher).versions.get(), personas.headteacher)
    params = {"kind": "inherent", "likelihood": 2, "severity": 2}

    def queries() -> int:
        with CaptureQueriesContext(connection) as context:
            assert client.get(_organisation_url(personas), params).status_code == 200
        return len(context.captured_queries)

    one = queries()
    for _ in range(4):
        _approve(_assessment(personas.school, personas.headteacher).versions.get(), personas.headteacher)
    assert queries() == one


def test_the_school_heat_map_links_the_organisations_for_those_who_may_see_it(personas, client_for):
    url = reverse("riskassess:school-heatmap", args=[personas.school.pk])
    link = _organisation_url(personas)
    assert link in client_for(personas.headteacher).get(url).content.decode()
    assert link not in client_for(personas.teacher).get(url).content.decode()


def _sibling_school_with_head(personas):
    from schools.models import Role
    from tests.factories import MembershipFactory, SchoolFactory, TOTPDeviceFactory, UserFactory

    sibling = SchoolFactory(organisation=personas.organisation, name="Dhoon Test School", slug="dhoon")
    head = UserFactory()
    MembershipFactory(user=head, role=Role.HEADTEACHER, school=sibling, organisation=personas.organisation)
    TOTPDeviceFactory(user=head)
    return sibling, head


def test_the_head_of_one_school_among_several_may_not_open_the_organisation_heat_map(
        approved, personas, client_for):
    sibling, head = _sibling_school_with_head(personas)
    response = client_for(head).get(_organisation_url(personas), {"kind": "inherent", "likelihood": 2,
                                                                  "severity": 2})
    assert response.status_code == 403
    assert b"Laxey Test School" not in response.content and b"Pupils sharing" not in response.content
    # Their school's heat map does not link it either; the DPO still sees it.
    page = client_for(head).get(reverse("riskassess:school-heatmap", args=[sibling.pk])).content.decode()
    assert _organisation_url(personas) not in page
    assert client_for(personas.dpo).get(_organisation_url(personas)).status_code == 200


def test_a_headteacher_of_every_school_of_the_organisation_may_open_its_heat_map(personas, client_for):
    from schools.models import Role
    from tests.factories import MembershipFactory

    sibling, _head = _sibling_school_with_head(personas)
    MembershipFactory(user=personas.headteacher, role=Role.HEADTEACHER, school=sibling,
                      organisation=personas.organisation)
    assert client_for(personas.headteacher).get(_organisation_url(personas)).status_code == 200
    page = client_for(personas.headteacher).get(
        reverse("riskassess:school-heatmap", args=[sibling.pk])).content.decode()
    assert _organisation_url(personas) in page
