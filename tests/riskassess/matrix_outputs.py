"""Outputs: the PDF, the CSV export, the heat maps."""
# Rows of the role matrix, gathered by tests/test_role_matrix.py.
# Everyone who reads the school's assessments reads their outputs (teachers and office included; the DPO,
# the SIRO and the organisation admin across the organisation); another school's do not exist (404).
# The organisation's whole register (CSV) is for the DPO, the SIRO and the organisation admin; its heat map for
# them and the headteachers of its schools.

import datetime as dt

from tests.matrix import Row, everyone


def _version(school, headteacher, organisation=None):
    from riskassess.services import assessment_create_from_template

    assessment = assessment_create_from_template(school=school, organisation=organisation, actor=headteacher,
                                                 assessor_name="M Kelly", assessed_on=dt.date(2026, 11, 1))
    return assessment.versions.get()


def _ours(p) -> dict:
    return {"pk": _version(p.school, p.headteacher).pk}


def _theirs(p) -> dict:
    return {"pk": _version(p.other_school, p.other_headteacher).pk}


def _organisation_wide(p) -> dict:
    return {"pk": _version(None, p.org_admin, organisation=p.organisation).pk}


READERS = everyone(other_teacher=404)
OTHER_SCHOOLS = everyone(404, other_teacher=200)

ROWS: list[Row] = [
    Row("riskassess:version-pdf", READERS, kwargs=_ours),
    Row("riskassess:version-pdf", OTHER_SCHOOLS, kwargs=_theirs),
    Row("riskassess:version-pdf", READERS, kwargs=_organisation_wide),
    Row("riskassess:version-heatmap", READERS, kwargs=_ours),
    Row("riskassess:version-heatmap", READERS, kwargs=_organisation_wide),
    Row("riskassess:version-heatmap", OTHER_SCHOOLS, kwargs=_theirs),
    Row("riskassess:school-heatmap", READERS, kwargs=lambda p: {"school_pk": p.school.pk}),
    Row("riskassess:school-heatmap", OTHER_SCHOOLS, kwargs=lambda p: {"school_pk": p.other_school.pk}),
    Row("riskassess:organisation-heatmap",
        everyone(403, headteacher=200, dpo=200, siro=200, org_admin=200, other_teacher=404),
        kwargs=lambda p: {"organisation_pk": p.organisation.pk}),
    Row("riskassess:organisation-heatmap", everyone(404, other_teacher=403),
        kwargs=lambda p: {"organisation_pk": p.other_school.organisation_id}),
    Row("riskassess:school-register-csv", READERS, kwargs=lambda p: {"school_pk": p.school.pk}),
    Row("riskassess:school-register-csv", OTHER_SCHOOLS, kwargs=lambda p: {"school_pk": p.other_school.pk}),
    Row("riskassess:organisation-register-csv",
        everyone(403, dpo=200, siro=200, org_admin=200, other_teacher=404),
        kwargs=lambda p: {"organisation_pk": p.organisation.pk}),
    Row("riskassess:organisation-register-csv", everyone(404, other_teacher=403),
        kwargs=lambda p: {"organisation_pk": p.other_school.organisation_id}),
]
