"""The meeting protocol: the seed's rules by default, versioned, tightened by a school and never loosened."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from schools.models import AuditEntry
from sessions.models import Protocol
from sessions.protocol import (
    effective_protocol,
    host_checklist,
    organisation_protocol,
    parent_reminders,
    protocol_check,
    protocol_for,
    protocol_save,
)

pytestmark = pytest.mark.django_db


def _values(protocol=None, **overrides) -> dict:
    protocol = protocol or Protocol()
    values = {name: getattr(protocol, name) for name, _ in Protocol.RULES}
    values["notes"] = ""
    values.update(overrides)
    return values


def test_before_anyone_saves_the_seeds_protocol_applies_without_writing_a_row(personas):
    protocol = effective_protocol(personas.school)
    assert protocol.pk is None and protocol.version == 0
    assert protocol.waiting_room and protocol.password_required and protocol.muted_on_entry
    assert protocol.chat_closed and protocol.no_pupil_screen_sharing and protocol.adult_present
    assert protocol.first_name_checked and protocol.host_ends_meeting and protocol.unmute_when_asked
    assert protocol.lock_after_minutes == 5 and protocol.max_duration_minutes == 30
    assert Protocol.objects.count() == 0


def test_each_save_by_the_organisation_admin_is_a_new_audited_version(personas):
    first = protocol_save(actor=personas.org_admin, organisation=personas.organisation,
                          values=_values(max_duration_minutes=45))
    second = protocol_save(actor=personas.org_admin, organisation=personas.organisation,
                           values=_values(max_duration_minutes=40))
    assert (first.version, second.version) == (1, 2)
    assert organisation_protocol(personas.organisation) == second
    assert Protocol.objects.get(pk=first.pk).max_duration_minutes == 45  # the first version is kept as it was
    entries = AuditEntry.objects.filter(action="session.protocol_saved")
    assert entries.count() == 2 and entries.order_by("seq").last().data["rules"]["max_duration_minutes"] == 40


def test_a_saved_version_can_never_be_edited(personas):
    saved = protocol_save(actor=personas.org_admin, organisation=personas.organisation, values=_values())
    saved.chat_closed = False
    with pytest.raises(TypeError):
        saved.save()


def test_only_the_organisation_admin_changes_the_organisations_protocol(personas):
    for actor in (personas.headteacher, personas.dpo, personas.teacher):
        with pytest.raises(PermissionDenied):
            protocol_save(actor=actor, organisation=personas.organisation, values=_values())


def test_only_the_headteacher_changes_the_schools_protocol(personas):
    for actor in (personas.teacher, personas.office, personas.org_admin, personas.other_headteacher):
        with pytest.raises(PermissionDenied):
            protocol_save(actor=actor, organisation=personas.organisation, school=personas.school,
                          values=_values(max_duration_minutes=20))
    saved = protocol_save(actor=personas.headteacher, organisation=personas.organisation, school=personas.school,
                          values=_values(max_duration_minutes=20))
    assert saved.school == personas.school and saved.version == 1
    assert protocol_for(personas.school) == saved


def test_a_school_cannot_switch_off_a_rule_the_organisation_requires(personas):
    with pytest.raises(ValidationError) as error:
        protocol_save(actor=personas.headteacher, organisation=personas.organisation, school=personas.school,
                      values=_values(chat_closed=False))
    assert "chat_closed" in error.value.message_dict
    assert not Protocol.objects.exists()


def test_a_school_cannot_allow_more_minutes_than_the_organisation(personas):
    with pytest.raises(ValidationError) as error:
        protocol_save(actor=personas.headteacher, organisation=personas.organisation, school=personas.school,
                      values=_values(max_duration_minutes=31, lock_after_minutes=6))
    assert set(error.value.message_dict) == {"max_duration_minutes", "lock_after_minutes"}


def test_protocol_check_accepts_stricter_or_equal_and_names_each_loosened_rule(personas):
    base = organisation_protocol(personas.organisation)
    assert protocol_check(organisation_protocol=base, values=_values(base, max_duration_minutes=20)) == {}
    assert protocol_check(organisation_protocol=base, values=_values(base)) == {}
    errors = protocol_check(organisation_protocol=base, values=_values(base, waiting_room=False, adult_present=False))
    assert set(errors) == {"waiting_room", "adult_present"}


def test_a_school_may_switch_on_what_the_organisation_left_off(personas):
    protocol_save(actor=personas.org_admin, organisation=personas.organisation, values=_values(chat_closed=False))
    protocol_save(actor=personas.headteacher, organisation=personas.organisation, school=personas.school,
                  values=_values(chat_closed=True))
    assert effective_protocol(personas.school).chat_closed


def test_when_the_organisation_tightens_past_a_school_version_the_stricter_rule_applies(personas):
    protocol_save(actor=personas.headteacher, organisation=personas.organisation, school=personas.school,
                  values=_values(max_duration_minutes=25, lock_after_minutes=5))
    protocol_save(actor=personas.org_admin, organisation=personas.organisation,
                  values=_values(max_duration_minutes=20, lock_after_minutes=3))
    effective = effective_protocol(personas.school)
    assert effective.max_duration_minutes == 20 and effective.lock_after_minutes == 3
    assert protocol_for(personas.school).max_duration_minutes == 25  # the school's own version is untouched


def test_minutes_out_of_bounds_are_refused(personas):
    with pytest.raises(ValidationError) as error:
        protocol_save(actor=personas.org_admin, organisation=personas.organisation,
                      values=_values(max_duration_minutes=2, lock_after_minutes=0))
    assert set(error.value.message_dict) == {"max_duration_minutes", "lock_after_minutes"}


def test_parent_reminders_follow_the_rules_that_apply(personas):
    protocol = effective_protocol(personas.school)
    reminders = " ".join(parent_reminders(protocol))
    assert "waiting room" in reminders and "adult" in reminders and "first name" in reminders
    assert "locked 5 minutes" in reminders
    protocol.adult_present = False
    assert "adult" not in " ".join(parent_reminders(protocol))


def test_the_host_checklist_follows_the_rules_that_apply(personas):
    checklist = " ".join(host_checklist(effective_protocol(personas.school)))
    assert "waiting room" in checklist and "Close the chat" in checklist and "at most 30 minutes" in checklist
