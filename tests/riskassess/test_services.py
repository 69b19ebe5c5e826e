"""The risk register's services: from the seed's template to approval, versions and the gate's question."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from riskassess.matrix import STANDARD_5X5
from riskassess.models import AssessmentVersion, Hazard, RiskMatrix
from riskassess.services import (
    assessment_create_from_template,
    assessment_flag_for_review,
    hazard_remove,
    hazard_save,
    version_approve,
    version_revise,
    version_submit,
    video_lessons_assessment_status,
)
from schools.models import AuditEntry

pytestmark = pytest.mark.django_db

Status = AssessmentVersion.Status


@pytest.fixture
def assessment(personas):
    return assessment_create_from_template(school=personas.school, actor=personas.headteacher,
                                           assessor_name="M Kelly", assessed_on=dt.date(2026, 11, 1),
                                           review_on=dt.date(2027, 11, 1))


def _draft(assessment) -> AssessmentVersion:
    return assessment.versions.get(status__in=[Status.DRAFT, Status.SUBMITTED])


def _with_review_date(draft, review_on=dt.date(2027, 12, 1)):
    """Move a draft's review date (a revision starts with the approved version's)."""
    AssessmentVersion.objects.filter(pk=draft.pk).update(review_on=review_on)
    draft.refresh_from_db()
    return draft


def _approve(version, personas):
    version_submit(version=version, actor=personas.headteacher)
    return version_approve(version=version, actor=personas.headteacher)


def test_new_from_template_is_the_seeds_form_with_its_six_hazards(assessment):
    version = assessment.versions.get()
    assert (assessment.topic, version.number, version.status) == ("video_lessons", 1, Status.DRAFT)
    hazards = list(version.hazards.order_by("position"))
    assert len(hazards) == 6
    assert hazards[0].hazard == "Pupils sharing inappropriate content"
    assert "waiting room" in hazards[0].controls
    assert {(h.likelihood, h.severity, h.rating) for h in hazards} == {(2, 2, 4)}  # the seed's 2 × 2 = 4
    assert version.get_matrix().band(4).label == "Medium"


def test_on_a_five_by_five_organisation_the_template_scores_sit_in_the_middle(personas):
    RiskMatrix.objects.create(organisation=personas.organisation, definition=STANDARD_5X5.as_dict())
    assessment = assessment_create_from_template(school=personas.school, actor=personas.headteacher,
                                                 assessor_name="M Kelly", assessed_on=dt.date(2026, 11, 1))
    assert {(h.likelihood, h.severity, h.rating) for h in Hazard.objects.filter(version__assessment=assessment)} == {
        (3, 3, 9)}


def test_a_typed_rating_is_ignored_and_computed_from_the_scores(assessment, personas):
    hazard = hazard_save(version=_draft(assessment), actor=personas.headteacher, activity_element="Assembly",
                         hazard="Zoombombing", likelihood=3, severity=3, rating=1, residual_likelihood=1,
                         residual_severity=3, residual_rating=9)
    hazard.refresh_from_db()
    assert (hazard.rating, hazard.residual_rating) == (9, 3)
    assert hazard.position == 6  # added after the template's six


@pytest.mark.parametrize(("values", "field"), [
    ({"likelihood": 4}, "likelihood"),
    ({"severity": 0}, "severity"),
    ({"residual_likelihood": 2}, "residual_severity"),
])
def test_scores_off_the_matrix_are_refused_with_a_message_and_change_nothing(assessment, personas, values, field):
    hazard = _draft(assessment).hazards.first()
    with pytest.raises(ValidationError) as error:
        hazard_save(version=_draft(assessment), actor=personas.headteacher, row=hazard, **values)
    assert field in error.value.message_dict
    hazard.refresh_from_db()
    assert (hazard.likelihood, hazard.severity, hazard.residual_likelihood) == (2, 2, None)


def test_approval_freezes_a_snapshot_whose_hash_verifies(assessment, personas):
    version = _approve(_draft(assessment), personas)
    assert version.status == Status.APPROVED and version.hash_verifies()
    assert version.snapshot["hazards"][0]["hazard"] == "Pupils sharing inappropriate content"
    assert version.snapshot["approved_by"] == personas.headteacher.get_full_name()
    entry = AuditEntry.objects.get(action="risk.approved")
    assert entry.data["sha256"] == version.sha256
    # Tampering shows: the stored hash no longer matches.
    AssessmentVersion.objects.filter(pk=version.pk).update(snapshot={**version.snapshot, "assessor": "Someone"})
    version.refresh_from_db()
    assert not version.hash_verifies()


def test_an_approved_version_never_changes_and_editing_starts_a_new_one(assessment, personas):
    approved = _approve(_draft(assessment), personas)
    hazard = approved.hazards.first()
    with pytest.raises(ValidationError, match="never changes"):
        hazard_save(version=approved, actor=personas.headteacher, row=hazard, likelihood=3)
    with pytest.raises(ValidationError, match="never changes"):
        hazard_remove(hazard=hazard, actor=personas.headteacher)

    draft = version_revise(assessment=assessment, actor=personas.headteacher)
    assert (draft.number, draft.status, draft.hazards.count()) == (2, Status.DRAFT, 6)
    assert version_revise(assessment=assessment, actor=personas.headteacher) == draft  # one open draft
    hazard_save(version=draft, actor=personas.headteacher, row=draft.hazards.first(), likelihood=3)
    approved.refresh_from_db()
    assert approved.status == Status.APPROVED and approved.hash_verifies()
    assert approved.hazards.first().likelihood == 2

    second = _approve(_with_review_date(draft), personas)
    approved.refresh_from_db()
    assert approved.status == Status.SUPERSEDED and approved.hash_verifies()
    assert second.status == Status.APPROVED
    assert assessment.versions.filter(status=Status.APPROVED).count() == 1


def test_only_the_headteacher_or_organisation_admin_writes_and_approves(assessment, personas):
    draft = _draft(assessment)
    for user in (personas.teacher, personas.office, personas.dpo, personas.other_headteacher):
        with pytest.raises(PermissionDenied):
            hazard_save(version=draft, actor=user, row=draft.hazards.first(), likelihood=1)
    version_submit(version=draft, actor=personas.headteacher)
    with pytest.raises(PermissionDenied):
        version_approve(version=draft, actor=personas.teacher)
    with pytest.raises(ValidationError, match="Submit"):
        version_approve(version=_unsubmitted(personas), actor=personas.headteacher)


def _unsubmitted(personas):
    other = assessment_create_from_template(school=personas.school, actor=personas.headteacher,
                                            assessor_name="M Kelly", assessed_on=dt.date(2026, 11, 1))
    return other.versions.get()


def test_a_review_interval_sets_the_review_date_at_approval(personas):
    assessment = assessment_create_from_template(school=personas.school, actor=personas.headteacher,
                                                 assessor_name="M Kelly", assessed_on=dt.date(2026, 11, 1))
    draft = assessment.versions.get()
    AssessmentVersion.objects.filter(pk=draft.pk).update(review_interval_months=12)
    draft.refresh_from_db()
    version = _approve(draft, personas)
    assert version.review_on.year == version.approved_at.year + 1


def test_the_gate_asks_for_a_current_approved_video_lessons_assessment(assessment, personas):
    status = video_lessons_assessment_status(school=personas.school, today=dt.date(2026, 12, 1))
    assert not status.ok and "No approved" in status.reasons[0]
    version = _approve(_draft(assessment), personas)
    status = video_lessons_assessment_status(school=personas.school, today=dt.date(2026, 12, 1))
    assert status.ok and status.version == version
    # Past its review date: red, with the reason.
    late = video_lessons_assessment_status(school=personas.school, today=dt.date(2027, 11, 2))
    assert not late.ok and "due for review on 1 November 2027" in late.reasons[0]
    # Another school of the organisation has none of its own.
    assert not video_lessons_assessment_status(school=personas.other_school, today=dt.date(2026, 12, 1)).ok


def test_with_two_video_lessons_assessments_at_a_school_the_gate_needs_both_green(assessment, personas):
    first = _approve(_draft(assessment), personas)
    second = _approve(_unsubmitted(personas), personas)
    assert video_lessons_assessment_status(school=personas.school, today=dt.date(2026, 12, 1)).ok
    # An incident flags one of them: red whichever of the two the database returns first.
    for flagged in (first, second):
        assessment_flag_for_review(assessment=flagged.assessment, reason="Zoombombing", actor=personas.teacher)
        status = video_lessons_assessment_status(school=personas.school, today=dt.date(2026, 12, 1))
        assert not status.ok
        assert status.reasons == (f"The risk assessment “{flagged.assessment.title}” was flagged for review after "
                                  "an incident: Zoombombing",)
        flagged.assessment.review_flagged_at = None
        flagged.assessment.save(update_fields=["review_flagged_at"])


def test_a_schools_own_assessment_counts_before_an_organisation_wide_one(assessment, personas):
    own = _approve(_draft(assessment), personas)
    wide = assessment_create_from_template(school=None, organisation=personas.organisation,
                                           actor=personas.headteacher, assessor_name="M Kelly",
                                           assessed_on=dt.date(2026, 11, 1))
    wide_version = _approve(wide.versions.get(), personas)
    assessment_flag_for_review(assessment=wide_version.assessment, reason="Elsewhere", actor=personas.teacher)
    status = video_lessons_assessment_status(school=personas.school, today=dt.date(2026, 12, 1))
    assert status.ok and status.version == own


def test_an_incident_flags_the_assessment_until_it_is_approved_again(assessment, personas):
    _approve(_draft(assessment), personas)
    with pytest.raises(ValidationError):
        assessment_flag_for_review(assessment=assessment, reason="  ", actor=personas.teacher)
    assessment_flag_for_review(assessment=assessment, reason="Zoombombing in Year 3", actor=personas.teacher)
    status = video_lessons_assessment_status(school=personas.school, today=dt.date(2026, 12, 1))
    assert not status.ok and "Zoombombing in Year 3" in status.reasons[0]
    draft = version_revise(assessment=assessment, actor=personas.headteacher)
    _approve(_with_review_date(draft), personas)
    assert video_lessons_assessment_status(school=personas.school, today=dt.date(2026, 12, 1)).ok
    assert AuditEntry.objects.filter(action="risk.flagged_for_review").exists()


def test_a_new_version_after_a_matrix_change_is_scored_on_the_new_matrix(assessment, personas):
    approved = _approve(_draft(assessment), personas)
    RiskMatrix.objects.create(organisation=personas.organisation, definition=STANDARD_5X5.as_dict())
    draft = version_revise(assessment=assessment, actor=personas.headteacher)
    assert draft.get_matrix().size == 5
    assert {(h.likelihood, h.severity, h.rating) for h in draft.hazards.all()} == {(3, 3, 9)}
    approved.refresh_from_db()
    assert approved.get_matrix().size == 3 and approved.hash_verifies()


def test_a_drafts_details_are_edited_on_their_page_and_a_new_version_keeps_its_review_date(client, assessment,
                                                                                           personas):
    from django.urls import reverse

    from tests.conftest import sign_in

    approved = _approve(_draft(assessment), personas)
    draft = version_revise(assessment=assessment, actor=personas.headteacher)
    assert draft.review_on == approved.review_on
    sign_in(client, personas.headteacher)
    url = reverse("riskassess:version-details", kwargs={"pk": draft.pk})
    both = client.post(url, {"assessor_name": "M Kelly", "assessed_on": "2026-11-20", "review_on": "2027-11-20",
                             "review_interval_months": "12"})
    assert both.status_code == 200 and "not both" in both.content.decode()
    response = client.post(url, {"assessor_name": "M Kelly", "assessed_on": "2026-11-20",
                                 "review_on": "2027-11-20"})
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.review_on == dt.date(2027, 11, 20)
    assert AuditEntry.objects.filter(action="risk.version_details_saved").exists()
    # An approved version's details never change.
    frozen = client.post(reverse("riskassess:version-details", kwargs={"pk": approved.pk}),
                         {"assessor_name": "X", "assessed_on": "2026-11-20", "review_on": "2027-11-20"})
    assert frozen.status_code == 302
    approved.refresh_from_db()
    assert approved.assessor_name == "M Kelly" and approved.hash_verifies()


def test_the_register_links_its_tools_by_role(client, personas, assessment):
    from django.urls import reverse

    from tests.conftest import sign_in

    sign_in(client, personas.teacher)
    page = client.get(reverse("riskassess:assessments")).content.decode()
    assert reverse("riskassess:reviews-due") in page
    assert reverse("riskassess:school-heatmap", kwargs={"school_pk": personas.school.pk}) in page
    org_csv = reverse("riskassess:organisation-register-csv", kwargs={"organisation_pk": personas.organisation.pk})
    assert org_csv not in page
    client.logout()
    sign_in(client, personas.dpo)
    assert org_csv in client.get(reverse("riskassess:assessments")).content.decode()
    detail = client.get(reverse("riskassess:assessment", kwargs={"pk": assessment.pk})).content.decode()
    assert "Draft PDF" in detail and "Heat map" in detail


# --- Organisation-wide assessments: an organisation-wide role, or the headteacher of every school --------


@pytest.fixture
def federation(personas):
    """The test federation with a second school: `personas.headteacher` heads Laxey only; an executive
    headteacher heads both schools."""
    from schools.models import Role
    from tests.factories import MembershipFactory, SchoolFactory, TOTPDeviceFactory, UserFactory

    second = SchoolFactory(organisation=personas.organisation, name="Dhoon Test School", slug="dhoon")
    executive = UserFactory()
    TOTPDeviceFactory(user=executive)
    for school in (personas.school, second):
        MembershipFactory(user=executive, role=Role.HEADTEACHER, school=school, organisation=personas.organisation)
    assessment = assessment_create_from_template(school=None, organisation=personas.organisation,
                                                 actor=personas.org_admin, assessor_name="Trust board",
                                                 assessed_on=dt.date(2026, 11, 1))
    version = _draft(assessment)
    version_submit(version=version, actor=personas.org_admin)
    return {"second": second, "executive": executive, "assessment": assessment, "version": version}


def test_a_headteacher_of_one_school_among_several_cannot_edit_or_approve_an_organisation_wide_assessment(
        federation, personas):
    version = federation["version"]
    with pytest.raises(PermissionDenied, match="headteacher of every school"):
        version_approve(version=version, actor=personas.headteacher)
    with pytest.raises(PermissionDenied, match="headteacher of every school"):
        hazard_save(version=version, actor=personas.headteacher, row=version.hazards.first(), likelihood=1)
    with pytest.raises(PermissionDenied):
        assessment_create_from_template(school=None, organisation=personas.organisation, actor=personas.headteacher,
                                        assessor_name="M Kelly", assessed_on=dt.date(2026, 11, 1))
    version.refresh_from_db()
    assert version.status == Status.SUBMITTED
    assert not AuditEntry.objects.filter(action="risk.approved").exists()


def test_an_executive_headteacher_of_every_school_approves_an_organisation_wide_assessment(federation):
    version = version_approve(version=federation["version"], actor=federation["executive"])
    assert version.status == Status.APPROVED and version.approved_by == federation["executive"]
    revised = version_revise(assessment=federation["assessment"], actor=federation["executive"])
    hazard_save(version=revised, actor=federation["executive"], row=revised.hazards.first(), likelihood=1)
    assert revised.hazards.first().likelihood == 1


def test_the_organisation_admin_approves_an_organisation_wide_assessment(federation, personas):
    assert version_approve(version=federation["version"], actor=personas.org_admin).status == Status.APPROVED


def test_only_the_owner_or_an_executive_head_marks_an_organisation_wide_action_done(federation, personas,
                                                                                   client_for):
    from django.urls import reverse

    from riskassess.reminders import action_mark_done

    version = version_approve(version=federation["version"], actor=personas.org_admin)
    row = version.hazards.order_by("position", "id").first()
    Hazard.objects.filter(pk=row.pk).update(further_action="Brief the staff", action_owner=personas.teacher,
                                            action_due_on=dt.date(2026, 1, 1))
    with pytest.raises(PermissionDenied):
        action_mark_done(hazard=row, actor=personas.headteacher)
    page = client_for(personas.headteacher).get(reverse("riskassess:actions-overdue")).content.decode()
    assert "Brief the staff" in page and "Mark done</button>" not in page
    assert client_for(personas.headteacher).post(reverse("riskassess:action-done", args=[row.pk])).status_code == 403
    page = client_for(federation["executive"]).get(reverse("riskassess:actions-overdue")).content.decode()
    assert "Mark done</button>" in page
    action_mark_done(hazard=row, actor=federation["executive"])
    row.refresh_from_db()
    assert row.action_done_on is not None


# --- A review date is always there -------------------------------------------------------------------------


def test_a_revision_whose_review_date_was_removed_is_not_submitted_or_approved_without_one(assessment, personas):
    from riskassess.editing import version_details_save

    _approve(_draft(assessment), personas)
    draft = version_revise(assessment=assessment, actor=personas.headteacher)
    # The revision keeps the approved version's date; without one (emptied since), nothing goes further.
    AssessmentVersion.objects.filter(pk=draft.pk).update(review_on=None)
    draft.refresh_from_db()
    assert draft.review_on is None and draft.review_interval_months is None
    with pytest.raises(ValidationError, match="review date or a review interval"):
        version_submit(version=draft, actor=personas.headteacher)
    # Submitted meanwhile without one (as before the rule): approval refuses too, nothing approved.
    AssessmentVersion.objects.filter(pk=draft.pk).update(status=Status.SUBMITTED)
    with pytest.raises(ValidationError, match="review date or a review interval"):
        version_approve(version=draft, actor=personas.headteacher)
    draft.refresh_from_db()
    assert draft.status == Status.SUBMITTED
    AssessmentVersion.objects.filter(pk=draft.pk).update(status=Status.DRAFT)
    version_details_save(version=draft, actor=personas.headteacher, assessor_name="M Kelly",
                         assessed_on=dt.date(2026, 11, 1), review_on=dt.date(2027, 11, 1), review_interval_months=None)
    assert _approve(draft, personas).review_on == dt.date(2027, 11, 1)


def test_a_revision_carries_the_review_interval_and_gets_its_own_review_date_at_approval(personas):
    from riskassess.editing import assessment_start

    assessment = assessment_start(school=personas.school, actor=personas.headteacher, assessor_name="M Kelly",
                                  assessed_on=dt.date(2026, 11, 1), review_interval_months=6)
    _approve(assessment.versions.get(), personas)
    draft = version_revise(assessment=assessment, actor=personas.headteacher)
    assert (draft.review_on, draft.review_interval_months) == (None, 6)
    approved = _approve(draft, personas)
    assert approved.review_on is not None


def test_an_approved_version_without_a_review_date_turns_the_gate_red(assessment, personas):
    version = _approve(_draft(assessment), personas)
    AssessmentVersion.objects.filter(pk=version.pk).update(review_on=None)
    status = video_lessons_assessment_status(school=personas.school, today=dt.date(2026, 12, 1))
    assert not status.ok and "has no review date" in status.reasons[0]


def test_a_review_date_more_than_five_years_ahead_is_refused(personas):
    from riskassess.editing import assessment_start, version_details_save
    from riskassess.forms import VersionDetailsForm

    with pytest.raises(ValidationError, match="5 years"):
        assessment_start(school=personas.school, actor=personas.headteacher, assessor_name="M Kelly",
                         assessed_on=dt.date(2026, 11, 1), review_on=dt.date(9999, 12, 31))
    assessment = assessment_start(school=personas.school, actor=personas.headteacher, assessor_name="M Kelly",
                                  assessed_on=dt.date(2026, 11, 1), review_interval_months=12)
    with pytest.raises(ValidationError, match="5 years"):
        version_details_save(version=assessment.versions.get(), actor=personas.headteacher, assessor_name="M",
                             assessed_on=dt.date(2026, 11, 1), review_on=dt.date(9999, 12, 31),
                             review_interval_months=None)
    form = VersionDetailsForm(data={"assessor_name": "M", "assessed_on": "2026-11-01", "review_on": "9999-12-31"})
    assert not form.is_valid() and "5 years" in str(form.errors)


def test_a_headteacher_of_one_school_among_several_gets_403_on_an_organisation_wide_versions_forms(
        federation, personas, client_for):
    from django.urls import reverse
    from django.utils import timezone

    from accounts.reauth import SESSION_KEY

    version = federation["version"]
    client = client_for(personas.headteacher)
    session = client.session
    session[SESSION_KEY] = {"user": personas.headteacher.pk, "at": timezone.now().timestamp()}  # confirmed
    session.save()
    for name in ("riskassess:version-details", "riskassess:version-approve"):
        assert client.get(reverse(name, kwargs={"pk": version.pk})).status_code == 403, name
    executive = client_for(federation["executive"])
    assert executive.get(reverse("riskassess:version-details", kwargs={"pk": version.pk})).status_code in (200, 302)
