"""Editing workflows of the assessment pages that riskassess/services.py does not have: starting from the
template with a review interval, copying another school's approved assessment, and reordering rows.

Each is keyword-only, runs in one transaction and is audited, like the services it sits beside.
"""

from datetime import date

from django.core.exceptions import ValidationError
from django.db import transaction

from schools.audit import audit_log
from schools.models import School

from .models import Assessment, AssessmentVersion, Hazard, matrix_for
from .services import EDIT_ROLES, HAZARD_FIELDS, _open_version, _require, _scored, assessment_create_from_template

Status = AssessmentVersion.Status

# What a copy takes from the other school's rows: the judgement, not that school's people or dates.
COPIED_FIELDS = tuple(
    name for name in HAZARD_FIELDS if name not in ("action_owner", "action_due_on", "action_done_on", "initials")
)


def assessment_start(
    *, school: School | None, organisation=None, actor, assessor_name: str, assessed_on: date,
    review_on: date | None = None, review_interval_months: int | None = None,
) -> Assessment:
    """"New from template" with either a review date or a review interval (months after approval)."""
    if bool(review_on) == bool(review_interval_months):
        raise ValidationError("Give a review date or a review interval, not both.")
    with transaction.atomic():
        assessment = assessment_create_from_template(
            school=school, organisation=organisation, actor=actor, assessor_name=assessor_name,
            assessed_on=assessed_on, review_on=review_on,
        )
        if review_interval_months:
            assessment.versions.update(review_interval_months=review_interval_months)
    return assessment


def assessment_copy(
    *, source: Assessment, school: School, actor, assessor_name: str, assessed_on: date,
    review_on: date | None = None, review_interval_months: int | None = None,
) -> Assessment:
    """A new assessment at `school`, version 1 a draft with the rows of `source`'s approved version.

    The source must be another school's of the same organisation. Scores are re-checked on this
    organisation's matrix (the same matrix, as both schools share the organisation); action owners, due
    dates and initials are the other school's and are left for this school to fill in.
    """
    if source.school_id is None or source.school_id == school.pk:
        raise ValidationError("Choose an assessment of another school.")
    if source.organisation_id != school.organisation_id:
        raise ValidationError("Choose an assessment of a school of the same organisation.")
    if review_on and review_interval_months:
        raise ValidationError("Give a review date or a review interval, not both.")
    with transaction.atomic():
        approved = source.versions.filter(status=Status.APPROVED).first()
        if approved is None:
            raise ValidationError("That assessment has no approved version to copy.")
        assessment = Assessment(organisation_id=school.organisation_id, school=school, title=source.title,
                                topic=source.topic, created_by=actor)
        _require(actor, assessment, EDIT_ROLES, "start a risk assessment")
        assessment.save()
        matrix = matrix_for(school.organisation)
        version = AssessmentVersion.objects.create(
            assessment=assessment, number=1, assessor_name=assessor_name, assessed_on=assessed_on,
            review_on=review_on, review_interval_months=review_interval_months, matrix=matrix.as_dict(),
        )
        rows = list(approved.hazards.order_by("position", "id"))
        try:
            Hazard.objects.bulk_create([
                Hazard(version=version, position=index,
                       **_scored(matrix, {name: getattr(row, name) for name in COPIED_FIELDS}))
                for index, row in enumerate(rows)
            ])
        except ValidationError as error:
            raise ValidationError("The organisation's matrix changed since that assessment was approved: its "
                                  "scores no longer fit. Start from the template instead.") from error
        audit_log(actor=actor, action="risk.copied", obj=assessment, school=school,
                  organisation=assessment.organisation,
                  data={"from_assessment": source.pk, "from_school": source.school_id,
                        "from_version": approved.number, "hazards": len(rows)})
    return assessment


def hazards_reorder(*, version: AssessmentVersion, actor, order: list[int]) -> AssessmentVersion:
    """Put the draft's rows in `order` (every row id of the version, once each)."""
    with transaction.atomic():
        version = _open_version(version)
        _require(actor, version.assessment, EDIT_ROLES, "edit a risk assessment")
        # Ordered by id only: the default ordering joins through the assessment to its (nullable) school.
        locked = Hazard.objects.filter(version=version).select_for_update().order_by("pk")
        rows = {hazard.pk: hazard for hazard in locked}
        if sorted(order) != sorted(rows) or len(set(order)) != len(order):
            raise ValidationError("The rows changed meanwhile: reload the page and try again.")
        for position, pk in enumerate(order):
            rows[pk].position = position
        Hazard.objects.bulk_update(rows.values(), ["position"])
        audit_log(actor=actor, action="risk.hazards_reordered", obj=version.assessment,
                  school=version.assessment.school, organisation=version.assessment.organisation,
                  data={"version": version.number, "order": order})
    return version


def hazard_move(*, hazard: Hazard, actor, up: bool) -> AssessmentVersion:
    """Move one row up or down by one place (a no-op at either end)."""
    order = list(hazard.version.hazards.order_by("position", "id").values_list("pk", flat=True))
    index = order.index(hazard.pk)
    other = index - 1 if up else index + 1
    if 0 <= other < len(order):
        order[index], order[other] = order[other], order[index]
    return hazards_reorder(version=hazard.version, actor=actor, order=order)


def version_details_save(
    *, version: AssessmentVersion, actor, assessor_name: str, assessed_on: date, review_on: date | None,
    review_interval_months: int | None,
) -> AssessmentVersion:
    """The header of a draft: who assessed, when, and the review date or interval (a new version starts
    without a review date: the next review is decided with it)."""
    with transaction.atomic():
        version = _open_version(version)
        _require(actor, version.assessment, EDIT_ROLES, "edit a risk assessment")
        if bool(review_on) == bool(review_interval_months):
            raise ValidationError("Give a review date or a review interval, one of the two.")
        fields = {"assessor_name": assessor_name.strip(), "assessed_on": assessed_on, "review_on": review_on,
                  "review_interval_months": review_interval_months}
        changed = sorted(name for name, value in fields.items() if getattr(version, name) != value)
        for name, value in fields.items():
            setattr(version, name, value)
        version.save(update_fields=list(fields))
        audit_log(actor=actor, action="risk.version_details_saved", obj=version.assessment,
                  school=version.assessment.school, organisation=version.assessment.organisation,
                  data={"version": version.number, "changed": changed})
    return version
