"""Assessments: the register, new from template, copy, editing rows, submit, approve, versions."""
# Rows of the role matrix, gathered by tests/test_role_matrix.py.
#
# Teachers, the office, the DPO and the SIRO read; the headteacher and the organisation admin write and
# approve; another organisation's teacher finds nothing of ours (404), and we find nothing of theirs.

import datetime as dt

from riskassess.models import AssessmentVersion
from riskassess.services import assessment_create_from_template, version_approve, version_submit
from tests.matrix import Row, everyone

READERS = everyone(other_teacher=404)
READERS_ELSEWHERE = everyone(404, other_teacher=200)
WRITERS = everyone(403, headteacher=200, org_admin=200)
EDITORS = everyone(403, headteacher=200, org_admin=200, other_teacher=404)
EDITORS_REDIRECTED = everyone(403, headteacher=302, org_admin=302, other_teacher=404)
ELSEWHERE = everyone(404, other_teacher=403)


def _assessment(p, *, other=False, organisation_wide=False, status="draft"):
    if organisation_wide:
        assessment = assessment_create_from_template(
            school=None, organisation=p.organisation, actor=p.org_admin, assessor_name="A Admin",
            assessed_on=dt.date(2026, 1, 5), review_on=dt.date(2027, 1, 5))
        actor = p.org_admin
    else:
        school, actor = (p.other_school, p.other_headteacher) if other else (p.school, p.headteacher)
        assessment = assessment_create_from_template(
            school=school, actor=actor, assessor_name="H Head", assessed_on=dt.date(2026, 1, 5),
            review_on=dt.date(2027, 1, 5))
    version = assessment.versions.get()
    if status in ("submitted", "approved"):
        version_submit(version=version, actor=actor)
    if status == "approved":
        version_approve(version=version, actor=actor)
    return assessment


def _version(p, **kwargs) -> AssessmentVersion:
    return _assessment(p, **kwargs).versions.get()


ROWS: list[Row] = [
    Row("riskassess:assessments", everyone()),
    Row("riskassess:assessment-new", WRITERS),
    Row("riskassess:assessment-new", WRITERS, method="post"),  # empty: the form again, with its errors
    Row("riskassess:assessment-copy", WRITERS),
    Row("riskassess:assessment-copy", WRITERS, method="post"),
    Row("riskassess:assessment", READERS, kwargs=lambda p: {"pk": _assessment(p).pk}),
    Row("riskassess:assessment", READERS_ELSEWHERE, kwargs=lambda p: {"pk": _assessment(p, other=True).pk}),
    # An organisation-wide assessment is read by everyone in the organisation.
    Row("riskassess:assessment", READERS, kwargs=lambda p: {"pk": _assessment(p, organisation_wide=True).pk}),
    Row("riskassess:assessment-revise", EDITORS_REDIRECTED, method="post",
        kwargs=lambda p: {"pk": _assessment(p, status="approved").pk}),
    Row("riskassess:assessment-revise", ELSEWHERE, method="post",
        kwargs=lambda p: {"pk": _assessment(p, other=True, status="approved").pk}),
    Row("riskassess:versions", READERS, kwargs=lambda p: {"pk": _assessment(p).pk}),
    Row("riskassess:versions", READERS_ELSEWHERE, kwargs=lambda p: {"pk": _assessment(p, other=True).pk}),
    Row("riskassess:compare", READERS, kwargs=lambda p: {"pk": _assessment(p).pk}),
    Row("riskassess:compare", READERS_ELSEWHERE, kwargs=lambda p: {"pk": _assessment(p, other=True).pk}),
    Row("riskassess:version", READERS, kwargs=lambda p: {"pk": _version(p, status="approved").pk}),
    Row("riskassess:version", READERS_ELSEWHERE, kwargs=lambda p: {"pk": _version(p, other=True).pk}),
    Row("riskassess:version-details", EDITORS, kwargs=lambda p: {"pk": _version(p).pk}),
    Row("riskassess:version-details", EDITORS, method="post", kwargs=lambda p: {"pk": _version(p).pk}),
    Row("riskassess:version-details", ELSEWHERE, kwargs=lambda p: {"pk": _version(p, other=True).pk}),
    # The editing table of a draft (an empty POST: the form again with its errors, nothing saved).
    Row("riskassess:version-rows", EDITORS, kwargs=lambda p: {"pk": _version(p).pk}),
    Row("riskassess:version-rows", EDITORS, method="post", kwargs=lambda p: {"pk": _version(p).pk}),
    Row("riskassess:version-rows", ELSEWHERE, kwargs=lambda p: {"pk": _version(p, other=True).pk}),
    Row("riskassess:version-rows", ELSEWHERE, method="post", kwargs=lambda p: {"pk": _version(p, other=True).pk}),
    # Organisation-wide: the organisation admin, and the headteacher of the federation's only school (so of
    # every school of it); the others read it but do not edit it.
    Row("riskassess:version-rows", EDITORS, kwargs=lambda p: {"pk": _version(p, organisation_wide=True).pk}),
    # An approved version has no editing table: back to the assessment with a message.
    Row("riskassess:version-rows", EDITORS_REDIRECTED, kwargs=lambda p: {"pk": _version(p, status="approved").pk}),
    Row("riskassess:version-submit", EDITORS_REDIRECTED, method="post", kwargs=lambda p: {"pk": _version(p).pk}),
    Row("riskassess:version-submit", ELSEWHERE, method="post", kwargs=lambda p: {"pk": _version(p, other=True).pk}),
    # Approving: "confirm it's you" first (a redirect), for those who may approve.
    Row("riskassess:version-approve", EDITORS_REDIRECTED, kwargs=lambda p: {"pk": _version(p, status="submitted").pk}),
    Row("riskassess:version-approve", EDITORS_REDIRECTED, method="post",
        kwargs=lambda p: {"pk": _version(p, status="submitted").pk}),
    Row("riskassess:version-approve", ELSEWHERE,
        kwargs=lambda p: {"pk": _version(p, other=True, status="submitted").pk}),
    Row("riskassess:version-approve", ELSEWHERE, method="post",
        kwargs=lambda p: {"pk": _version(p, other=True, status="submitted").pk}),
]
