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


def five_pupil_registry(school, notice) -> dict:
    """Five pupils in two groups, one per status, and one leaver; then a material change that P1 renews
    and P5 does not. Shared by the registry page and export tests. Returns pupils, guardians, the groups
    and the newer notice."""
    import datetime as dt

    from django.utils import timezone

    from consent.services import consent_give, consent_refuse, consent_withdraw
    from tests.factories import GroupFactory

    today = timezone.now().astimezone(school.tz).date()
    owls, foxes = GroupFactory(school=school, name="Owls"), GroupFactory(school=school, name="Foxes")
    pupils = {}
    for mis_id, name, group in [
        ("P1", "Ada Given", owls), ("P2", "Ben Refused", owls), ("P3", "Cy Withdrawn", foxes),
        ("P4", "Di Silent", foxes), ("P5", "Ed Renewal", owls),
    ]:
        first, last = name.split()
        pupils[mis_id] = pupil_at(school, mis_id=mis_id, first_name=first, last_name=last)
        group.pupils.add(pupils[mis_id])
    guardians = {mis_id: guardian_of(pupil) for mis_id, pupil in pupils.items()}
    consent_give(guardian=guardians["P1"], pupil=pupils["P1"], notice=notice, attestation=True)
    consent_refuse(guardian=guardians["P2"], pupil=pupils["P2"], notice=notice)
    consent_give(guardian=guardians["P3"], pupil=pupils["P3"], notice=notice, attestation=True)
    consent_withdraw(guardian=guardians["P3"], pupil=pupils["P3"], notice=notice)
    consent_give(guardian=guardians["P5"], pupil=pupils["P5"], notice=notice, attestation=True)
    leaver = pupil_at(school, mis_id="P9", first_name="Flo", last_name="Left", left_on=today)
    owls.pupils.add(leaver)
    # A material change asks everyone who consented to renew; P1 renews, P5 does not.
    newer = publish(notice.purpose, material_change=True, renewal_deadline=today + dt.timedelta(days=30))
    consent_give(guardian=guardians["P1"], pupil=pupils["P1"], notice=newer, attestation=True)
    return {"pupils": pupils, "guardians": guardians, "owls": owls, "foxes": foxes, "notice": newer}
