"""Reviews: reviews due, actions overdue, the organisation's matrix."""
# Rows of the role matrix, gathered by tests/test_role_matrix.py.

import datetime as dt

from django.utils import timezone

from riskassess.models import AssessmentVersion, Hazard
from riskassess.services import (
    assessment_create_from_template,
    hazard_save,
    version_approve,
    version_submit,
)
from tests.matrix import Row, everyone


def approved_assessment(school, headteacher, *, review_on=None, owner=None, due_on=None,
                        further_action="Check the waiting room settings") -> AssessmentVersion:
    """The seed's assessment at `school`, approved, its first row with a further action owned by `owner`."""
    today = timezone.localdate()
    assessment = assessment_create_from_template(school=school, actor=headteacher, assessor_name="M Kelly",
                                                 assessed_on=today, review_on=review_on)
    version = assessment.versions.get()
    if owner is not None:
        first = version.hazards.order_by("position").first()
        hazard_save(version=version, actor=headteacher, row=first, further_action=further_action,
                    action_owner=owner, action_due_on=due_on or today - dt.timedelta(days=3))
    version_submit(version=version, actor=headteacher)
    return version_approve(version=version, actor=headteacher)


def matrix_post(matrix, action: str = "preview", **overrides) -> dict:
    """The matrix page's form, filled in for `matrix` (a 5×5 fills every label and band field; a 3×3 only
    chooses the size), with `overrides` applied."""
    data = {"size": str(matrix.size), "action": action}
    if matrix.size == 5:
        for level in range(1, 6):
            data[f"likelihood_{level}"] = matrix.likelihood_labels[level - 1]
            data[f"severity_{level}"] = matrix.severity_labels[level - 1]
        for slot in range(1, 6):
            band = matrix.bands[slot - 1] if slot <= len(matrix.bands) else None
            data[f"band_label_{slot}"] = band.label if band else ""
            data[f"band_upper_{slot}"] = str(band.upper) if band else ""
    data.update(overrides)
    return data


def overdue_action(personas, *, other: bool = False) -> Hazard:
    school, head = (personas.other_school, personas.other_headteacher) if other else (personas.school,
                                                                                      personas.headteacher)
    version = approved_assessment(school, head, owner=head)
    return version.hazards.order_by("position", "id").first()


ROWS: list[Row] = [
    Row("riskassess:reviews-due", everyone()),
    Row("riskassess:actions-overdue", everyone()),
    Row("riskassess:action-done", everyone(403, headteacher=302, org_admin=302, other_teacher=404), method="post",
        kwargs=lambda p: {"pk": overdue_action(p).pk}),
    Row("riskassess:action-done", everyone(404, other_teacher=403), method="post",
        kwargs=lambda p: {"pk": overdue_action(p, other=True).pk}),
    Row("riskassess:matrix", everyone(other_teacher=404), kwargs=lambda p: {"organisation_pk": p.organisation.pk}),
    Row("riskassess:matrix", everyone(404, other_teacher=200),
        kwargs=lambda p: {"organisation_pk": p.other_school.organisation.pk}),
    Row("riskassess:matrix", everyone(403, org_admin=200, other_teacher=404), method="post",
        kwargs=lambda p: {"organisation_pk": p.organisation.pk}),
]
