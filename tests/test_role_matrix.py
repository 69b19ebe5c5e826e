"""Every staff URL × every persona → the status it must answer.

Every staff view joins this table (see CONTRIBUTING.md, "Adding a staff view to the role matrix").
Expected codes: 200 allowed; 302 sent to sign in (anonymous); 403 inside the scope with too low a role;
404 outside the scope (another school's object: its existence must not leak).
"""

import pytest
from django.urls import reverse

from .conftest import sign_in
from .consent import matrix_exports, matrix_imports, matrix_notices, matrix_requests, matrix_rights
from .consent.consent_setup import decided_family, guardian_of, pupil_at
from .matrix import AUDIT_READERS, PERSONAS, REGISTRY_EDITORS, Row, everyone

RETENTION_READERS = everyone(403, headteacher=200, dpo=200, siro=200, org_admin=200, other_teacher=404)

MATRIX = [
    Row("schools:dashboard", everyone()),
    Row("schools:audit", AUDIT_READERS),
    Row("accounts:security", everyone()),
    Row("accounts:password-change", everyone()),
    Row("accounts:confirm", everyone()),
    Row("schools:school", everyone(other_teacher=404), kwargs=lambda p: {"pk": p.school.pk}),
    # Another organisation's school: only its own teacher may see it; for everyone else it does not exist.
    Row("schools:school", everyone(404, other_teacher=200), kwargs=lambda p: {"pk": p.other_school.pk}),
    Row("outbox:list", everyone(403, headteacher=200, office=200, org_admin=200)),
    # The test settings run in demo mode; outside it the demo mailbox answers 404 (tests/outbox).
    Row("outbox:demo-mailbox", everyone()),
    # The consent registry: everyone at the school reads; the office, the headteacher and the
    # organisation admin change; another school's pupils, guardians and evidence do not exist.
    Row("consent:pupils", everyone(other_teacher=404), kwargs=lambda p: {"school_pk": p.school.pk}),
    Row("consent:pupils", everyone(404, other_teacher=200), kwargs=lambda p: {"school_pk": p.other_school.pk}),
    Row("consent:pupil", everyone(other_teacher=404), kwargs=lambda p: {"pk": decided_family(p.school)[1].pk}),
    Row("consent:pupil", everyone(404, other_teacher=200),
        kwargs=lambda p: {"pk": pupil_at(p.other_school).pk}),
    Row("consent:record", REGISTRY_EDITORS, kwargs=lambda p: {"pk": decided_family(p.school)[1].pk}),
    Row("consent:record", everyone(404, other_teacher=403),
        kwargs=lambda p: {"pk": decided_family(p.other_school)[1].pk}),
    Row("consent:guardian", everyone(other_teacher=404),
        kwargs=lambda p: {"pk": decided_family(p.school)[2].pk}),
    Row("consent:guardian", everyone(404, other_teacher=200),
        kwargs=lambda p: {"pk": guardian_of(pupil_at(p.other_school)).pk}),
    Row("consent:guardian-edit", REGISTRY_EDITORS, kwargs=lambda p: {"pk": decided_family(p.school)[2].pk}),
    Row("consent:guardian-edit", everyone(404, other_teacher=403),
        kwargs=lambda p: {"pk": guardian_of(pupil_at(p.other_school)).pk}),
    Row("consent:event", everyone(other_teacher=404), kwargs=lambda p: {"pk": decided_family(p.school)[3].pk}),
    Row("consent:event", everyone(404, other_teacher=200),
        kwargs=lambda p: {"pk": decided_family(p.other_school)[3].pk}),
    # An event without an attachment has nothing to download; the download itself is tested with a
    # temporary media root in tests/consent/test_registry_pages.py.
    Row("consent:event-attachment", everyone(404), kwargs=lambda p: {"pk": decided_family(p.school)[3].pk}),
    # The retention schedule is the organisation's: its admin sets it, those answering for data
    # protection read it. With one organisation, the list goes straight to it.
    Row("consent:retention-list", everyone(403, headteacher=302, dpo=302, siro=302, org_admin=302)),
    Row("consent:retention", RETENTION_READERS, kwargs=lambda p: {"organisation_pk": p.organisation.pk}),
    Row("consent:retention", everyone(404, other_teacher=403),
        kwargs=lambda p: {"organisation_pk": p.other_school.organisation.pk}),
    Row("consent:retention", everyone(403, org_admin=200, other_teacher=404), method="post",
        kwargs=lambda p: {"organisation_pk": p.organisation.pk}),
]


MATRIX += (
    matrix_imports.ROWS + matrix_notices.ROWS + matrix_requests.ROWS + matrix_exports.ROWS + matrix_rights.ROWS
)


def _cases():
    for row in MATRIX:
        for persona in PERSONAS:
            yield pytest.param(row, persona, id=f"{row.name}-{persona}")


@pytest.mark.django_db
@pytest.mark.parametrize(("row", "persona"), list(_cases()))
def test_staff_url_answers_each_role_as_expected(client, personas, row, persona):
    if persona != "anonymous":
        sign_in(client, getattr(personas, persona))
    url = reverse(row.name, kwargs=row.kwargs(personas))
    response = getattr(client, row.method)(url)
    assert response.status_code == row.expect[persona], f"{row.method.upper()} {url} as {persona}"
    if response.status_code == 302 and persona == "anonymous":
        assert reverse("accounts:login") in response["Location"]
