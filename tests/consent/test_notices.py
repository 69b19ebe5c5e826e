"""Notices: published versions never change, and a material change asks earlier consents to renew."""

import datetime as dt
import hashlib
import json

import pytest
import time_machine
from django.core.exceptions import ValidationError

from consent.models import ConsentEvent, ConsentState, ConsentStatus, Notice
from consent.services import consent_give, consent_lapse_due, consent_refuse, notice_publish, pupil_consent_state
from schools.models import AuditEntry
from tests.factories import NoticeFactory

from .consent_setup import guardian_of, publish, pupil_at, purpose_for

SEPT_1 = dt.datetime(2026, 9, 1, 9, tzinfo=dt.UTC)


def test_publishing_numbers_the_versions_and_records_a_hash_that_verifies(personas):
    purpose = purpose_for(personas.school)

    first = publish(purpose, actor=personas.headteacher)
    second = publish(purpose, actor=personas.headteacher, letter="A clearer letter.")

    assert (first.version, second.version) == (1, 2)
    assert purpose.current_notice() == second
    assert second.published_by == personas.headteacher and second.published_at is not None
    texts = {"letter": "A clearer letter.", "privacy_notice": second.privacy_notice, "protocol": second.protocol}
    canonical = json.dumps(texts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert second.sha256 == hashlib.sha256(canonical.encode()).hexdigest()
    assert second.hash_verifies()
    entry = AuditEntry.objects.filter(action="consent.notice_published").first()
    assert (entry.data["version"], entry.data["sha256"]) == (2, second.sha256)


def test_a_draft_is_editable_and_not_current(personas):
    purpose = purpose_for(personas.school)
    draft = NoticeFactory(purpose=purpose)
    draft.letter = "Edited"
    draft.save()
    assert purpose.current_notice() is None
    assert not draft.hash_verifies()


def test_a_published_notice_cannot_be_edited_or_deleted(personas):
    notice = publish(purpose_for(personas.school))

    notice.letter = "Quietly changed"
    with pytest.raises(TypeError):
        notice.save()
    with pytest.raises(TypeError):
        Notice.objects.filter(pk=notice.pk).update(letter="Quietly changed")
    with pytest.raises(TypeError):
        Notice.objects.filter(pk=notice.pk).delete()
    with pytest.raises(TypeError):
        notice.delete()
    stored = Notice.objects.get(pk=notice.pk)
    assert stored.letter != "Quietly changed"
    assert stored.hash_verifies()


def test_a_notice_is_published_only_once(personas):
    notice = publish(purpose_for(personas.school))
    with pytest.raises(ValidationError):
        notice_publish(notice=notice, actor=None, material_change=False)


def test_a_material_change_needs_a_renewal_deadline_that_is_not_past(personas):
    purpose = purpose_for(personas.school)
    with pytest.raises(ValidationError, match="deadline"):
        notice_publish(notice=NoticeFactory(purpose=purpose), actor=None, material_change=True)
    with pytest.raises(ValidationError, match="past"):
        notice_publish(notice=NoticeFactory(purpose=purpose), actor=None, material_change=True,
                       renewal_deadline=dt.date(2000, 1, 1))
    for far in (dt.date.today() + dt.timedelta(days=400), dt.date(9999, 12, 31)):
        with pytest.raises(ValidationError, match="within a year"):
            notice_publish(notice=NoticeFactory(purpose=purpose), actor=None, material_change=True,
                           renewal_deadline=far)
    assert purpose.current_notice() is None


@pytest.fixture
def consents(personas):
    """At 1 September: one pupil consented, one refused, under version 1."""
    with time_machine.travel(SEPT_1, tick=False):
        purpose = purpose_for(personas.school)
        notice = publish(purpose)
        consented, refused = pupil_at(personas.school), pupil_at(personas.school)
        parent_a, parent_b = guardian_of(consented), guardian_of(refused)
        consent_give(guardian=parent_a, pupil=consented, notice=notice, attestation=True)
        consent_refuse(guardian=parent_b, pupil=refused, notice=notice)
    return purpose, (consented, parent_a), (refused, parent_b)


def test_a_non_material_change_flags_nothing(consents):
    purpose, *_ = consents
    with time_machine.travel(SEPT_1 + dt.timedelta(days=1), tick=False):
        publish(purpose, letter="Typo fixed.")
    assert not ConsentStatus.objects.filter(renewal_needed=True).exists()


def test_a_material_change_flags_existing_consents_renewal_needed(consents):
    purpose, (consented, parent_a), (refused, parent_b) = consents
    with time_machine.travel(SEPT_1 + dt.timedelta(days=1), tick=False):
        publish(purpose, material_change=True, renewal_deadline=dt.date(2026, 9, 30), letter="Now with recording.")

    assert ConsentStatus.objects.get(guardian=parent_a, pupil=consented).renewal_needed is True
    assert ConsentStatus.objects.get(guardian=parent_b, pupil=refused).renewal_needed is False
    # Still valid until the deadline.
    state = pupil_consent_state(pupil=consented, purpose=purpose)
    assert (state.state, state.renewal_needed) == (ConsentState.GIVEN, True)
    entry = AuditEntry.objects.filter(action="consent.notice_published").first()
    assert entry.data["consents_needing_renewal"] == 1


def test_after_the_deadline_unrenewed_consents_lapse_with_an_event(consents):
    purpose, (consented, parent_a), _ = consents
    with time_machine.travel(SEPT_1 + dt.timedelta(days=1), tick=False):
        publish(purpose, material_change=True, renewal_deadline=dt.date(2026, 9, 30))

    with time_machine.travel(dt.datetime(2026, 9, 30, 22, tzinfo=dt.UTC), tick=False) as traveller:
        # 23:00 in London on the deadline day: still valid.
        assert consent_lapse_due(now=dt.datetime.now(tz=dt.UTC)) == 0
        traveller.move_to(dt.datetime(2026, 10, 1, 6, tzinfo=dt.UTC))
        assert consent_lapse_due(now=dt.datetime.now(tz=dt.UTC)) == 1
        assert consent_lapse_due(now=dt.datetime.now(tz=dt.UTC)) == 0

    status = ConsentStatus.objects.get(guardian=parent_a, pupil=consented)
    assert (status.state, status.renewal_needed) == (ConsentState.LAPSED, False)
    lapse = ConsentEvent.objects.get(kind="lapsed")
    assert (lapse.channel, lapse.notice_version, status.last_event) == ("system", 1, lapse)
    assert AuditEntry.objects.filter(action="consent.lapsed", actor_kind="system").count() == 1
    assert pupil_consent_state(pupil=consented, purpose=purpose).state == ConsentState.LAPSED


def test_a_consent_renewed_before_the_deadline_does_not_lapse(consents):
    purpose, (consented, parent_a), _ = consents
    with time_machine.travel(SEPT_1 + dt.timedelta(days=1), tick=False):
        new = publish(purpose, material_change=True, renewal_deadline=dt.date(2026, 9, 30))
        consent_give(guardian=parent_a, pupil=consented, notice=new, attestation=True)

    with time_machine.travel(dt.datetime(2026, 10, 2, tzinfo=dt.UTC), tick=False):
        assert consent_lapse_due(now=dt.datetime.now(tz=dt.UTC)) == 0

    status = ConsentStatus.objects.get(guardian=parent_a, pupil=consented)
    assert (status.state, status.renewal_needed) == (ConsentState.GIVEN, False)
