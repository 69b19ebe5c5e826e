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
from .pia import matrix_outputs as pia_matrix_outputs
from .pia import matrix_steps as pia_matrix_steps
from .pia import matrix_workflow as pia_matrix_workflow
from .riskassess import matrix_assessments, matrix_outputs, matrix_reviews
from .sessions import matrix_incidents, matrix_sessions


def _failed_email(school):
    from outbox.models import OutboxMessage
    from outbox.services import email_queue

    message = email_queue(template="test-message", to="someone@example.org", school=school, context={})
    OutboxMessage.objects.filter(pk=message.pk).update(status=OutboxMessage.Status.FAILED)
    return message


RETENTION_READERS = everyone(403, headteacher=200, dpo=200, siro=200, org_admin=200, other_teacher=404)

MATRIX = [
    Row("schools:dashboard", everyone()),
    Row("schools:audit", AUDIT_READERS),
    Row("schools:glossary", everyone()),
    Row("schools:help", everyone(302)),  # on to the glossary
    Row("schools:organisation-settings", everyone(403, org_admin=200, other_teacher=404),
        kwargs=lambda p: {"organisation_pk": p.organisation.pk}),
    Row("schools:organisation-settings", everyone(403, org_admin=200, other_teacher=404), method="post",
        kwargs=lambda p: {"organisation_pk": p.organisation.pk}),
    Row("schools:organisation-settings", everyone(404, other_teacher=403),
        kwargs=lambda p: {"organisation_pk": p.other_school.organisation.pk}),
    Row("accounts:security", everyone()),
    # Each person's own email preferences: saved, then back to the security page.
    Row("accounts:email-preferences", everyone(302), method="post"),
    Row("accounts:password-change", everyone()),
    Row("accounts:confirm", everyone()),
    Row("schools:school", everyone(other_teacher=404), kwargs=lambda p: {"pk": p.school.pk}),
    # Another organisation's school: only its own teacher may see it; for everyone else it does not exist.
    Row("schools:school", everyone(404, other_teacher=200), kwargs=lambda p: {"pk": p.other_school.pk}),
    Row("outbox:list", everyone(403, headteacher=200, office=200, org_admin=200)),
    # Retrying a failed email sends the sender back to the outbox; those who may not see it find nothing.
    Row("outbox:retry", everyone(403, headteacher=302, office=302, org_admin=302), method="post",
        kwargs=lambda p: {"pk": _failed_email(p.school).pk}),
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
    + matrix_assessments.ROWS + matrix_outputs.ROWS + matrix_reviews.ROWS
    + pia_matrix_steps.ROWS + pia_matrix_workflow.ROWS + pia_matrix_outputs.ROWS
    + matrix_sessions.ROWS + matrix_incidents.ROWS
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


# Pages that are not staff pages, or are covered by their own tests, each with the reason.
NOT_IN_MATRIX = {
    "schools:home": "redirects to the dashboard or the sign-in page",
    "accounts:login": "the sign-in page itself",
    "accounts:verify": "the second step of signing in (tests/accounts)",
    "accounts:logout": "POST only, for everyone",
    "accounts:two-factor-setup": "every signed-in user's own authenticator (tests/accounts)",
    "accounts:backup-codes": "every signed-in user's own codes (tests/accounts)",
    "accounts:backup-codes-regenerate": "every signed-in user's own codes (tests/accounts)",
    "accounts:password-reset": "for people who cannot sign in",
    "accounts:password-reset-done": "for people who cannot sign in",
    "accounts:password-reset-confirm": "for people who cannot sign in (emailed link)",
    "accounts:password-reset-complete": "for people who cannot sign in",
    "outbox:demo-message": "demo mailbox, one message (tests/outbox)",
    "outbox:demo-message-html": "demo mailbox, one message (tests/outbox)",
}
STAFF_NAMESPACES = ("schools", "accounts", "outbox", "consent", "riskassess", "pia", "video_sessions")


def _url_names(resolver=None, namespace=""):
    from django.urls import get_resolver

    for pattern in (resolver or get_resolver()).url_patterns:
        if hasattr(pattern, "url_patterns"):
            yield from _url_names(pattern, f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace)
        elif pattern.name:
            yield f"{namespace}{pattern.name}"


def test_every_staff_url_is_in_the_matrix():
    staff = {name for name in _url_names() if name.split(":")[0] in STAFF_NAMESPACES}
    covered = {row.name for row in MATRIX}
    missing = staff - covered - set(NOT_IN_MATRIX)
    assert not missing, f"Add these staff URLs to the role matrix: {sorted(missing)}"
    assert not (set(NOT_IN_MATRIX) - staff), "NOT_IN_MATRIX names a URL that no longer exists"
