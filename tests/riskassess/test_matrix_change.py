"""The organisation admin's own 5×5 matrix on the matrix page: the form's refusals, the preview (risk assessment
drafts and editable PIA drafts, old band → new band), the confirmation, and what stays as it was."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from pia.models import PiaVersion, PrivacyRisk
from riskassess.matrix import SEED_3X3, STANDARD_5X5, Band, Matrix
from riskassess.matrix_change import matrix_change, matrix_change_preview
from riskassess.models import Hazard, RiskMatrix, matrix_for
from riskassess.services import assessment_create_from_template, hazard_save
from schools.models import AuditEntry, Organisation
from tests.pia.pia_setup import draft_pia
from tests.riskassess.matrix_reviews import approved_assessment, matrix_post

pytestmark = pytest.mark.django_db

# The admin's own bands on the standard labels: Low 1–6, High 7–25 (two bands).
TWO_BANDS = Matrix(size=5, likelihood_labels=STANDARD_5X5.likelihood_labels,
                   severity_labels=STANDARD_5X5.severity_labels,
                   bands=(Band("low", "Low", 6), Band("high", "High", 25)))


def url(personas) -> str:
    return reverse("riskassess:matrix", args=[personas.organisation.pk])


def on_five_by_five(personas) -> Organisation:
    RiskMatrix.objects.create(organisation=personas.organisation, definition=STANDARD_5X5.as_dict())
    return Organisation.objects.get(pk=personas.organisation.pk)


def draft_at(personas, likelihood: int, severity: int):
    assessment = assessment_create_from_template(school=personas.school, actor=personas.headteacher,
                                                 assessor_name="M Kelly", assessed_on=dt.date(2026, 11, 1))
    version = assessment.versions.get()
    first = version.hazards.order_by("position", "id").first()
    hazard_save(version=version, actor=personas.headteacher, row=first, likelihood=likelihood, severity=severity)
    return version, first


# --- The form's refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "message"), [
    ({"likelihood_2": " "}, "Give likelihood level 2 a label."),
    ({"severity_3": "minor"}, "“minor” is already the label of severity level 2"),
    ({"band_upper_2": "4"}, "Band 2&#x27;s highest rating (4) must be above band 1&#x27;s (4): bands rise."),
    ({"band_upper_4": "24"}, "The last band must reach the highest rating, 25."),
    ({"band_label_3": ""}, "Give band 3 a label."),
    ({"band_upper_1": "four"}, "Give band 1 its highest rating, a whole number."),
    ({"band_label_2": "", "band_upper_2": "", "band_label_3": "", "band_upper_3": "", "band_label_4": "",
      "band_upper_4": ""}, "Give from 2 to 5 bands; there are 1."),
    ({"size": "4"}, "Choose the 3×3 or the 5×5 matrix."),
    ({"size": ""}, "Choose the 3×3 or the 5×5 matrix."),
])
@pytest.mark.parametrize("action", ["preview", "confirm"])
def test_bad_input_is_explained_on_the_page_and_nothing_is_saved(personas, client_for, overrides, message, action):
    _draft, row = draft_at(personas, 2, 2)
    response = client_for(personas.org_admin).post(url(personas), matrix_post(STANDARD_5X5, action, **overrides))
    assert response.status_code == 200
    page = response.content.decode()
    assert message in page and "The matrix was not changed" in page
    assert "Preview: nothing has changed yet" not in page
    assert not RiskMatrix.objects.exists() and not AuditEntry.objects.filter(action="risk.matrix_changed").exists()
    row.refresh_from_db()
    assert (row.likelihood, row.severity, row.rating) == (2, 2, 4)


def test_the_form_starts_from_the_current_five_by_five_and_keeps_what_was_typed(personas, client_for):
    on_five_by_five(personas)
    client = client_for(personas.org_admin)
    page = client.get(url(personas)).content.decode()
    assert 'value="Almost certain"' in page and 'value="Very high"' in page
    page = client.post(url(personas), matrix_post(STANDARD_5X5, likelihood_1="Hardly ever", severity_2="")).content
    assert 'value="Hardly ever"' in page.decode() and "Give severity level 2 a label." in page.decode()


def test_a_band_left_empty_between_two_others_is_refused(personas, client_for):
    data = matrix_post(STANDARD_5X5, band_label_2="", band_upper_2="")
    page = client_for(personas.org_admin).post(url(personas), data).content.decode()
    assert "Give band 2 a label." in page and "Give band 2 its highest rating" in page


def test_the_form_and_its_preview_are_only_for_the_organisation_admin(personas, client_for):
    for persona in ("headteacher", "dpo", "siro", "teacher"):
        response = client_for(getattr(personas, persona)).post(url(personas), matrix_post(TWO_BANDS))
        assert response.status_code == 403
        assert "Preview the change" not in client_for(getattr(personas, persona)).get(url(personas)).content.decode()
    assert not RiskMatrix.objects.exists()


# --- Labels and bands only: the same size re-bands without touching scores ----------------------------------


def test_new_bands_on_the_same_size_are_previewed_then_re_band_open_drafts_keeping_their_scores(personas,
                                                                                                 client_for):
    organisation = on_five_by_five(personas)
    draft, row = draft_at(personas, 2, 4)  # 8: Medium on the standard bands, High on the new ones
    approved = approved_assessment(personas.school, personas.headteacher)
    client = client_for(personas.org_admin)

    page = client.post(url(personas), matrix_post(TWO_BANDS)).content.decode()
    assert "Preview: nothing has changed yet" in page
    assert "The size stays 5×5: every score and rating stays as it is" in page
    assert "2 × 4 = 8 Medium" in page and "<strong>2 × 4 = 8 High</strong> <span class=\"badge" in page
    assert "Bands: Low 1–4, Medium 5–9, High 10–16, Very high 17–25 become Low 1–6, High 7–25." in page
    assert "How scores are re-mapped" not in page
    assert matrix_for(Organisation.objects.get(pk=organisation.pk)) == STANDARD_5X5

    fingerprint = matrix_change_preview(organisation=organisation, matrix=TWO_BANDS).fingerprint
    response = client.post(url(personas), matrix_post(TWO_BANDS, "confirm", fingerprint=fingerprint), follow=True)
    assert "now uses the 5×5 matrix" in response.content.decode()
    row.refresh_from_db()
    draft.refresh_from_db()
    assert (row.likelihood, row.severity, row.rating) == (2, 4, 8)
    assert draft.get_matrix() == TWO_BANDS and draft.get_matrix().band(row.rating).label == "High"
    approved.refresh_from_db()
    assert approved.get_matrix() == STANDARD_5X5 and approved.hash_verifies()
    entry = AuditEntry.objects.get(action="risk.matrix_changed")
    assert entry.actor_id == personas.org_admin.pk and entry.organisation_id == personas.organisation.pk
    assert entry.data["from"] == entry.data["to"] == "5x5"
    assert entry.data["bands_to"] == ["Low", "High"] and entry.data["versions_remapped"] == [draft.pk]
    assert entry.data["rows_changing_band"] >= 1


def test_relabelling_only_is_previewed_in_words(personas):
    organisation = on_five_by_five(personas)
    relabelled = Matrix.custom(size=5, likelihood_labels=("Rare", "Improbable", "Possible", "Likely", "Almost certain"),
                               severity_labels=STANDARD_5X5.severity_labels,
                               bands=[(b.label, b.upper) for b in STANDARD_5X5.bands])
    preview = matrix_change_preview(organisation=organisation, matrix=relabelled)
    assert preview.differences == ["Likelihood 2: “Unlikely” becomes “Improbable”."]
    assert preview.mapping is None


def test_confirming_the_matrix_in_use_changes_nothing(personas):
    with pytest.raises(ValidationError, match="already uses this matrix"):
        matrix_change(organisation=personas.organisation, matrix=SEED_3X3, actor=personas.org_admin)


def test_a_three_by_three_other_than_the_seeds_is_refused(personas):
    odd = Matrix(size=3, likelihood_labels=("a", "b", "c"), severity_labels=("a", "b", "c"), bands=SEED_3X3.bands)
    with pytest.raises(ValidationError, match="seed's 3×3"):
        matrix_change(organisation=personas.organisation, matrix=odd, actor=personas.org_admin)


# --- Never silently: the preview's fingerprint -----------------------------------------------------------


def test_a_draft_changed_since_the_preview_stops_the_confirmation_and_shows_a_new_preview(personas, client_for):
    draft, row = draft_at(personas, 2, 2)
    client = client_for(personas.org_admin)
    stale = matrix_change_preview(organisation=personas.organisation, matrix=STANDARD_5X5).fingerprint
    hazard_save(version=draft, actor=personas.headteacher, row=row, likelihood=3, severity=3)
    response = client.post(url(personas), matrix_post(STANDARD_5X5, "confirm", fingerprint=stale))
    page = response.content.decode()
    assert "changed since your preview" in page and "Nothing was changed" in page
    assert "Preview: nothing has changed yet" in page and "5 × 5 = 25 Very high" in page
    assert not RiskMatrix.objects.exists()
    row.refresh_from_db()
    assert (row.likelihood, row.severity) == (3, 3)


def test_a_preview_made_before_another_admins_change_cannot_be_confirmed(personas):
    _draft, row = draft_at(personas, 2, 2)
    seen_by_first = matrix_change_preview(organisation=personas.organisation, matrix=STANDARD_5X5).fingerprint
    seen_by_second = matrix_change_preview(organisation=personas.organisation, matrix=TWO_BANDS).fingerprint
    matrix_change(organisation=personas.organisation, matrix=STANDARD_5X5, actor=personas.org_admin,
                  fingerprint=seen_by_first)
    with pytest.raises(ValidationError, match="changed since your preview"):
        matrix_change(organisation=personas.organisation, matrix=TWO_BANDS, actor=personas.org_admin,
                      fingerprint=seen_by_second)
    assert RiskMatrix.objects.get().matrix() == STANDARD_5X5
    row.refresh_from_db()
    assert (row.likelihood, row.severity, row.rating) == (3, 3, 9)
    assert AuditEntry.objects.filter(action="risk.matrix_changed").count() == 1


# --- PIA drafts are scored on the organisation's matrix too --------------------------------------------------


def test_editable_pia_drafts_are_remapped_and_pias_in_sign_off_keep_their_matrix(personas, client_for):
    editable = draft_pia(personas.organisation, personas.headteacher, title="Zoom")
    changes = draft_pia(personas.organisation, personas.headteacher, title="Teams")
    PiaVersion.objects.filter(pk=changes.pk).update(status=PiaVersion.Status.CHANGES_REQUESTED)
    in_sign_off = draft_pia(personas.organisation, personas.headteacher, title="Google Meet")
    PiaVersion.objects.filter(pk=in_sign_off.pk).update(status=PiaVersion.Status.ADVISED)
    elsewhere = draft_pia(personas.other_school.organisation, personas.other_headteacher, title="Elsewhere")
    client = client_for(personas.org_admin)

    page = client.post(url(personas), matrix_post(STANDARD_5X5)).content.decode()
    assert "Editable PIA drafts" in page and "Disclosure of personal information" in page
    assert "2 × 2 = 4 Medium" in page and "<strong>3 × 3 = 9 Medium</strong>" in page
    assert "1 PIA in sign-off keeps the matrix it was scored on" in page and "Google Meet, version 1" in page
    assert "Elsewhere" not in page
    preview = matrix_change_preview(organisation=personas.organisation, matrix=STANDARD_5X5)
    assert {item.version.pk for item in preview.pias} == {editable.pk, changes.pk}

    client.post(url(personas), matrix_post(STANDARD_5X5, "confirm", fingerprint=preview.fingerprint))
    for version in (editable, changes):
        version.refresh_from_db()
        assert version.get_matrix() == STANDARD_5X5
        assert list(version.risks.values_list("likelihood", "severity", "rating")) == [(3, 3, 9)]
    for version in (in_sign_off, elsewhere):
        version.refresh_from_db()
        assert version.get_matrix() == SEED_3X3
        assert list(version.risks.values_list("likelihood", "severity", "rating")) == [(2, 2, 4)]
    entry = AuditEntry.objects.get(action="risk.matrix_changed")
    assert sorted(entry.data["pia_versions_remapped"]) == sorted([editable.pk, changes.pk])
    assert entry.data["pia_versions_kept"] == [in_sign_off.pk] and entry.data["privacy_risks_remapped"] == 2
    assert PrivacyRisk.objects.filter(version=in_sign_off).get().rating == 4


def test_the_preview_counts_rows_whose_band_changes(personas):
    draft_at(personas, 3, 3)
    preview = matrix_change_preview(organisation=personas.organisation, matrix=TWO_BANDS)
    assert preview.row_count == Hazard.objects.count()
    moved = [row for row in preview.versions[0].rows if row.band_changes]
    assert moved and preview.band_changes == len(moved)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_admins_confirming_at_once_change_the_matrix_once(personas):
    import threading

    from django.db import connection

    _draft, row = draft_at(personas, 2, 2)
    seen = {matrix: matrix_change_preview(organisation=personas.organisation, matrix=matrix).fingerprint
            for matrix in (STANDARD_5X5, TWO_BANDS)}
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def confirm(matrix):
        try:
            barrier.wait(timeout=10)
            organisation = Organisation.objects.get(pk=personas.organisation.pk)
            matrix_change(organisation=organisation, matrix=matrix, actor=personas.org_admin, fingerprint=seen[matrix])
            outcomes.append("changed")
        except ValidationError as error:
            outcomes.append(" ".join(error.messages))
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm, args=(matrix,)) for matrix in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == 2 and outcomes.count("changed") == 1
    refused = next(outcome for outcome in outcomes if outcome != "changed")
    assert "changed since your preview" in refused  # the second saw the first's matrix once it had the lock
    assert AuditEntry.objects.filter(action="risk.matrix_changed").count() == 1
    row.refresh_from_db()
    assert (row.likelihood, row.severity, row.rating) == (3, 3, 9)  # 2 × 2 on the 3×3 is 3 × 3 on a 5×5


@pytest.mark.postgres
def test_starting_revising_and_copying_lock_the_organisation_row_as_a_matrix_change_does(personas):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from riskassess.editing import assessment_copy
    from riskassess.services import version_revise
    from tests.factories import SchoolFactory

    def locks_organisation(call) -> bool:
        with CaptureQueriesContext(connection) as context:
            call()
        return any('FROM "schools_organisation"' in query["sql"] and "FOR UPDATE" in query["sql"]
                   for query in context.captured_queries)

    source = approved_assessment(SchoolFactory(organisation=personas.organisation), personas.org_admin).assessment
    assert locks_organisation(lambda: assessment_create_from_template(
        school=personas.school, actor=personas.headteacher, assessor_name="M", assessed_on=dt.date(2026, 1, 1)))
    assert locks_organisation(lambda: version_revise(assessment=source, actor=personas.org_admin))
    sibling = SchoolFactory(organisation=personas.organisation)
    assert locks_organisation(lambda: assessment_copy(
        source=source, school=sibling, actor=personas.org_admin, assessor_name="M", assessed_on=dt.date(2026, 1, 1),
        review_on=dt.date(2027, 1, 1)))
