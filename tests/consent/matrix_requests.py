"""Consent requests and reminders in the role matrix (gathered by tests/test_role_matrix.py).

The requests page shows parents' addresses with their delivery failures, like the outbox: the office, the
headteacher and the organisation admin read it and send; teachers, the DPO and the SIRO get 403; another
school's page does not exist (404). The confirmation (GET) renders; the send (POST) redirects back.
"""

from tests.matrix import REGISTRY_EDITORS, Row, everyone

from .consent_setup import guardian_of, publish, pupil_at, purpose_for


def _school_with_notice(school) -> dict:
    """A published notice and one guardian to ask, so that the confirmation and the send do real work."""
    publish(purpose_for(school))
    guardian_of(pupil_at(school))
    return {"school_pk": school.pk}


OTHER_SCHOOL = everyone(404, other_teacher=403)
SENDERS_REDIRECTED = everyone(403, headteacher=302, office=302, org_admin=302, other_teacher=404)

ROWS: list[Row] = [
    Row("consent:requests", REGISTRY_EDITORS, kwargs=lambda p: _school_with_notice(p.school)),
    Row("consent:requests", OTHER_SCHOOL, kwargs=lambda p: _school_with_notice(p.other_school)),
    Row("consent:requests-send", REGISTRY_EDITORS, kwargs=lambda p: _school_with_notice(p.school)),
    Row("consent:requests-send", OTHER_SCHOOL, kwargs=lambda p: _school_with_notice(p.other_school)),
    Row("consent:requests-send", SENDERS_REDIRECTED, kwargs=lambda p: _school_with_notice(p.school), method="post"),
    Row("consent:requests-send", OTHER_SCHOOL, kwargs=lambda p: _school_with_notice(p.other_school), method="post"),
]
