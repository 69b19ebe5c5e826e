import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from schools.audit import Actor, audit_log, audit_verify
from schools.models import AuditEntry

pytestmark = pytest.mark.django_db


def _three_entries(personas):
    audit_log(actor=personas.headteacher, action="admin.changed", obj=personas.school)
    audit_log(actor=Actor(kind="guardian", label="A parent"), action="demo.seeded", data={"n": 1})
    audit_log(actor=None, action="email.sent", school=personas.school)
    return list(AuditEntry.objects.order_by("seq"))


def test_entries_chain_each_to_the_previous_one(personas):
    first, second, third = _three_entries(personas)
    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    assert second.prev_hash == first.hash and third.prev_hash == second.hash
    assert first.school_id == personas.school.pk and first.organisation_id == personas.organisation.pk
    assert audit_verify() == (3, None)


def test_verifier_names_an_edited_row(personas):
    _, second, _ = _three_entries(personas)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE schools_auditentry SET actor_label = %s WHERE id = %s", ["Someone else", second.pk])
    checked, broken = audit_verify()
    assert checked == 1
    assert broken.seq == 2 and "edited" in broken.reason
    with pytest.raises(CommandError, match="entry #2"):
        call_command("audit_verify")


def test_verifier_names_a_deleted_row(personas):
    _, second, _ = _three_entries(personas)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM schools_auditentry WHERE id = %s", [second.pk])
    checked, broken = audit_verify()
    assert checked == 1
    assert broken.seq == 2 and "deleted" in broken.reason


def test_verifier_notices_a_rehashed_edit_through_the_next_entry(personas):
    """Someone who edits a row and recomputes its hash still breaks the link from the next entry."""
    _, second, _ = _three_entries(personas)
    second.actor_label = "Someone else"
    new_hash = second.compute_hash()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE schools_auditentry SET actor_label = %s, hash = %s WHERE id = %s",
                       ["Someone else", new_hash, second.pk])
    _, broken = audit_verify()
    assert broken.seq == 3 and "does not follow" in broken.reason


def test_the_app_refuses_to_update_or_delete_audit_rows(personas):
    entry, *_ = _three_entries(personas)
    entry.action = "something.else"
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        entry.delete()
    with pytest.raises(TypeError):
        AuditEntry.objects.filter(pk=entry.pk).update(action="x")
    with pytest.raises(TypeError):
        AuditEntry.objects.all().delete()
    assert audit_verify() == (3, None)


def test_verify_command_reports_an_intact_chain(personas, capsys):
    _three_entries(personas)
    call_command("audit_verify")
    assert "3 entries verified" in capsys.readouterr().out
