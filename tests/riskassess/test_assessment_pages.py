"""The risk register's assessment pages: the register, new from template, copy, the assessment with its
rows, submit and approve ("confirm it's you"), versions and their comparison."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.reauth import SESSION_KEY
from riskassess.editing import assessment_copy, hazards_reorder
from riskassess.models import Assessment, AssessmentVersion, Hazard
from riskassess.services import (
    assessment_create_from_template,
    hazard_save,
    version_approve,
    version_revise,
    version_submit,
)
from schools.models import AuditEntry

from ..factories import SchoolFactory

pytestmark = pytest.mark.django_db

Status = AssessmentVersion.Status


def _start(school, actor, **kwargs):
    return assessment_create_from_template(school=school, actor=actor, assessor_name="M Kelly",
                                           assessed_on=dt.date(2026, 1, 5), review_on=dt.date(2027, 1, 5), **kwargs)


def _approve(assessment, actor):
    version = assessment.versions.get(status=Status.DRAFT)
    version_submit(version=version, actor=actor)
    return version_approve(version=version, actor=actor)


def _confirmed(client, user):
    session = client.session
    session[SESSION_KEY] = {"user": user.pk, "at": timezone.now().timestamp()}
    session.save()


# --- The register --------------------------------------------------------------------------------------


def test_register_lists_own_and_organisation_wide_assessments_but_not_another_schools(client_for, personas):
    own = _start(personas.school, personas.headteacher)
    _approve(own, personas.headteacher)
    organisation_wide = assessment_create_from_template(
        school=None, organisation=personas.organisation, actor=personas.org_admin, assessor_name="A",
        assessed_on=dt.date(2026, 1, 5), review_on=dt.date(2027, 1, 5))
    theirs = _start(personas.other_school, personas.other_headteacher)
    response = client_for(personas.teacher).get(reverse("riskassess:assessments"))
    assert response.status_code == 200
    listed = {row["assessment"].pk for row in response.context["rows"]}
    assert listed == {own.pk, organisation_wide.pk}
    assert theirs.pk not in listed
    html = response.content.decode()
    assert "Version 1, approved" in html and "(organisation-wide)" in html
    assert "New from template" not in html  # teachers read


def test_dpo_sees_every_school_of_the_organisation(client_for, personas):
    second = SchoolFactory(organisation=personas.organisation, name="Dhoon Test School")
    _start(personas.school, personas.headteacher)
    _start(second, personas.org_admin)
    response = client_for(personas.dpo).get(reverse("riskassess:assessments"))
    assert {row["where"] for row in response.context["rows"]} == {"Laxey Test School", "Dhoon Test School"}
    # The filter by school keeps one school's (and the organisation-wide ones).
    response = client_for(personas.dpo).get(reverse("riskassess:assessments"), {"school": second.pk})
    assert [row["where"] for row in response.context["rows"]] == ["Dhoon Test School"]


def test_register_highlights_an_overdue_review(client_for, personas):
    assessment = _start(personas.school, personas.headteacher)
    _approve(assessment, personas.headteacher)
    assessment.versions.update(review_on=dt.date(2020, 1, 1))
    html = client_for(personas.headteacher).get(reverse("riskassess:assessments")).content.decode()
    assert "review-overdue" in html and "Overdue: 1 Jan 2020" in html


def test_empty_register_offers_the_template(client_for, personas):
    html = client_for(personas.headteacher).get(reverse("riskassess:assessments")).content.decode()
    assert "No risk assessments yet" in html and reverse("riskassess:assessment-new") in html


def test_a_bad_school_filter_is_ignored_not_an_error(client_for, personas):
    response = client_for(personas.headteacher).get(reverse("riskassess:assessments"), {"school": "x'; --"})
    assert response.status_code == 200


def test_register_takes_a_constant_number_of_queries(client_for, personas, django_assert_max_num_queries):
    client = client_for(personas.dpo)
    for _ in range(2):
        _approve(_start(personas.school, personas.headteacher), personas.headteacher)
    with django_assert_max_num_queries(40) as few:
        client.get(reverse("riskassess:assessments"))
    for _ in range(6):
        assessment = _approve(_start(personas.school, personas.headteacher), personas.headteacher).assessment
        version_revise(assessment=assessment, actor=personas.headteacher)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse("riskassess:assessments"))
    assert len(response.context["rows"]) == 8


# --- New from template, copy ---------------------------------------------------------------------------


def test_new_from_template_with_a_review_interval_opens_the_assessment(client_for, personas):
    client = client_for(personas.headteacher)
    page = client.get(reverse("riskassess:assessment-new"))
    assert page.context["form"].initial["assessor_name"] == personas.headteacher.get_full_name()
    response = client.post(reverse("riskassess:assessment-new"), {
        "where": str(personas.school.pk), "assessor_name": "M Kelly", "assessed_on": "2026-01-05",
        "review_interval_months": "12",
    })
    assessment = Assessment.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("riskassess:assessment",
                                                                            kwargs={"pk": assessment.pk})
    version = assessment.versions.get()
    assert (version.review_interval_months, version.review_on, version.hazards.count()) == (12, None, 6)
    assert AuditEntry.objects.filter(action="risk.assessment_created").count() == 1


def test_new_from_template_refuses_both_a_review_date_and_an_interval(client_for, personas):
    response = client_for(personas.headteacher).post(reverse("riskassess:assessment-new"), {
        "where": str(personas.school.pk), "assessor_name": "M Kelly", "assessed_on": "2026-01-05",
        "review_on": "2027-01-05", "review_interval_months": "12",
    })
    assert response.status_code == 200 and "not both" in response.content.decode()
    assert not Assessment.objects.exists()


def test_only_the_organisation_admin_may_start_an_organisation_wide_assessment(client_for, personas):
    choices = dict(client_for(personas.headteacher).get(reverse("riskassess:assessment-new"))
                   .context["form"].fields["where"].choices)
    assert f"organisation-{personas.organisation.pk}" not in choices
    response = client_for(personas.headteacher).post(reverse("riskassess:assessment-new"), {
        "where": f"organisation-{personas.organisation.pk}", "assessor_name": "M", "assessed_on": "2026-01-05",
        "review_interval_months": "12"})
    assert response.status_code == 200 and not Assessment.objects.exists()
    client_for(personas.org_admin).post(reverse("riskassess:assessment-new"), {
        "where": f"organisation-{personas.organisation.pk}", "assessor_name": "M", "assessed_on": "2026-01-05",
        "review_interval_months": "12"})
    assert Assessment.objects.get().school is None


def test_copy_from_another_school_of_the_organisation(client_for, personas):
    second = SchoolFactory(organisation=personas.organisation, name="Dhoon Test School")
    source = _start(second, personas.org_admin)
    source_version = source.versions.get()
    hazard_save(version=source_version, actor=personas.org_admin, row=source_version.hazards.first(),
                action_owner=personas.org_admin, action_due_on=dt.date(2026, 3, 1), likelihood=3)
    _approve(source, personas.org_admin)
    client = client_for(personas.headteacher)
    form = client.get(reverse("riskassess:assessment-copy")).context["form"]
    assert list(form.fields["source"].queryset) == [source]
    response = client.post(reverse("riskassess:assessment-copy"), {
        "school": personas.school.pk, "source": source.pk, "assessor_name": "M Kelly",
        "assessed_on": "2026-02-01", "review_on": "2027-02-01"})
    copy = Assessment.objects.get(school=personas.school)
    assert response["Location"] == reverse("riskassess:assessment", kwargs={"pk": copy.pk})
    version = copy.versions.get()
    assert (version.number, version.status, version.hazards.count()) == (1, Status.DRAFT, 6)
    first = version.hazards.order_by("position").first()
    assert (first.likelihood, first.rating, first.action_owner, first.action_due_on) == (3, 6, None, None)
    entry = AuditEntry.objects.get(action="risk.copied")
    assert entry.data["from_assessment"] == source.pk


def test_copy_refuses_a_draft_or_another_organisations_assessment(personas):
    from django.core.exceptions import ValidationError

    draft = _start(SchoolFactory(organisation=personas.organisation), personas.org_admin)
    with pytest.raises(ValidationError):
        assessment_copy(source=draft, school=personas.school, actor=personas.headteacher, assessor_name="M",
                        assessed_on=dt.date(2026, 1, 1), review_on=dt.date(2027, 1, 1))
    theirs = _start(personas.other_school, personas.other_headteacher)
    _approve(theirs, personas.other_headteacher)
    with pytest.raises(ValidationError):
        assessment_copy(source=theirs, school=personas.school, actor=personas.headteacher, assessor_name="M",
                        assessed_on=dt.date(2026, 1, 1), review_on=dt.date(2027, 1, 1))
    assert not Assessment.objects.filter(school=personas.school).exists()


def test_copy_form_never_offers_another_organisations_assessment(client_for, personas):
    theirs = _start(personas.other_school, personas.other_headteacher)
    _approve(theirs, personas.other_headteacher)
    response = client_for(personas.headteacher).post(reverse("riskassess:assessment-copy"), {
        "school": personas.school.pk, "source": theirs.pk, "assessor_name": "M", "assessed_on": "2026-02-01",
        "review_on": "2027-02-01"})
    assert response.status_code == 200 and "source" in response.context["form"].errors
    assert not Assessment.objects.filter(school=personas.school).exists()


# --- The assessment page and its rows ----------------------------------------------------------------------


def test_assessment_page_shows_every_column_and_bands_in_words(client_for, personas):
    assessment = _start(personas.school, personas.headteacher)
    html = client_for(personas.teacher).get(reverse("riskassess:assessment", kwargs={"pk": assessment.pk})
                                            ).content.decode()
    for heading in ("Activity element", "Potential hazard", "Who is affected", "Rating",
                    "Actions taken to reduce or control the risk", "Residual rating", "Further action required",
                    "Action owner", "Due date", "Initials", "Laxey Test School", "M Kelly", "5 January 2026",
                    "5 January 2027", "Draft"):
        assert heading in html, heading
    assert "Pupils sharing inappropriate content" in html
    assert 'risk-band risk-band-medium">4 Medium' in html
    assert "Edit the rows" not in html  # teachers read only


def test_reorder_refuses_an_order_that_is_not_every_row_once(personas):
    from django.core.exceptions import ValidationError

    version = _start(personas.school, personas.headteacher).versions.get()
    ids = list(version.hazards.values_list("pk", flat=True))
    with pytest.raises(ValidationError):
        hazards_reorder(version=version, actor=personas.headteacher, order=[*ids[:-1], ids[0]])


# --- Submit, approve, revise ----------------------------------------------------------------------------------


def test_submit_then_approve_after_confirming_its_you(client_for, personas):
    assessment = _start(personas.school, personas.headteacher)
    version = assessment.versions.get()
    client = client_for(personas.headteacher)
    client.post(reverse("riskassess:version-submit", kwargs={"pk": version.pk}))
    version.refresh_from_db()
    assert version.status == Status.SUBMITTED
    url = reverse("riskassess:version-approve", kwargs={"pk": version.pk})
    response = client.post(url)
    assert response.status_code == 302 and reverse("accounts:confirm") in response["Location"]
    version.refresh_from_db()
    assert version.status == Status.SUBMITTED
    _confirmed(client, personas.headteacher)
    page = client.get(url)
    assert "Approve version 1" in page.content.decode()
    response = client.post(url, {"seen": page.context["seen"]})
    version.refresh_from_db()
    assert (version.status, version.approved_by) == (Status.APPROVED, personas.headteacher)
    assert version.hash_verifies()
    # One confirmation per approval.
    assert SESSION_KEY not in client.session


def test_approval_refuses_when_the_version_changed_since_the_approver_opened_the_page(client_for, personas):
    version = _start(personas.school, personas.headteacher).versions.get()
    version_submit(version=version, actor=personas.headteacher)
    client = client_for(personas.headteacher)
    _confirmed(client, personas.headteacher)
    url = reverse("riskassess:version-approve", kwargs={"pk": version.pk})
    seen = client.get(url).context["seen"]
    assert len(seen) == 64
    # Someone changes a row of the submitted version meanwhile.
    hazard_save(version=version, actor=personas.headteacher, row=version.hazards.order_by("position").first(),
                controls="Nothing any more")
    response = client.post(url, {"seen": seen}, follow=True)
    assert "The assessment changed since you opened this page: read it again" in response.content.decode()
    version.refresh_from_db()
    assert (version.status, version.approved_by, version.sha256) == (Status.SUBMITTED, None, "")
    # Without the field: refused too.
    client.post(url)
    version.refresh_from_db()
    assert version.status == Status.SUBMITTED
    # Read again, then approved.
    client.post(url, {"seen": client.get(url).context["seen"]})
    version.refresh_from_db()
    assert version.status == Status.APPROVED
    assert "Nothing any more" in str(version.snapshot)


def test_submitting_an_empty_draft_is_a_message(client_for, personas):
    version = _start(personas.school, personas.headteacher).versions.get()
    version.hazards.all().delete()
    response = client_for(personas.headteacher).post(
        reverse("riskassess:version-submit", kwargs={"pk": version.pk}), follow=True)
    assert "Add at least one hazard" in response.content.decode()
    version.refresh_from_db()
    assert version.status == Status.DRAFT


def test_edit_new_version_starts_a_draft_and_keeps_the_approved_one(client_for, personas):
    assessment = _start(personas.school, personas.headteacher)
    approved = _approve(assessment, personas.headteacher)
    client = client_for(personas.headteacher)
    html = client.get(reverse("riskassess:assessment", kwargs={"pk": assessment.pk})).content.decode()
    assert "Edit (new version)" in html and approved.sha256 in html
    client.post(reverse("riskassess:assessment-revise", kwargs={"pk": assessment.pk}))
    draft = assessment.versions.get(status=Status.DRAFT)
    assert draft.number == 2 and draft.hazards.count() == 6
    html = client.get(reverse("riskassess:assessment", kwargs={"pk": assessment.pk})).content.decode()
    assert "Version 1 is the current approved assessment" in html and "Submit for approval" in html


# --- Versions --------------------------------------------------------------------------------------------------


def _two_versions(personas):
    assessment = _start(personas.school, personas.headteacher)
    _approve(assessment, personas.headteacher)
    draft = version_revise(assessment=assessment, actor=personas.headteacher)
    rows = list(draft.hazards.order_by("position"))
    hazard_save(version=draft, actor=personas.headteacher, row=rows[0], likelihood=3,
                controls="<script>alert(1)</script> Waiting room")
    Hazard.objects.filter(pk=rows[1].pk).delete()
    hazard_save(version=draft, actor=personas.headteacher, activity_element="Breakout rooms",
                hazard="Pupils alone in a breakout room", likelihood=2, severity=3)
    return assessment, draft


def test_versions_list_shows_who_approved_and_the_hash(client_for, personas):
    assessment, _ = _two_versions(personas)
    approved = assessment.versions.get(number=1)
    html = client_for(personas.dpo).get(reverse("riskassess:versions", kwargs={"pk": assessment.pk})).content.decode()
    assert approved.sha256 in html and "Approved" in html and "Draft" in html


def test_an_old_version_is_shown_from_its_snapshot(client_for, personas):
    assessment, _draft = _two_versions(personas)
    old = assessment.versions.get(number=1)
    # The live rows of a frozen version are not what the page reads: its snapshot is.
    Hazard.objects.filter(version=old).update(hazard="tampered")
    html = client_for(personas.teacher).get(reverse("riskassess:version", kwargs={"pk": old.pk})).content.decode()
    assert "tampered" not in html and "Pupils sharing inappropriate content" in html
    assert "You are looking at version 1" in html
    assert "Edit (new version)" not in html  # version 2 is already open


def test_compare_lists_rows_added_removed_and_changed_field_by_field_escaped(client_for, personas):
    assessment, _ = _two_versions(personas)
    response = client_for(personas.teacher).get(reverse("riskassess:compare", kwargs={"pk": assessment.pk}),
                                                {"old": "1", "new": "2"})
    comparison = response.context["comparison"]
    assert [row["hazard"] for row in comparison["added"]] == ["Pupils alone in a breakout room"]
    assert len(comparison["removed"]) == 1
    [changed] = comparison["changed"]
    fields = {d["field"] for d in changed["differences"]}
    assert {"L", "Rating", "Band", "Actions taken to reduce or control the risk"} <= fields
    html = response.content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_compare_with_a_version_that_does_not_exist_is_a_message(client_for, personas):
    assessment, _ = _two_versions(personas)
    response = client_for(personas.teacher).get(reverse("riskassess:compare", kwargs={"pk": assessment.pk}),
                                                {"old": "99", "new": "<b>"})
    assert response.status_code == 200
    assert "There is no version 99" in response.content.decode()
    assert "<b>" not in response.content.decode().split("There is no version")[2][:20]


def test_compare_shows_a_change_to_one_of_two_rows_with_the_same_element_and_hazard(client_for, personas):
    assessment = _start(personas.school, personas.headteacher)
    first = assessment.versions.get()
    for controls in ("Lock the room", "Admit one by one"):
        hazard_save(version=first, actor=personas.headteacher, activity_element="Waiting room",
                    hazard="Uninvited guest", likelihood=2, severity=2, controls=controls)
    _approve(assessment, personas.headteacher)
    draft = version_revise(assessment=assessment, actor=personas.headteacher)
    duplicate = draft.hazards.get(controls="Lock the room")
    hazard_save(version=draft, actor=personas.headteacher, row=duplicate, controls="Lock the room and check")
    response = client_for(personas.teacher).get(reverse("riskassess:compare", kwargs={"pk": assessment.pk}),
                                                {"old": "1", "new": "2"})
    comparison = response.context["comparison"]
    assert not comparison["added"] and not comparison["removed"]
    [changed] = comparison["changed"]
    assert changed["differences"] == [{"field": "Actions taken to reduce or control the risk",
                                       "old": "Lock the room", "new": "Lock the room and check"}]


def test_compare_rows_falls_back_to_position_without_row_keys():
    from riskassess.views_assessments import compare_rows

    old = [{"activity_element": "A", "hazard": "H", "controls": "x"}, {"activity_element": "A", "hazard": "H",
                                                                        "controls": "y"}]
    new = [{"activity_element": "A", "hazard": "H", "controls": "z"}, {"activity_element": "A", "hazard": "H",
                                                                        "controls": "y"}]
    result = compare_rows(old, new)
    assert [(d["old"], d["new"]) for d in result["changed"][0]["differences"]] == [("x", "z")]


@pytest.mark.parametrize("odd", ["\u00b2", "-1", "1e3", "9" * 40, " 1", "\u0661", "1.0", "0"])
def test_compare_with_an_odd_version_number_is_a_message_never_a_500(client_for, personas, odd):
    assessment, _ = _two_versions(personas)
    response = client_for(personas.teacher).get(reverse("riskassess:compare", kwargs={"pk": assessment.pk}),
                                                {"old": "1", "new": odd})
    assert response.status_code == 200
    assert "There is no version" in response.content.decode()
    assert (response.context["old_number"], response.context["new_number"]) == (1, 2)  # the defaults


@pytest.mark.parametrize(("old", "new", "scores"), [("3", "5", (3, 3, 9)), ("5", "3", (2, 2, 4))])
def test_a_copy_after_a_matrix_change_re_maps_the_sources_scores(personas, old, new, scores):
    from riskassess.matrix import SEED_3X3, STANDARD_5X5
    from riskassess.matrix_change import matrix_change

    matrices = {"3": SEED_3X3, "5": STANDARD_5X5}
    if old == "5":
        matrix_change(organisation=personas.organisation, matrix=STANDARD_5X5, actor=personas.org_admin)
    source = _start(SchoolFactory(organisation=personas.organisation), personas.org_admin)
    _approve(source, personas.org_admin)
    matrix_change(organisation=personas.organisation, matrix=matrices[new], actor=personas.org_admin)
    copy = assessment_copy(source=source, school=personas.school, actor=personas.headteacher, assessor_name="M",
                           assessed_on=dt.date(2026, 1, 1), review_on=dt.date(2027, 1, 1))
    version = copy.versions.get()
    assert version.get_matrix().size == int(new)
    assert {(h.likelihood, h.severity, h.rating) for h in version.hazards.all()} == {scores}
