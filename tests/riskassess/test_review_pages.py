"""Reviews due, actions overdue with "mark done", and the organisation's matrix with its re-mapping preview."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from riskassess.matrix import SEED_3X3, STANDARD_5X5
from riskassess.matrix_change import matrix_change, matrix_change_preview
from riskassess.models import Assessment, AssessmentVersion, Hazard, RiskMatrix, matrix_for
from riskassess.services import assessment_create_from_template, assessment_flag_for_review, hazard_save
from schools.models import AuditEntry, Organisation
from tests.riskassess.matrix_reviews import approved_assessment, matrix_post

pytestmark = pytest.mark.django_db


def days(n: int) -> dt.date:
    return timezone.localdate() + dt.timedelta(days=n)


# --- Reviews due ------------------------------------------------------------------------------------------


def test_reviews_due_lists_near_past_and_flagged_assessments_soonest_first(client_for, personas):
    later = approved_assessment(personas.school, personas.headteacher, review_on=days(20)).assessment
    Assessment.objects.filter(pk=later.pk).update(title="Later")
    past = approved_assessment(personas.school, personas.headteacher, review_on=days(-5)).assessment
    Assessment.objects.filter(pk=past.pk).update(title="Past")
    far = approved_assessment(personas.school, personas.headteacher, review_on=days(90)).assessment
    Assessment.objects.filter(pk=far.pk).update(title="Far")
    flagged = approved_assessment(personas.school, personas.headteacher, review_on=days(200)).assessment
    Assessment.objects.filter(pk=flagged.pk).update(title="Flagged")
    assessment_flag_for_review(assessment=flagged, reason="A stranger joined a lesson", actor=personas.headteacher)
    approved_assessment(personas.other_school, personas.other_headteacher, review_on=days(-1))

    response = client_for(personas.teacher).get(reverse("riskassess:reviews-due"))
    titles = [a.title for a in response.context["rows"]]
    assert titles == ["Past", "Later", "Flagged"]
    assert "Overdue by 5 days" in response.content.decode()
    assert "A stranger joined a lesson" in response.content.decode()


def test_reviews_due_of_the_organisation_for_the_dpo_and_an_empty_state(client_for, personas):
    response = client_for(personas.dpo).get(reverse("riskassess:reviews-due"))
    assert "No reviews due" in response.content.decode()
    approved_assessment(personas.school, personas.headteacher, review_on=days(3))
    response = client_for(personas.dpo).get(reverse("riskassess:reviews-due"))
    assert len(response.context["rows"]) == 1


def test_reviews_due_takes_a_constant_number_of_queries(client_for, personas, django_assert_max_num_queries):
    client = client_for(personas.headteacher)
    approved_assessment(personas.school, personas.headteacher, review_on=days(3))
    with django_assert_max_num_queries(12) as few:
        client.get(reverse("riskassess:reviews-due"))
    for n in range(4):
        approved_assessment(personas.school, personas.headteacher, review_on=days(-n))
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse("riskassess:reviews-due"))
    assert len(response.context["rows"]) == 5


# --- Actions overdue --------------------------------------------------------------------------------------


def _action(personas, *, owner, due_in=-3, school=None, head=None):
    version = approved_assessment(school or personas.school, head or personas.headteacher, owner=owner,
                                  due_on=days(due_in))
    return version.hazards.order_by("position", "id").first()


def test_actions_overdue_lists_open_past_actions_with_owner_and_assessment(client_for, personas):
    overdue = _action(personas, owner=personas.teacher)
    soon = _action(personas, owner=personas.teacher, due_in=2)  # not yet due: listed below, as due soon
    _action(personas, owner=personas.teacher, due_in=9)  # beyond a week: not listed
    done = _action(personas, owner=personas.teacher, due_in=-10)
    Hazard.objects.filter(pk=done.pk).update(action_done_on=days(-1))
    _action(personas, owner=personas.other_teacher, school=personas.other_school, head=personas.other_headteacher)

    response = client_for(personas.office).get(reverse("riskassess:actions-overdue"))
    assert [h.pk for h in response.context["rows"]] == [overdue.pk]
    assert [h.pk for h in response.context["soon"]] == [soon.pk]
    page = response.content.decode()
    assert personas.teacher.get_full_name() in page
    assert "3 days late" in page and "In 2 days" in page
    assert "Mark done</button>" not in page  # the office neither owns it nor heads the school


def test_the_owner_marks_an_action_done_from_the_page(client_for, personas):
    overdue = _action(personas, owner=personas.teacher)
    client = client_for(personas.teacher)
    assert "Mark done</button>" in client.get(reverse("riskassess:actions-overdue")).content.decode()
    response = client.post(reverse("riskassess:action-done", args=[overdue.pk]), follow=True)
    assert "Marked done" in response.content.decode()
    overdue.refresh_from_db()
    assert overdue.action_done_on == timezone.localdate()
    assert AuditEntry.objects.filter(action="risk.action_done").count() == 1
    assert "No actions overdue" in response.content.decode()
    again = client.post(reverse("riskassess:action-done", args=[overdue.pk]), follow=True)
    assert "already marked done" in again.content.decode()
    assert AuditEntry.objects.filter(action="risk.action_done").count() == 1


def test_a_teacher_who_does_not_own_the_action_cannot_mark_it_done(client_for, personas):
    overdue = _action(personas, owner=personas.headteacher)
    response = client_for(personas.teacher).post(reverse("riskassess:action-done", args=[overdue.pk]))
    assert response.status_code == 403
    overdue.refresh_from_db()
    assert overdue.action_done_on is None


def test_actions_overdue_takes_a_constant_number_of_queries(client_for, personas, django_assert_max_num_queries):
    client = client_for(personas.headteacher)
    _action(personas, owner=personas.teacher)
    # 13: the page's own queries and the navigation bar's "needs you" count (one query on every staff page).
    with django_assert_max_num_queries(13) as few:
        client.get(reverse("riskassess:actions-overdue"))
    for _ in range(4):
        _action(personas, owner=personas.office)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse("riskassess:actions-overdue"))
    assert len(response.context["rows"]) == 5


# --- The matrix -------------------------------------------------------------------------------------------


@pytest.fixture
def draft(personas):
    """An open draft on the seed's 3×3: the template's rows at 2 × 2, one row changed to 3 × 1, residual 1 × 2."""
    assessment = assessment_create_from_template(school=personas.school, actor=personas.headteacher,
                                                 assessor_name="M Kelly", assessed_on=days(0))
    version = assessment.versions.get()
    first = version.hazards.order_by("position", "id").first()
    hazard_save(version=version, actor=personas.headteacher, row=first, likelihood=3, severity=1,
                residual_likelihood=1, residual_severity=2)
    return version


def test_the_preview_maps_three_by_three_scores_to_five_by_five_and_changes_nothing(draft, personas):
    before = list(Hazard.objects.values_list("likelihood", "severity", "rating"))
    preview = matrix_change_preview(organisation=personas.organisation, matrix=STANDARD_5X5)
    rows = {(r.hazard.likelihood, r.hazard.severity): r for r in preview.versions[0].rows}
    assert (rows[(3, 1)].likelihood, rows[(3, 1)].severity, rows[(3, 1)].rating, rows[(3, 1)].band) == (
        5, 1, 5, "Medium")
    assert (rows[(3, 1)].residual_likelihood, rows[(3, 1)].residual_severity, rows[(3, 1)].residual_rating) == (
        1, 3, 3)
    assert (rows[(2, 2)].rating, rows[(2, 2)].band) == (9, "Medium")
    assert list(Hazard.objects.values_list("likelihood", "severity", "rating")) == before
    assert not RiskMatrix.objects.exists()


def test_confirming_remaps_open_drafts_and_leaves_approved_versions_frozen(draft, personas):
    approved = approved_assessment(personas.school, personas.headteacher)
    frozen = list(approved.hazards.values_list("likelihood", "severity", "rating"))
    matrix_change(organisation=personas.organisation, matrix=STANDARD_5X5, actor=personas.org_admin)

    assert matrix_for(personas.organisation) == STANDARD_5X5
    draft.refresh_from_db()
    assert draft.matrix == STANDARD_5X5.as_dict()
    changed = draft.hazards.order_by("position", "id").first()
    assert (changed.likelihood, changed.severity, changed.rating) == (5, 1, 5)
    assert (changed.residual_likelihood, changed.residual_severity, changed.residual_rating) == (1, 3, 3)
    assert {(h.likelihood, h.severity, h.rating) for h in draft.hazards.all()[1:]} == {(3, 3, 9)}
    approved.refresh_from_db()
    assert approved.matrix == SEED_3X3.as_dict()
    assert list(approved.hazards.values_list("likelihood", "severity", "rating")) == frozen
    assert approved.hash_verifies()
    entry = AuditEntry.objects.get(action="risk.matrix_changed")
    assert entry.data["from"] == "3x3" and entry.data["to"] == "5x5"
    assert entry.data["versions_remapped"] == [draft.pk]

    # And back: 1, 2 -> 1; 3 -> 2; 4, 5 -> 3.
    matrix_change(organisation=personas.organisation, matrix=SEED_3X3, actor=personas.org_admin)
    changed.refresh_from_db()
    assert (changed.likelihood, changed.severity, changed.rating) == (3, 1, 3)
    assert (changed.residual_likelihood, changed.residual_severity, changed.residual_rating) == (1, 2, 2)
    assert matrix_for(Organisation.objects.get(pk=personas.organisation.pk)) == SEED_3X3


def test_a_submitted_version_is_remapped_too(draft, personas):
    AssessmentVersion.objects.filter(pk=draft.pk).update(status="submitted")
    matrix_change(organisation=personas.organisation, matrix=STANDARD_5X5, actor=personas.org_admin)
    draft.refresh_from_db()
    assert draft.get_matrix().size == 5


def test_only_the_organisation_admin_changes_the_matrix(draft, personas, client_for):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        matrix_change(organisation=personas.organisation, matrix=STANDARD_5X5, actor=personas.headteacher)
    response = client_for(personas.headteacher).post(
        reverse("riskassess:matrix", args=[personas.organisation.pk]), matrix_post(STANDARD_5X5, "confirm"))
    assert response.status_code == 403
    assert not RiskMatrix.objects.exists()


def test_the_matrix_page_previews_then_confirms(draft, personas, client_for):
    client = client_for(personas.org_admin)
    url = reverse("riskassess:matrix", args=[personas.organisation.pk])
    page = client.get(url).content.decode()
    assert "Current matrix: 3×3" in page and "Preview the change" in page
    preview = client.post(url, matrix_post(STANDARD_5X5)).content.decode()
    assert "Preview: nothing has changed yet" in preview
    assert "3 × 1 = 3 Medium" in preview and "5 × 1 = 5 Medium" in preview
    assert "1 × 3 = 3 Low" in preview and "band changes" not in preview  # residual 1 × 2 = 2 Low: still Low
    assert not RiskMatrix.objects.exists()
    fingerprint = matrix_change_preview(organisation=personas.organisation, matrix=STANDARD_5X5).fingerprint
    assert f'value="{fingerprint}"' in preview
    response = client.post(url, matrix_post(STANDARD_5X5, "confirm", fingerprint=fingerprint), follow=True)
    assert "now uses the 5×5 matrix" in response.content.decode()
    assert "Current matrix: 5×5" in response.content.decode()
    again = client.post(url, matrix_post(STANDARD_5X5, "confirm", fingerprint=fingerprint), follow=True)
    assert "already uses" in again.content.decode()
    bad = client.post(url, matrix_post(STANDARD_5X5, "confirm", size="4"))
    assert "Choose the 3×3 or the 5×5 matrix" in bad.content.decode()
    assert AuditEntry.objects.filter(action="risk.matrix_changed").count() == 1


def test_staff_read_the_matrix_without_the_change_form(personas, client_for):
    page = client_for(personas.teacher).get(reverse("riskassess:matrix", args=[personas.organisation.pk]))
    text = page.content.decode()
    assert "Current matrix: 3×3" in text and "Remote" in text and "Severe" in text
    assert "Only the organisation admin can change the matrix" in text


def test_the_preview_back_to_three_by_three_folds_scores_and_shows_band_changes(personas, client_for):
    RiskMatrix.objects.create(organisation=personas.organisation, definition=STANDARD_5X5.as_dict())
    organisation = Organisation.objects.get(pk=personas.organisation.pk)
    assessment = assessment_create_from_template(school=personas.school, actor=personas.headteacher,
                                                 assessor_name="M Kelly", assessed_on=days(0))
    version = assessment.versions.get()
    first = version.hazards.order_by("position", "id").first()
    hazard_save(version=version, actor=personas.headteacher, row=first, likelihood=5, severity=4,
                residual_likelihood=2, residual_severity=4)
    preview = matrix_change_preview(organisation=organisation, matrix=SEED_3X3)
    row = next(r for r in preview.versions[0].rows if r.hazard.pk == first.pk)
    assert (row.likelihood, row.severity, row.rating, row.old_band, row.band) == (3, 3, 9, "Very high", "High")
    assert (row.residual_likelihood, row.residual_severity, row.residual_rating) == (1, 3, 3)
    page = client_for(personas.org_admin).post(reverse("riskassess:matrix", args=[organisation.pk]),
                                               matrix_post(SEED_3X3))
    assert "band changes" in page.content.decode()
