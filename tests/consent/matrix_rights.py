"""The parents' rights requests queue in the role matrix (gathered by tests/test_role_matrix.py).

The headteacher, the office, the DPO and the organisation admin see and act on their schools' requests; a
teacher and the SIRO may not (403); another school's requests do not exist for anyone outside it (404).
"""

import datetime as dt

from consent.models import RightsRequest
from tests.matrix import Row, everyone

from .consent_setup import guardian_of, pupil_at

RIGHTS_STAFF = everyone(403, headteacher=200, office=200, dpo=200, org_admin=200)
# One request or guardian of our school: the other organisation's teacher does not even see it exists.
OURS = {**RIGHTS_STAFF, "other_teacher": 404}
# One of the other school's: only its own teacher is inside the scope, with too low a role.
THEIRS = everyone(404, other_teacher=403)


def _request_at(school, kind: str = RightsRequest.Kind.ACCESS) -> RightsRequest:
    guardian = guardian_of(pupil_at(school))
    return RightsRequest.objects.create(
        school=school, guardian=guardian, guardian_label=str(guardian), kind=kind, due_on=dt.date(2030, 1, 31),
    )


def _ours(personas) -> dict:
    return {"pk": _request_at(personas.school).pk}


def _theirs(personas) -> dict:
    return {"pk": _request_at(personas.other_school).pk}


ROWS: list[Row] = [
    Row("consent:rights", RIGHTS_STAFF),
    Row("consent:rights-new", RIGHTS_STAFF),
    Row("consent:rights-request", OURS, kwargs=_ours),
    Row("consent:rights-request", THEIRS, kwargs=_theirs),
    # Posting an empty form: allowed roles see the page again with the form's errors.
    Row("consent:rights-status", OURS, kwargs=_ours, method="post"),
    Row("consent:rights-status", THEIRS, kwargs=_theirs, method="post"),
    Row("consent:rights-respond", OURS, kwargs=_ours, method="post"),
    Row("consent:rights-respond", THEIRS, kwargs=_theirs, method="post"),
    # An access request's export (JSON when no format is posted).
    Row("consent:rights-export", OURS, kwargs=_ours, method="post"),
    Row("consent:rights-export", THEIRS, kwargs=_theirs, method="post"),
    Row("consent:rights-record", OURS, kwargs=lambda p: {"pk": guardian_of(pupil_at(p.school)).pk}),
    Row("consent:rights-record", THEIRS, kwargs=lambda p: {"pk": guardian_of(pupil_at(p.other_school)).pk}),
    Row("consent:rights-record", OURS, kwargs=lambda p: {"pk": guardian_of(pupil_at(p.school)).pk}, method="post"),
    Row("consent:rights-record", THEIRS, kwargs=lambda p: {"pk": guardian_of(pupil_at(p.other_school)).pk},
        method="post"),
]
