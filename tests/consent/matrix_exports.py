"""The register's CSV and PDF exports in the role matrix (gathered by tests/test_role_matrix.py).

A bulk copy of pupils' and parents' personal data: the headteacher, the office, the organisation admin
and the DPO may take one; teachers and the SIRO read the register but may not (403); another school's
register does not exist (404), even for its own teacher, who may not export it either (403).
"""

from tests.matrix import Row, everyone

from .consent_setup import decided_family

EXPORTERS = everyone(403, headteacher=200, office=200, dpo=200, org_admin=200, other_teacher=404)


def _school_with_register(personas) -> dict:
    decided_family(personas.school)
    return {"school_pk": personas.school.pk}


def _other_school_with_register(personas) -> dict:
    decided_family(personas.other_school)
    return {"school_pk": personas.other_school.pk}


ROWS: list[Row] = [
    Row("consent:register-csv", EXPORTERS, kwargs=_school_with_register),
    Row("consent:register-csv", everyone(404, other_teacher=403), kwargs=_other_school_with_register),
    Row("consent:register-pdf", EXPORTERS, kwargs=_school_with_register),
    Row("consent:register-pdf", everyone(404, other_teacher=403), kwargs=_other_school_with_register),
]
