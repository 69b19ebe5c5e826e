"""The import pages in the role matrix (gathered by tests/test_role_matrix.py).

Headteachers, the office and the organisation admin import; teachers, the DPO and the SIRO see nothing of
imports (403); another school's pages and runs do not exist (404) except for that school's own teacher,
who is inside its scope with too low a role (403). POSTs with an empty body: the upload form answers 200
with its errors, confirm and discard redirect back to the run (302).
"""

from consent.imports.runs import import_run_create
from tests.matrix import REGISTRY_EDITORS, Row, everyone

IMPORTERS = REGISTRY_EDITORS  # headteacher, office, organisation admin: 200; teacher, DPO, SIRO: 403
IMPORTERS_POST = everyone(403, headteacher=302, office=302, org_admin=302, other_teacher=404)
OTHER_SCHOOL = everyone(404, other_teacher=403)
ROSTER = (b"UPN,Forename,Surname,Contact ID,Contact Surname\r\n"
          b"P1,Amelia,Quayle,C1,Quayle\r\nP2,Finlo,Quayle,C1,Quayle\r\n")


def planned_run(school):
    return import_run_create(school=school, actor=None, data=ROSTER, filename="roster.csv", file_format="csv",
                             full_import=False)


def _school(p):
    return {"school_pk": p.school.pk}


def _other_school(p):
    return {"school_pk": p.other_school.pk}


def _run(p):
    return {"pk": planned_run(p.school).pk}


def _other_run(p):
    return {"pk": planned_run(p.other_school).pk}


ROWS: list[Row] = [
    Row("consent:import-new", IMPORTERS, kwargs=_school),
    Row("consent:import-new", IMPORTERS, kwargs=_school, method="post"),  # an empty form: 200 with its errors
    Row("consent:import-new", OTHER_SCHOOL, kwargs=_other_school),
    Row("consent:import-new", OTHER_SCHOOL, kwargs=_other_school, method="post"),
    Row("consent:imports", IMPORTERS, kwargs=_school),
    Row("consent:imports", OTHER_SCHOOL, kwargs=_other_school),
    Row("consent:import-columns", IMPORTERS, kwargs=_school),
    Row("consent:import-columns", OTHER_SCHOOL, kwargs=_other_school),
    Row("consent:import-template", IMPORTERS, kwargs=_school),
    Row("consent:import-template", OTHER_SCHOOL, kwargs=_other_school),
    Row("consent:import", IMPORTERS, kwargs=_run),
    Row("consent:import", OTHER_SCHOOL, kwargs=_other_run),
    Row("consent:import-progress", IMPORTERS, kwargs=_run),
    Row("consent:import-progress", OTHER_SCHOOL, kwargs=_other_run),
    Row("consent:import-confirm", IMPORTERS_POST, kwargs=_run, method="post"),
    Row("consent:import-confirm", OTHER_SCHOOL, kwargs=_other_run, method="post"),
    Row("consent:import-discard", IMPORTERS_POST, kwargs=_run, method="post"),
    Row("consent:import-discard", OTHER_SCHOOL, kwargs=_other_run, method="post"),
]
