"""Helpers shared by the consent evidence, notice and several-guardians tests."""

from datetime import date

from consent.models import ConsentEvent, ConsentStatus, Guardian, Notice, Pupil, Purpose
from consent.services import notice_publish
from schools.models import AuditEntry
from tests.factories import GuardianFactory, GuardianshipFactory, NoticeFactory, PupilFactory, PurposeFactory


def purpose_for(school) -> Purpose:
    return PurposeFactory(organisation=school.organisation)


def publish(purpose: Purpose, *, actor=None, material_change: bool = False,
            renewal_deadline: date | None = None, **texts) -> Notice:
    draft = NoticeFactory(purpose=purpose, **texts)
    return notice_publish(notice=draft, actor=actor, material_change=material_change,
                          renewal_deadline=renewal_deadline)


def pupil_at(school, **fields) -> Pupil:
    return PupilFactory(school=school, **fields)


def guardian_of(*pupils: Pupil, parental_responsibility: bool = True, guardian: Guardian | None = None) -> Guardian:
    guardian = guardian or GuardianFactory(school=pupils[0].school)
    for pupil in pupils:
        GuardianshipFactory(guardian=guardian, pupil=pupil, parental_responsibility=parental_responsibility)
    return guardian


def counts() -> tuple[int, int, int]:
    """Events, status rows and audit entries: what a refused change must leave untouched."""
    return ConsentEvent.objects.count(), ConsentStatus.objects.count(), AuditEntry.objects.count()


def decided_family(school, *, kind: str = "given"):
    """A pupil with one guardian who has decided through their link on a published notice: the objects a
    registry page needs. Returns (notice, pupil, guardian, event)."""
    from consent.services import consent_give, consent_refuse

    notice = publish(purpose_for(school))
    pupil = pupil_at(school)
    guardian = guardian_of(pupil)
    decide = consent_give if kind == "given" else consent_refuse
    event = decide(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
    return notice, pupil, guardian, event
