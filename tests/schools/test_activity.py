"""The activity feed names pupils and parents from the live record, only inside the reader's scope."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from consent.models import Guardian
from consent.services import consent_give
from schools.activity import activity_rows, audit_entries_for
from schools.audit import audit_log
from schools.models import AuditEntry, Membership
from schools.scope import build_scope
from tests.conftest import sign_in
from tests.consent.consent_setup import guardian_of, publish, pupil_at, purpose_for
from tests.factories import GuardianFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def family(personas):
    """Aoife Corrigan, whose mother Sinéad consented through her link; the office then changed Sinéad's
    contact details."""
    notice = publish(purpose_for(personas.school))
    pupil = pupil_at(personas.school, first_name="Aoife", last_name="Corrigan")
    mother = guardian_of(pupil, guardian=GuardianFactory(school=personas.school, first_name="Sinéad",
                                                         last_name="Corrigan"))
    consent_give(guardian=mother, pupil=pupil, notice=notice, attestation=True)
    audit_log(actor=personas.office, action="registry.guardian_updated", obj=mother)
    audit_log(actor=personas.office, action="registry.exported", obj=pupil)
    return pupil, mother


def _rows_for(user):
    scope = build_scope(user)
    return activity_rows(audit_entries_for(scope).order_by("-seq"), scope)


def test_the_headteacher_reads_pupils_and_parents_by_name(client, personas, family):
    pupil, _mother = family
    sign_in(client, personas.headteacher)
    body = client.get(reverse("schools:audit")).content.decode()
    assert "Sinéad Corrigan (parent or carer)" in body
    assert "Consent given: Aoife Corrigan by Sinéad Corrigan" in body
    assert f'href="{reverse("consent:pupil", args=[pupil.pk])}">Aoife Corrigan</a>' in body
    rows = {row.entry.action: row for row in _rows_for(personas.headteacher)}
    assert rows["consent.given"].actor == "Sinéad Corrigan (parent or carer)"
    assert rows["consent.given"].url == reverse("consent:event", args=[rows["consent.given"].entry.object_id])
    assert rows["registry.guardian_updated"].sentence == (
        f"{personas.office.get_full_name()} changed a guardian's contact details: Sinéad Corrigan (parent or carer)"
    )
    assert rows["registry.guardian_updated"].place == personas.school.name


def test_the_audit_chain_itself_keeps_ids_only(family):
    pupil, _mother = family
    for entry in AuditEntry.objects.all():
        assert "Corrigan" not in entry.object_repr + entry.actor_label + str(entry.data)
    assert AuditEntry.objects.get(action="registry.exported").object_repr == f"Pupil #{pupil.pk}"


def test_another_schools_headteacher_sees_no_names(client, personas, family):
    sign_in(client, personas.other_headteacher)
    body = client.get(reverse("schools:audit")).content.decode()
    assert "Corrigan" not in body
    # Even handed the entries directly, their scope names nobody and links nowhere.
    scope = build_scope(personas.other_headteacher)
    rows = activity_rows(AuditEntry.objects.order_by("-seq"), scope)
    assert rows and not any("Corrigan" in row.sentence for row in rows)
    assert {row.url for row in rows} == {""}
    assert {row.place for row in rows} == {""}


def test_staff_who_moved_school_see_their_past_entries_by_number_only(personas, family):
    pupil, mother = family
    office = personas.office
    Membership.objects.filter(user=office).update(school=personas.other_school,
                                                  organisation=personas.other_school.organisation)
    rows = {row.entry.action: row for row in _rows_for(office)}
    assert set(rows) == {"registry.guardian_updated", "registry.exported"}  # their own actions only
    assert rows["registry.guardian_updated"].subject == f"Parent or carer #{mother.pk}"
    assert rows["registry.exported"].subject == f"Pupil #{pupil.pk}"
    assert not any(row.url for row in rows.values())


def test_an_erased_pupil_or_parent_is_shown_by_number(client, personas, family):
    pupil, mother = family
    type(pupil).objects.filter(pk=pupil.pk).update(archived_at=timezone.now())
    rows = {row.entry.action: row for row in _rows_for(personas.headteacher)}
    assert rows["registry.exported"].subject == f"Pupil #{pupil.pk}" and rows["registry.exported"].url == ""
    # The consent names the pupil too: it is shown by number as recorded.
    assert "Aoife" not in rows["consent.given"].subject
    assert rows["registry.guardian_updated"].subject == "Sinéad Corrigan (parent or carer)"

    type(mother).objects.filter(pk=mother.pk).update(archived_at=timezone.now())
    sign_in(client, personas.headteacher)
    body = client.get(reverse("schools:audit")).content.decode()
    assert "Corrigan" not in body
    assert f"Parent or carer #{mother.pk}" in body


def test_a_deleted_object_keeps_its_recorded_text(personas, family):
    audit_log(actor=personas.office, action="admin.deleted", obj=GuardianFactory(school=personas.school))
    entry = AuditEntry.objects.get(action="admin.deleted")
    Guardian.objects.filter(pk=int(entry.object_id)).delete()
    row = next(r for r in _rows_for(personas.headteacher) if r.entry.action == "admin.deleted")
    assert row.subject == entry.object_repr and row.url == ""


def test_an_email_is_named_by_its_kind_not_its_template(personas):
    from outbox.services import email_queue

    message = email_queue(template="test-message", to="head@example.org", school=personas.school, context={})
    audit_log(actor=None, action="email.failed", obj=message, school=personas.school)
    row = next(r for r in _rows_for(personas.headteacher) if r.entry.action == "email.failed")
    assert row.subject == "Test email “Gatehouse test message”"
    # Outside the scope, the recorded text ("Email #12 (test-message)") is said in words too.
    other = activity_rows(AuditEntry.objects.filter(action="email.failed"), build_scope(personas.other_headteacher))
    assert other[0].subject == f"Test email (email #{message.pk})"


def _round(school, notice, office):
    """Five entries of five kinds: a consent by link, and office actions on a parent, a pupil, the
    school and a sign-in."""
    pupil = pupil_at(school)
    guardian = guardian_of(pupil)
    consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
    audit_log(actor=office, action="registry.guardian_updated", obj=guardian)
    audit_log(actor=office, action="registry.exported", obj=pupil)
    audit_log(actor=office, action="admin.changed", obj=school)
    audit_log(actor=office, action="auth.login", obj=office, school=school)


def test_the_feed_costs_the_same_queries_for_5_or_40_entries(personas):
    notice = publish(purpose_for(personas.school))
    for _ in range(8):
        _round(personas.school, notice, personas.office)
    scope = build_scope(personas.headteacher)
    newest = list(audit_entries_for(scope).order_by("-seq")[:40])
    assert len(newest) == 40
    assert {e.object_type for e in newest[:5]} == {e.object_type for e in newest}

    with CaptureQueriesContext(connection) as five:
        rows = activity_rows(newest[:5], scope)
    with CaptureQueriesContext(connection) as forty:
        rows = activity_rows(newest, scope)
    assert len(forty.captured_queries) == len(five.captured_queries) <= 8
    assert len(rows) == 40 and all(row.actor for row in rows)
    assert sum(row.subject.endswith("(parent or carer)") for row in rows) == 8
