"""Consent evidence: every decision appends one complete event and updates the status row (promise 6)."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from consent.models import ConsentEvent, ConsentState, ConsentStatus, validate_evidence_attachment
from consent.services import (
    consent_give,
    consent_record_by_staff,
    consent_refuse,
    consent_withdraw,
    fold_events,
    user_agent_family,
)
from schools.models import AuditEntry

from .consent_setup import counts, guardian_of, publish, pupil_at, purpose_for

IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def family(personas):
    purpose = purpose_for(personas.school)
    notice = publish(purpose, actor=personas.headteacher)
    pupil = pupil_at(personas.school)
    guardian = guardian_of(pupil)
    return purpose, notice, pupil, guardian


def _today(school) -> dt.date:
    return timezone.now().astimezone(school.tz).date()


def test_giving_consent_appends_one_event_naming_who_when_how_and_the_notice(family):
    purpose, notice, pupil, guardian = family

    event = consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True, user_agent=IPHONE_SAFARI)

    assert ConsentEvent.objects.count() == 1
    assert (event.guardian, event.pupil, event.purpose, event.kind) == (guardian, pupil, purpose, "given")
    assert (event.notice, event.notice_version, event.notice_sha256) == (notice, 1, notice.sha256)
    assert event.channel == ConsentEvent.Channel.PARENT_LINK
    assert event.recorded_by is None
    assert event.attestation is True
    assert event.created_at is not None
    status = ConsentStatus.objects.get(guardian=guardian, pupil=pupil, purpose=purpose)
    assert (status.state, status.last_event, status.renewal_needed) == (ConsentState.GIVEN, event, False)
    entry = AuditEntry.objects.get(action="consent.given")
    assert (entry.actor_kind, entry.actor_id) == ("guardian", guardian.pk)
    assert entry.data["notice_sha256"] == notice.sha256


@pytest.mark.parametrize(
    ("service", "state"),
    [(consent_refuse, ConsentState.REFUSED), (consent_withdraw, ConsentState.WITHDRAWN)],
)
def test_refusing_and_withdrawing_each_append_one_event_and_update_the_status(family, service, state):
    purpose, notice, pupil, guardian = family
    consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)

    event = service(guardian=guardian, pupil=pupil, notice=notice)

    assert ConsentEvent.objects.count() == 2
    assert event.kind == state
    status = ConsentStatus.objects.get(guardian=guardian, pupil=pupil, purpose=purpose)
    assert (status.state, status.last_event) == (state, event)
    assert AuditEntry.objects.filter(action=f"consent.{state}").count() == 1


def test_a_decision_recorded_by_staff_names_the_staff_member_the_channel_and_the_date_received(
    family, personas, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    _purpose, notice, pupil, guardian = family
    scan = SimpleUploadedFile("form.pdf", b"%PDF-1.7 signed form", content_type="application/pdf")

    event = consent_record_by_staff(
        staff=personas.office, guardian=guardian, pupil=pupil, notice=notice, kind="given",
        channel=ConsentEvent.Channel.PAPER_FORM, received_on=_today(pupil.school),
        note="Returned in the book bag", attachment=scan, attestation=True,
    )

    event.refresh_from_db()
    assert (event.recorded_by, event.channel, event.received_on) == (
        personas.office, "paper_form", _today(pupil.school)
    )
    assert event.note == "Returned in the book bag"
    assert event.attachment.read().startswith(b"%PDF-")
    assert ConsentStatus.objects.get(guardian=guardian, pupil=pupil).state == ConsentState.GIVEN
    entry = AuditEntry.objects.get(action="consent.recorded_by_staff")
    assert (entry.actor_kind, entry.actor_id, entry.data["kind"]) == ("staff", personas.office.pk, "given")


def test_consent_events_cannot_be_edited_or_deleted(family):
    _purpose, notice, pupil, guardian = family
    event = consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)

    event.kind = "refused"
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        ConsentEvent.objects.filter(pk=event.pk).update(kind="refused")
    with pytest.raises(TypeError):
        ConsentEvent.objects.filter(pk=event.pk).delete()
    assert ConsentEvent.objects.get(pk=event.pk).kind == "given"


def test_request_metadata_keeps_only_a_browser_family(family):
    _purpose, notice, pupil, guardian = family
    event = consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True, user_agent=IPHONE_SAFARI)
    assert event.user_agent_family == "Safari (mobile)"
    assert user_agent_family("") == ""
    assert user_agent_family("curl/8.0") == "Other"
    field_names = {f.name for f in ConsentEvent._meta.get_fields()}
    assert not {"ip", "ip_address", "user_agent", "remote_addr"} & field_names


def test_a_guardian_without_parental_responsibility_cannot_give_consent(family):
    _purpose, notice, pupil, _guardian = family
    childminder = guardian_of(pupil, parental_responsibility=False)
    before = counts()

    with pytest.raises(ValidationError, match="parental responsibility"):
        consent_give(guardian=childminder, pupil=pupil, notice=notice, attestation=True)

    assert counts() == before


def test_giving_consent_needs_the_parental_responsibility_attestation(family):
    _purpose, notice, pupil, guardian = family
    before = counts()
    with pytest.raises(ValidationError):
        consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=False)
    assert counts() == before


def test_a_guardian_of_another_pupil_cannot_act_for_this_pupil(family, personas):
    _purpose, notice, pupil, _guardian = family
    someone_else = guardian_of(pupil_at(personas.school))
    before = counts()

    for service in (consent_give, consent_refuse, consent_withdraw):
        with pytest.raises(ValidationError):
            service(guardian=someone_else, pupil=pupil, notice=notice, attestation=True)

    assert counts() == before


def test_a_guardian_or_a_notice_of_another_school_cannot_act(family, personas):
    _purpose, notice, pupil, guardian = family
    other_pupil = pupil_at(personas.other_school)
    other_guardian = guardian_of(other_pupil)
    other_notice = publish(purpose_for(personas.other_school))
    before = counts()

    with pytest.raises(ValidationError):
        consent_give(guardian=other_guardian, pupil=pupil, notice=notice, attestation=True)
    with pytest.raises(ValidationError):
        consent_give(guardian=guardian, pupil=pupil, notice=other_notice, attestation=True)

    assert counts() == before


def test_giving_on_an_older_notice_is_refused_but_withdrawing_on_it_still_works(family):
    _purpose, old_notice, pupil, guardian = family
    consent_give(guardian=guardian, pupil=pupil, notice=old_notice, attestation=True)
    publish(old_notice.purpose)
    before = counts()

    with pytest.raises(ValidationError, match="newer version"):
        consent_give(guardian=guardian, pupil=pupil, notice=old_notice, attestation=True)
    assert counts() == before

    event = consent_withdraw(guardian=guardian, pupil=pupil, notice=old_notice)
    assert event.kind == "withdrawn"


def test_a_received_date_in_the_future_is_refused_and_changes_nothing(family, personas):
    _purpose, notice, pupil, guardian = family
    before = counts()

    with pytest.raises(ValidationError, match="future"):
        consent_record_by_staff(
            staff=personas.office, guardian=guardian, pupil=pupil, notice=notice, kind="given",
            channel="email_reply", received_on=_today(pupil.school) + dt.timedelta(days=1),
        )

    assert counts() == before


def test_a_received_date_before_the_notice_was_published_is_refused(personas):
    with time_machine.travel(dt.datetime(2026, 9, 1, 9, tzinfo=dt.UTC), tick=False):
        purpose = purpose_for(personas.school)
        notice = publish(purpose)
        pupil = pupil_at(personas.school)
        guardian = guardian_of(pupil)
    with time_machine.travel(dt.datetime(2026, 9, 10, 9, tzinfo=dt.UTC), tick=False):
        before = counts()
        with pytest.raises(ValidationError, match="before this version"):
            consent_record_by_staff(
                staff=personas.office, guardian=guardian, pupil=pupil, notice=notice, kind="refused",
                channel="phone", received_on=dt.date(2026, 8, 31),
            )
        assert counts() == before
        consent_record_by_staff(
            staff=personas.office, guardian=guardian, pupil=pupil, notice=notice, kind="refused",
            channel="phone", received_on=dt.date(2026, 9, 1),
        )


def test_only_the_office_or_headteacher_of_the_pupils_school_can_record_a_decision(family, personas):
    _purpose, notice, pupil, guardian = family
    before = counts()
    for staff in (personas.teacher, personas.other_headteacher):
        with pytest.raises(PermissionDenied):
            consent_record_by_staff(
                staff=staff, guardian=guardian, pupil=pupil, notice=notice, kind="given",
                channel="email_reply", received_on=_today(pupil.school),
            )
    assert counts() == before
    consent_record_by_staff(
        staff=personas.headteacher, guardian=guardian, pupil=pupil, notice=notice, kind="given",
        channel="email_reply", received_on=_today(pupil.school),
    )


def test_staff_record_only_decisions_through_staff_channels(family, personas):
    _purpose, notice, pupil, guardian = family
    for kind, channel in (("lapsed", "paper_form"), ("given", "parent_link"), ("given", "system")):
        with pytest.raises(ValidationError):
            consent_record_by_staff(
                staff=personas.office, guardian=guardian, pupil=pupil, notice=notice, kind=kind,
                channel=channel, received_on=_today(pupil.school),
            )


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("form.exe", b"MZ\x90\x00"),
        ("form.pdf", b"<html>not a pdf</html>"),
        ("scan.png", b"%PDF-1.7"),
        ("reply.eml", b"PK\x03\x04zip in disguise"),
        ("noextension", b"%PDF-1.7"),
    ],
)
def test_an_attachment_of_the_wrong_type_is_refused(name, content):
    with pytest.raises(ValidationError):
        validate_evidence_attachment(SimpleUploadedFile(name, content))


def test_an_attachment_over_the_size_limit_is_refused(settings):
    settings.CONSENT_ATTACHMENT_MAX_BYTES = 1024
    with pytest.raises(ValidationError, match="larger"):
        validate_evidence_attachment(SimpleUploadedFile("form.pdf", b"%PDF-" + b"x" * 1024))


@pytest.mark.parametrize(
    ("name", "content"),
    [("form.pdf", b"%PDF-1.7"), ("scan.JPG", b"\xff\xd8\xff\xe0"), ("scan.png", b"\x89PNG\r\n\x1a\n"),
     ("reply.eml", b"From: parent@example.net\r\nSubject: Yes\r\n")],
)
def test_scans_and_saved_emails_are_accepted(name, content):
    validate_evidence_attachment(SimpleUploadedFile(name, content))


@pytest.mark.parametrize(
    ("kinds", "state"),
    [
        ([], "none"),
        (["given"], "given"),
        (["given", "withdrawn"], "withdrawn"),
        (["refused", "given"], "given"),
        (["given", "lapsed"], "lapsed"),
        (["given", "superseded"], "none"),
    ],
)
def test_folding_events_gives_the_state_of_the_last_decision(kinds, state):
    assert fold_events(kinds) == state
