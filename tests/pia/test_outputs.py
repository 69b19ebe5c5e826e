"""The PIA's PDF: a signed version's rendered once from its snapshot and then served as stored, with the sign-off
block (names, roles, times, hashes), the risk rows and page numbers; drafts and versions in sign-off render
live with a DRAFT watermark and are never stored.

The signed versions come from `tests.pia.matrix_outputs.signed_pia` (signed through the ORM, so that these
tests do not depend on the sign-off feature's services).
"""

import hashlib
import shutil
import subprocess

import pytest
from django.urls import reverse

from pia.models import PiaVersion
from pia.outputs import version_pdf_store
from pia.questions import SCREENING
from schools.models import AuditEntry
from tests.factories import PupilFactory
from tests.pia.matrix_outputs import signed_pia
from tests.pia.pia_setup import draft_pia

pytestmark = pytest.mark.django_db

Status = PiaVersion.Status
needs_poppler = pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils is not installed")


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def _text(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True, text=True, check=True).stdout
    return " ".join(text.split())


def _content(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _pdf_url(version) -> str:
    return reverse("pia:version-pdf", args=[version.pk])


@needs_poppler
def test_a_signed_pias_pdf_has_every_step_the_risk_rows_and_the_sign_off_block(personas, client_for, tmp_path):
    version = signed_pia(personas)
    response = client_for(personas.teacher).get(_pdf_url(version))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment") and "pia-zoom-v1.pdf" in response[
        "Content-Disposition"]
    assert response["Cache-Control"] == "no-store"
    pdf = _content(response)
    assert pdf.startswith(b"%PDF")
    text = _text(pdf, tmp_path)
    for heading in ("Pre-screening questions", "Step one: Identify the need for a PIA",
                    "Step two: Describe the information flows", "Consultation",
                    "Step three: Identify the privacy and related risks", "Step four: Identify privacy solutions",
                    "Step five: Sign off and record the PIA outcomes",
                    "Step six: Integrate the PIA outcomes back into the project plan",
                    "Linking the PIA to the GDPR principles", "Principle 6: Integrity and confidentiality"):
        assert heading in text, heading
    # The screening in the form's order (the signed snapshot comes back from jsonb with its keys reordered).
    positions = [text.index(" ".join(q.text.split()[:6])) for q in SCREENING]
    assert positions == sorted(positions)
    # The header, and the risk row with its rating and band on the organisation's matrix.
    assert "Executive headteacher" in text and "Laxey Test School" in text
    assert "Disclosure of personal information" in text and "Fines and reputational damage" in text
    assert "4 Medium" in text
    assert "Information that identifies you" in text and "19 May 2020 Internal Staff meeting" in text
    assert "Update the privacy notice" in text
    # The sign-off block: each decision's name, role, time and the hash of what was decided on.
    decisions = list(version.decisions.order_by("decided_at"))
    for decision, role in zip(decisions, ("Data Protection Officer", "Headteacher", "Senior Information Risk Owner"),
                              strict=True):
        assert decision.name in text and role in text
        assert f"{decision.decided_at:%-d %B %Y}" in text
    assert decisions[0].sha256 in text.replace(" ", "") and version.sha256 in text.replace(" ", "")
    assert "Accepted the DPO's advice." in text
    assert "Keep the China routing risk in the notice." in text  # the DPO's comment on step three
    assert f"Signed by {personas.siro.get_full_name()} (Senior Information Risk Owner)" in text
    assert "Page 1 of" in text and "Privacy impact assessment — Zoom — Laxey Test School — version 1" in text
    assert "DRAFT" not in text


@needs_poppler
def test_an_overruled_decision_prints_the_controllers_reasons(personas, client_for, tmp_path):
    version = signed_pia(personas, overrule_reasons="Lessons cannot wait; recording stays switched off.")
    text = _text(_content(client_for(personas.dpo).get(_pdf_url(version))), tmp_path)
    assert "Overruled the DPO's advice, for these reasons:" in text
    assert "Lessons cannot wait; recording stays switched off." in text


def test_a_signed_pias_pdf_is_stored_once_with_its_hash_and_then_served_as_stored(personas, client_for):
    version = signed_pia(personas)
    client = client_for(personas.headteacher)
    first = _content(client.get(_pdf_url(version)))
    version.refresh_from_db()
    assert version.pdf and version.pdf_sha256 == hashlib.sha256(first).hexdigest()
    stored_name = version.pdf.name
    assert _content(client.get(_pdf_url(version))) == first
    version.refresh_from_db()
    assert version.pdf.name == stored_name and version.status == Status.SIGNED
    assert version.hash_verifies()  # storing the PDF did not touch the signed snapshot
    entry = AuditEntry.objects.get(action="pia.pdf_stored")
    assert entry.data["pdf_sha256"] == version.pdf_sha256 and entry.data["version"] == 1
    assert entry.actor_id == personas.headteacher.pk


def test_the_pdf_prints_what_was_signed_not_what_the_registry_says_now(personas, client_for, tmp_path):
    PupilFactory.create_batch(3, school=personas.school)
    version = signed_pia(personas)
    PupilFactory.create_batch(2, school=personas.school)  # two pupils join after signing
    assert version.snapshot["number_affected"]["total"] == 3
    if shutil.which("pdftotext"):
        text = _text(_content(client_for(personas.teacher).get(_pdf_url(version))), tmp_path)
        assert "Number affected 3 children" in text and "5 children" not in text


def test_a_superseded_versions_pdf_is_still_the_one_stored(personas, client_for):
    version = signed_pia(personas)
    client = client_for(personas.office)
    first = _content(client.get(_pdf_url(version)))
    version.status = Status.SUPERSEDED
    version.save(update_fields=["status"])
    assert _content(client.get(_pdf_url(version))) == first
    assert AuditEntry.objects.filter(action="pia.pdf_stored").count() == 1


def test_a_tampered_stored_pdf_is_refused(personas, client_for):
    version = signed_pia(personas)
    client = client_for(personas.headteacher)
    client.get(_pdf_url(version))
    version.refresh_from_db()
    with open(version.pdf.path, "ab") as handle:
        handle.write(b"tampered")
    client.raise_request_exception = True
    with pytest.raises(ValueError, match="does not match"):
        client.get(_pdf_url(version))


@needs_poppler
def test_a_draft_renders_live_with_a_draft_watermark_and_is_never_stored(personas, client_for, tmp_path):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    response = client_for(personas.office).get(_pdf_url(version))
    assert response.status_code == 200
    assert "pia-zoom-v1-draft.pdf" in response["Content-Disposition"]
    text = _text(_content(response), tmp_path)
    assert "DRAFT" in text and "DRAFT — not signed." in text
    assert "Disclosure of personal information" in text
    assert "Not given yet." in text and "Not signed yet." in text
    version.refresh_from_db()
    assert not version.pdf and not version.pdf_sha256
    assert not AuditEntry.objects.filter(action="pia.pdf_stored").exists()


@needs_poppler
def test_a_version_in_sign_off_renders_as_a_draft_with_the_decisions_so_far(personas, client_for, tmp_path):
    from pia.models import Decision

    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    PiaVersion.objects.filter(pk=version.pk).update(status=Status.ADVISED)
    Decision.objects.create(version=version, kind=Decision.Kind.DPO_ADVICE, user=personas.dpo,
                            name=personas.dpo.get_full_name(), role="Data Protection Officer",
                            comments="Tell parents about the servers.", sha256="a" * 64)
    text = _text(_content(client_for(personas.siro).get(_pdf_url(version))), tmp_path)
    assert "DRAFT" in text and "Tell parents about the servers." in text and personas.dpo.get_full_name() in text
    version.refresh_from_db()
    assert not version.pdf


def test_storing_refuses_a_version_that_is_not_signed(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    with pytest.raises(ValueError, match="Only a signed version"):
        version_pdf_store(version=version, actor=personas.office)


def test_a_teacher_cannot_download_a_drafts_pdf_and_another_organisation_cannot_see_it(personas, client_for):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    assert client_for(personas.teacher).get(_pdf_url(version)).status_code == 403
    assert client_for(personas.other_teacher).get(_pdf_url(version)).status_code == 404


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_first_downloads_at_once_store_one_pdf(personas):
    import threading

    from django.db import connection

    version = signed_pia(personas)
    barrier = threading.Barrier(2)
    names: list[str] = []

    def download():
        try:
            barrier.wait(timeout=10)
            names.append(version_pdf_store(version=PiaVersion.objects.get(pk=version.pk),
                                           actor=personas.headteacher).pdf.name)
        finally:
            connection.close()

    threads = [threading.Thread(target=download) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(names) == 2 and names[0] == names[1]
    assert AuditEntry.objects.filter(action="pia.pdf_stored").count() == 1


def test_the_version_page_links_the_pdf_the_notice_and_shows_the_platforms_it_approves(personas, client_for):
    from pia.models import Platform

    version = signed_pia(personas)
    Platform.objects.create(organisation=personas.organisation, name="Zoom Rooms", kind="zoom", pia=version.pia)
    page = client_for(personas.teacher).get(reverse("pia:version", args=[version.pk])).content.decode()
    assert _pdf_url(version) in page and reverse("pia:notice", args=[version.pk]) in page
    assert "Zoom Rooms" in page and "Approved" in page
    assert "to adopt as a consent notice draft" not in page  # teachers do not edit consent notices
    page = client_for(personas.headteacher).get(reverse("pia:version", args=[version.pk])).content.decode()
    assert "to adopt as a consent notice draft" in page


def test_a_drafts_page_links_only_its_draft_pdf(personas, client_for):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    page = client_for(personas.office).get(reverse("pia:version", args=[version.pk])).content.decode()
    assert _pdf_url(version) in page and "a DRAFT copy" in page
    assert reverse("pia:notice", args=[version.pk]) not in page
    assert "No platform names this PIA yet." in page


def test_a_version_superseded_before_its_first_download_renders_from_its_snapshot_unmarked(personas, client_for,
                                                                                        tmp_path):
    version = signed_pia(personas)
    version.status = Status.SUPERSEDED
    version.save(update_fields=["status"])
    response = client_for(personas.teacher).get(_pdf_url(version))
    assert response.status_code == 200 and "pia-zoom-v1.pdf" in response["Content-Disposition"]
    version.refresh_from_db()
    assert not version.pdf
    if shutil.which("pdftotext"):
        text = _text(_content(response), tmp_path)
        assert "DRAFT" not in text and "superseded by a later signed version" in text


def test_signing_files_the_pdf_as_soon_as_the_signature_is_committed(personas, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        version = signed_pia(personas)
    version.refresh_from_db()
    assert version.pdf and version.pdf_sha256
    with version.pdf.open("rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == version.pdf_sha256
    stored = AuditEntry.objects.get(action="pia.pdf_stored")
    assert stored.actor_id is None and stored.data["snapshot_sha256"] == version.sha256


def test_the_filing_task_leaves_a_version_superseded_meanwhile_alone(personas):
    from pia.tasks import pia_pdf_store

    version = signed_pia(personas)
    PiaVersion._base_manager.filter(pk=version.pk).update(status=PiaVersion.Status.SUPERSEDED)
    assert pia_pdf_store(version.pk) is False
    version.refresh_from_db()
    assert not version.pdf
