"""Editing workflows of the assessment pages that riskassess/services.py does not have: starting from the
template with a review interval, copying another school's approved assessment, and saving the rows of a
draft's editing table together (added, changed, removed and reordered).

Each is keyword-only, runs in one transaction and is audited, like the services it sits beside.
"""

from dataclasses import dataclass, field
from datetime import date

from django.core.exceptions import ValidationError
from django.db import transaction

from schools.audit import audit_log
from schools.models import Organisation, School

from .matrix_change import score_map
from .models import Assessment, AssessmentVersion, Hazard, matrix_for
from .services import (
    EDIT_ROLES,
    HAZARD_FIELDS,
    _open_version,
    _require,
    _scored,
    assessment_create_from_template,
    check_review_on,
    hazard_remove,
    hazard_save,
)

Status = AssessmentVersion.Status
SCORE_FIELDS = ("likelihood", "severity", "residual_likelihood", "residual_severity")

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
    return assessment_create_from_template(
        school=school, organisation=organisation, actor=actor, assessor_name=assessor_name,
        assessed_on=assessed_on, review_on=review_on, review_interval_months=review_interval_months,
    )


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
    check_review_on(review_on)
    with transaction.atomic():
        approved = source.versions.filter(status=Status.APPROVED).first()
        if approved is None:
            raise ValidationError("That assessment has no approved version to copy.")
        assessment = Assessment(organisation_id=school.organisation_id, school=school, title=source.title,
                                topic=source.topic, created_by=actor)
        _require(actor, assessment, EDIT_ROLES, "start a risk assessment")
        assessment.save()
        # The organisation's row locked, as `matrix_change` locks it: a matrix change waits for the copy (and
        # then re-maps it as an open draft), or the copy waits and is scored on the new matrix.
        matrix = matrix_for(Organisation.objects.select_for_update().get(pk=school.organisation_id))
        version = AssessmentVersion.objects.create(
            assessment=assessment, number=1, assessor_name=assessor_name, assessed_on=assessed_on,
            review_on=review_on, review_interval_months=review_interval_months, matrix=matrix.as_dict(),
        )
        rows = list(approved.hazards.order_by("position", "id"))
        # Scored on the organisation's matrix as it is now: if it changed since the source was approved, the
        # copied scores are re-mapped explicitly, as `version_revise` and a matrix change do.
        remap = score_map(approved.get_matrix().size, matrix.size)
        copied = []
        for index, row in enumerate(rows):
            values = {name: getattr(row, name) for name in COPIED_FIELDS}
            for name in SCORE_FIELDS:
                if values[name] is not None:
                    values[name] = remap[values[name]]
            copied.append(Hazard(version=version, position=index, **_scored(matrix, values)))
        Hazard.objects.bulk_create(copied)
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


@dataclass(frozen=True)
class RowChange:
    """One row of the editing table as posted: an existing row (`hazard_id`) or a new one (None), to keep
    with `values` (the row's HAZARD_FIELDS) or to remove; `form_index` says which form of the page it was."""

    hazard_id: int | None
    values: dict = field(default_factory=dict)
    delete: bool = False
    form_index: int | None = None


@dataclass(frozen=True)
class RowsSaved:
    added: int = 0
    changed: int = 0
    removed: int = 0
    reordered: bool = False
    kept_from_others: int = 0  # rows someone else added meanwhile, kept after the ones on the page

    @property
    def nothing(self) -> bool:
        return not (self.added or self.changed or self.removed or self.reordered)


class RowErrors(ValidationError):
    """Rows the services refused: {form_index: ValidationError}. Nothing was saved."""

    def __init__(self, rows: dict[int, ValidationError]):
        self.rows = rows
        super().__init__([message for error in rows.values() for message in error.messages])


def _differs(hazard: Hazard, values: dict) -> bool:
    for name, value in values.items():
        current = hazard.action_owner_id if name == "action_owner" else getattr(hazard, name)
        if name == "action_owner":
            value = value.pk if value is not None else None
        if current != value:
            return True
    return False


def hazard_rows_save(*, version: AssessmentVersion, actor, rows: list[RowChange]) -> RowsSaved:
    """Save the editing table of a draft in one go: remove, change and add rows, then put them in the
    posted order, through `hazard_remove`, `hazard_save` and `hazards_reorder` (each audited as usual).

    One transaction, the version locked first: if any row is refused nothing is saved (`RowErrors`), and
    if the version was approved meanwhile or someone removed a row the page still shows, a
    ValidationError says so. Rows someone else added meanwhile are kept, after the page's rows. A row
    whose values did not change is not saved again (no audit entry for it).
    """
    ids = [row.hazard_id for row in rows if row.hazard_id is not None]
    if len(set(ids)) != len(ids):
        raise ValidationError("A row appears twice on the page: reload it and try again.")
    with transaction.atomic():
        version = _open_version(version)
        _require(actor, version.assessment, EDIT_ROLES, "edit a risk assessment")
        # Ordered by id only: the default ordering joins through the assessment to its (nullable) school.
        current = {hazard.pk: hazard for hazard in
                   Hazard.objects.filter(version=version).select_for_update().order_by("pk")}
        if any(row.hazard_id not in current for row in rows if row.hazard_id is not None and not row.delete):
            raise ValidationError("Someone else removed a row of this assessment while you were editing: nothing "
                                  "was saved. Reload the page to see the rows as they are now.")
        before = sorted(current, key=lambda pk: (current[pk].position, pk))
        errors: dict[int, ValidationError] = {}
        added = changed = removed = 0
        order: list[int] = []
        for row in rows:
            if row.delete:
                if row.hazard_id in current:  # someone else may have removed it already: no conflict
                    hazard_remove(hazard=current.pop(row.hazard_id), actor=actor)
                    removed += 1
                continue
            hazard = current.get(row.hazard_id) if row.hazard_id is not None else None
            try:
                if hazard is None:
                    hazard = hazard_save(version=version, actor=actor, **row.values)
                    added += 1
                elif _differs(hazard, row.values):
                    hazard = hazard_save(version=version, actor=actor, row=hazard, **row.values)
                    changed += 1
            except ValidationError as error:
                errors[row.form_index] = error
                continue
            order.append(hazard.pk)
        if errors:
            raise RowErrors(errors)  # leaves the transaction: everything above is rolled back
        listed = {row.hazard_id for row in rows}
        others = [pk for pk in before if pk in current and pk not in listed]
        order += others
        unchanged = [pk for pk in before if pk in current] + [pk for pk in order if pk not in before]
        reordered = order != unchanged
        if reordered:
            hazards_reorder(version=version, actor=actor, order=order)
    return RowsSaved(added=added, changed=changed, removed=removed, reordered=reordered,
                     kept_from_others=len(others))


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
        check_review_on(review_on)
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
