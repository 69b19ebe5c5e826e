"""The retention schedule: what happens to a leaver's data, and when (design.md, "Rights and retention").

Two stages, per organisation, with its `RetentionSchedule` (defaults: the August after leaving; evidence
kept 6 more years):

1. **Erase.** On the first day of the schedule's month after a pupil's leaving date, the pupil's personal
   data goes. A pupil with no consent evidence is deleted outright. A pupil with evidence is archived:
   the name stays because the evidence must say whose consent it was (GDPR art. 7(1)); the MIS id, year
   group and groups go. A guardian left with no current child is treated the same way: deleted if no
   evidence names them, otherwise archived with their email address and phone number erased, their
   personal links deleted, and the emails the school sent them deleted from the outbox.
2. **Delete the evidence.** `evidence_years` after the erase date, the archived pupil, their consent
   events and statuses (with any scanned attachment), and guardians who no longer have any child or
   evidence, with their rights requests, are deleted.

Besides, uploaded roster files are erased a day after upload and import runs deleted after 90 days;
revoked personal links are deleted after 30 days; and the bodies of emails sent more than 30 days ago
are erased (they carry personal links; the outbox keeps who, when and whether it was delivered), and
so are the address and subject of those sent to someone no longer in the registry.

Every run is idempotent and compares dates, so a missed, late or doubled run changes nothing it should
not: `retention_apply(now=…, dry_run=True)` (and `manage.py retention_apply --dry-run`) reports exactly
what the next run would do, without writing.

The audit trail keeps only counts and ids (objects are recorded by number, never by name), so erasing
the registry leaves no name behind in it.
"""

import logging
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from outbox.models import OutboxMessage
from schools.audit import audit_log
from schools.models import Organisation

from .counts import counts_recount_school
from .models import (
    ConsentEvent,
    ConsentRequest,
    ConsentStatus,
    Guardian,
    GuardianLink,
    Guardianship,
    ImportRun,
    Pupil,
    RetentionSchedule,
    RightsRequest,
)

logger = logging.getLogger(__name__)
User = get_user_model()

BATCH_SIZE = 200
UPLOAD_KEEP = timedelta(days=1)
IMPORT_RUN_KEEP = timedelta(days=90)
REVOKED_LINK_KEEP = timedelta(days=30)
CHILDLESS_GUARDIAN_GRACE = timedelta(days=30)
SENT_BODY_KEEP = timedelta(days=30)
ERASED = "(erased)"


def erase_on(left_on: date, month: int) -> date:
    """The first day of `month` strictly after the leaving date: left in July 2026, erased on
    1 August 2026; left on 1 August 2026, erased on 1 August 2027."""
    candidate = date(left_on.year, month, 1)
    return candidate if candidate > left_on else date(left_on.year + 1, month, 1)


def evidence_until(erased: date, years: int) -> date:
    """The day the evidence goes: the erase date `years` later (29 February becomes 28 February)."""
    try:
        return erased.replace(year=erased.year + years)
    except ValueError:
        return erased.replace(year=erased.year + years, day=28)


@dataclass
class RetentionReport:
    """What a run did, or (dry run) would do. Ids, never names: the report is logged and audited."""

    dry_run: bool = False
    pupils_deleted: list[int] = field(default_factory=list)
    pupils_archived: list[int] = field(default_factory=list)
    guardians_deleted: list[int] = field(default_factory=list)
    guardians_archived: list[int] = field(default_factory=list)
    evidence_pupils_deleted: list[int] = field(default_factory=list)
    events_deleted: int = 0
    links_deleted: int = 0
    emails_deleted: int = 0
    uploads_erased: int = 0
    email_bodies_erased: int = 0
    addresses_erased: int = 0
    import_runs_deleted: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "pupils_deleted": len(self.pupils_deleted),
            "pupils_archived": len(self.pupils_archived),
            "guardians_deleted": len(self.guardians_deleted),
            "guardians_archived": len(self.guardians_archived),
            "evidence_pupils_deleted": len(self.evidence_pupils_deleted),
            "events_deleted": self.events_deleted,
            "links_deleted": self.links_deleted,
            "emails_deleted": self.emails_deleted,
            "uploads_erased": self.uploads_erased,
            "email_bodies_erased": self.email_bodies_erased,
            "addresses_erased": self.addresses_erased,
            "import_runs_deleted": self.import_runs_deleted,
        }

    @property
    def changed(self) -> bool:
        return any(self.counts().values())


def schedule_for(organisation: Organisation) -> RetentionSchedule:
    """The organisation's schedule; the defaults when it has never been changed (not saved until then)."""
    try:
        return organisation.retention
    except RetentionSchedule.DoesNotExist:
        return RetentionSchedule(organisation=organisation)


@dataclass(frozen=True)
class RetentionOutlook:
    """What the schedule will do next in one organisation, for its page: leavers waiting to be erased and
    archived evidence waiting to be deleted, each by date, soonest first."""

    erase: list[tuple[date, int]]
    delete_evidence: list[tuple[date, int]]
    archived: int


def retention_outlook(*, organisation: Organisation, schedule: RetentionSchedule) -> RetentionOutlook:
    erase: dict[date, int] = {}
    leavers = Pupil.objects.filter(
        school__organisation=organisation, left_on__isnull=False, archived_at__isnull=True
    ).values_list("left_on", flat=True)
    for left_on in leavers.iterator():
        day = erase_on(left_on, schedule.leaver_month)
        erase[day] = erase.get(day, 0) + 1
    archived = Pupil.objects.filter(school__organisation=organisation, archived_at__isnull=False)
    delete = archived.values("evidence_delete_on").annotate(n=models.Count("pk")).order_by("evidence_delete_on")
    return RetentionOutlook(
        erase=sorted(erase.items()),
        delete_evidence=[(row["evidence_delete_on"], row["n"]) for row in delete],
        archived=archived.count(),
    )


def retention_schedule_update(*, organisation: Organisation, actor, leaver_month: int, evidence_years: int) -> None:
    with transaction.atomic():
        schedule, _ = RetentionSchedule.objects.select_for_update().get_or_create(organisation=organisation)
        before = {"leaver_month": schedule.leaver_month, "evidence_years": schedule.evidence_years}
        schedule.leaver_month = leaver_month
        schedule.evidence_years = evidence_years
        schedule.full_clean()
        schedule.save()
        audit_log(actor=actor, action="retention.schedule_updated", obj=schedule, organisation=organisation,
                  data={"before": before, "after": {"leaver_month": leaver_month, "evidence_years": evidence_years}})


def retention_apply(*, now: datetime, dry_run: bool = False) -> RetentionReport:
    """Apply every organisation's schedule as of `now`. With `dry_run`, only report what would happen."""
    report = RetentionReport(dry_run=dry_run)
    for organisation in Organisation.objects.select_related("retention").order_by("pk"):
        before = report.counts()
        _apply_organisation(organisation, now=now, report=report)
        done = {key: value - before[key] for key, value in report.counts().items()}
        if not dry_run and any(done.values()):
            audit_log(actor=None, action="retention.applied", obj=organisation, organisation=organisation,
                      data=done)
    _housekeeping(now=now, report=report)
    if report.changed:
        logger.info("Retention %s: %s", "dry run" if dry_run else "applied", report.counts())
    return report


# --- Per organisation --------------------------------------------------------------------------------


def _apply_organisation(organisation: Organisation, *, now: datetime, report: RetentionReport) -> None:
    schedule = schedule_for(organisation)
    zone = zoneinfo.ZoneInfo(organisation.time_zone)
    today = now.astimezone(zone).date()
    # Stage 1: leavers whose erase date has come. Every leaver not yet archived is a candidate (a missed
    # run must catch up), and the date is decided in Python; leavers are few next to the registry.
    leavers = Pupil.objects.filter(
        school__organisation=organisation, left_on__isnull=False, archived_at__isnull=True, left_on__lt=today
    ).order_by("pk").values_list("pk", "left_on")
    due = [(pk, erased) for pk, left_on in leavers.iterator()
           if (erased := erase_on(left_on, schedule.leaver_month)) <= today]
    for batch in _batches(due):
        _erase_pupils(dict(batch), evidence_years=schedule.evidence_years, now=now, report=report)
    # Guardians an import has unlinked from every child: nothing justifies keeping them after a grace
    # period (a corrected import may link them again).
    childless = list(
        Guardian.objects.filter(school__organisation=organisation, archived_at__isnull=True,
                                updated_at__lt=now - CHILDLESS_GUARDIAN_GRACE)
        .exclude(Exists(Guardianship.objects.filter(guardian=OuterRef("pk"))))
        .order_by("pk").values_list("pk", flat=True)
    )
    for batch in _batches(childless):
        with transaction.atomic():
            _erase_guardians(set(batch), now=now, report=report)
    # Stage 2: archived pupils whose evidence period is over.
    expired = list(
        Pupil.objects.filter(school__organisation=organisation, archived_at__isnull=False,
                             evidence_delete_on__lte=today).order_by("pk").values_list("pk", flat=True)
    )
    for batch in _batches(expired):
        _delete_evidence(batch, report=report)
    # Archived guardians whose children have all gone and who are named by no consent event, only by their
    # own requests: those go when the evidence period has passed since they were archived.
    leftover = (
        Guardian.objects.filter(school__organisation=organisation, archived_at__isnull=False)
        .exclude(Exists(Guardianship.objects.filter(guardian=OuterRef("pk"))))
        .exclude(Exists(ConsentEvent.objects.filter(guardian=OuterRef("pk"))))
        .values_list("pk", "archived_at")
    )
    gone = [pk for pk, archived_at in leftover
            if evidence_until(archived_at.astimezone(zone).date(), schedule.evidence_years) <= today]
    for batch in _batches(gone):
        report.guardians_deleted += batch
        if not report.dry_run:
            with transaction.atomic():
                RightsRequest.objects.filter(guardian_id__in=batch).delete()
                Guardian.objects.filter(pk__in=batch).delete()


def _batches(items: list) -> Iterable[list]:
    for start in range(0, len(items), BATCH_SIZE):
        yield items[start:start + BATCH_SIZE]


def _erase_pupils(erase_dates: dict[int, date], *, evidence_years: int, now: datetime,
                  report: RetentionReport) -> None:
    with transaction.atomic():
        # Locked and re-checked: an import may have brought a pupil back (left_on cleared) since.
        pupils = list(
            Pupil.objects.select_for_update()
            .filter(pk__in=erase_dates, left_on__isnull=False, archived_at__isnull=True)
        )
        with_evidence = set(
            ConsentEvent.objects.filter(pupil__in=pupils).values_list("pupil_id", flat=True).distinct()
        )
        guardian_ids = set(Guardianship.objects.filter(pupil__in=pupils).values_list("guardian_id", flat=True))
        archive = [p for p in pupils if p.pk in with_evidence]
        delete = [p.pk for p in pupils if p.pk not in with_evidence]
        report.pupils_archived += [p.pk for p in archive]
        report.pupils_deleted += delete
        if not report.dry_run:
            for pupil in archive:
                pupil.mis_id = f"archived-{pupil.pk}"
                pupil.year_group = ""
                pupil.archived_at = now
                pupil.evidence_delete_on = evidence_until(erase_dates[pupil.pk], evidence_years)
            Pupil.objects.bulk_update(archive, ["mis_id", "year_group", "archived_at", "evidence_delete_on"])
            Pupil.groups.through.objects.filter(pupil__in=archive).delete()
            # Nothing names these pupils in evidence: their statuses and memberships go with them.
            Pupil.objects.filter(pk__in=delete).delete()
        _erase_guardians(guardian_ids, now=now, report=report)


def _erase_guardians(guardian_ids: set[int], *, now: datetime, report: RetentionReport) -> None:
    """Guardians with no current child left: archived if evidence names them, otherwise deleted.

    A child counts as gone once this run has erased them, so that a dry run, which writes nothing,
    reports the same guardians as the real run."""
    gone = set(report.pupils_archived) | set(report.pupils_deleted)
    seen = set(report.guardians_archived) | set(report.guardians_deleted)
    current_child = Guardianship.objects.filter(
        guardian=OuterRef("pk"), pupil__archived_at__isnull=True
    ).exclude(pupil_id__in=gone)
    guardians = list(
        Guardian.objects.select_for_update()
        .filter(pk__in=guardian_ids - seen, archived_at__isnull=True)
        .annotate(has_current_child=Exists(current_child))
        .filter(has_current_child=False)
    )
    evidence = set(
        ConsentEvent.objects.filter(guardian__in=guardians).values_list("guardian_id", flat=True).distinct()
    ) | set(RightsRequest.objects.filter(guardian__in=guardians).values_list("guardian_id", flat=True))
    archive = [g for g in guardians if g.pk in evidence]
    delete = [g for g in guardians if g.pk not in evidence]
    report.guardians_archived += [g.pk for g in archive]
    report.guardians_deleted += [g.pk for g in delete]
    report.links_deleted += GuardianLink.objects.filter(guardian__in=guardians).count()
    report.emails_deleted += _emails_to(guardians).count()
    if report.dry_run:
        return
    _emails_to(guardians).delete()
    GuardianLink.objects.filter(guardian__in=guardians).delete()
    ConsentRequest.objects.filter(guardian__in=guardians).delete()
    for guardian in archive:
        guardian.mis_id = f"archived-{guardian.pk}"
        guardian.email = ""
        guardian.phone = ""
        guardian.archived_at = now
    Guardian.objects.bulk_update(archive, ["mis_id", "email", "phone", "archived_at"])
    Guardian.objects.filter(pk__in=[g.pk for g in delete]).delete()


def _emails_to(guardians: list[Guardian]) -> models.QuerySet:
    """The outbox messages the school sent these guardians, unless another current guardian of the same
    school shares the address (two parents, one mailbox): those stay until both have gone."""
    addresses = Q()
    for guardian in guardians:
        if guardian.email:
            addresses |= Q(school_id=guardian.school_id, recipient__iexact=guardian.email)
    if not addresses:
        return OutboxMessage.objects.none()
    shared = Guardian.objects.filter(
        school_id=OuterRef("school_id"), email__iexact=OuterRef("recipient"), archived_at__isnull=True
    ).exclude(pk__in=[g.pk for g in guardians])
    # A message a worker holds at this moment is left alone rather than pulled from under it (rare; its
    # body is erased a month after sending like every other message's).
    return OutboxMessage.objects.filter(addresses).exclude(status=OutboxMessage.Status.SENDING).exclude(
        Exists(shared)
    )


def _delete_evidence(pupil_ids: list[int], *, report: RetentionReport) -> None:
    with transaction.atomic():
        pupils = list(Pupil.objects.select_for_update().filter(pk__in=pupil_ids, archived_at__isnull=False))
        events = ConsentEvent.objects.filter(pupil__in=pupils)
        guardian_ids = set(Guardianship.objects.filter(pupil__in=pupils).values_list("guardian_id", flat=True))
        guardian_ids |= set(events.values_list("guardian_id", flat=True))
        # Decided before anything is deleted, so a dry run reports what the real run does: a guardian goes
        # when no child and no evidence outside this batch remains.
        orphan_ids = list(
            Guardian.objects.filter(pk__in=guardian_ids, archived_at__isnull=False)
            .exclude(Exists(Guardianship.objects.filter(guardian=OuterRef("pk")).exclude(pupil__in=pupils)))
            .exclude(Exists(ConsentEvent.objects.filter(guardian=OuterRef("pk")).exclude(pupil__in=pupils)))
            .values_list("pk", flat=True)
        )
        report.evidence_pupils_deleted += [p.pk for p in pupils]
        report.events_deleted += events.count()
        report.guardians_deleted += orphan_ids
        if report.dry_run:
            return
        attachments = list(events.exclude(attachment="").values_list("attachment", flat=True))
        # The status rows point at their last event (PROTECT): they go first.
        ConsentStatus.objects.filter(pupil__in=pupils).delete()
        events.retention_delete()
        Pupil.objects.filter(pk__in=[p.pk for p in pupils]).delete()
        RightsRequest.objects.filter(guardian_id__in=orphan_ids).delete()
        Guardian.objects.filter(pk__in=orphan_ids).delete()
        transaction.on_commit(lambda: _delete_files(attachments))


def _delete_files(names: list[str]) -> None:
    from django.core.files.storage import default_storage

    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.exception("Retention could not delete the evidence file %s", name)


# --- Erasure at a parent's request -------------------------------------------------------------------


def guardian_erase(*, guardian: Guardian, actor, rights_request: RightsRequest | None = None) -> bool:
    """Erase a parent's personal data now, at their request (a deletion request completed by staff).

    Their email address, phone number, MIS id, personal links, open consent requests and the emails
    already sent to them go; emails still waiting to leave (the school's answer to this request) are
    sent first and erased with the rest a month later. Their name stays, with their consent evidence and
    their requests, which the school must keep to show what was agreed and answered (GDPR art. 17(3)(b)
    and (e)); the retention schedule deletes those in turn. A consent they gave is withdrawn: the school
    can no longer reach them, so it can no longer rely on it. Their children stay in the registry.
    Returns False if they had been erased already. One transaction, audited."""
    from .services import _append, _event_data

    with transaction.atomic():
        guardian = Guardian.objects.select_for_update().select_related("school").get(pk=guardian.pk)
        if guardian.archived_at is not None:
            return False
        withdrawn = []
        statuses = (
            ConsentStatus.objects.select_for_update(of=("self",))
            .filter(guardian=guardian, state="given")
            .select_related("last_event__notice", "pupil__school")
        )
        for status in statuses:
            event = _append(
                status=status, kind=ConsentEvent.Kind.WITHDRAWN, notice=status.last_event.notice,
                channel=ConsentEvent.Channel.SYSTEM,
                note="Withdrawn when the parent's data was erased at their request.",
            )
            audit_log(actor=actor, action="consent.withdrawn", obj=event, school=guardian.school,
                      data=_event_data(event))
            withdrawn.append(status.pupil_id)
        sent = _emails_to([guardian]).exclude(status__in=OutboxMessage.CLAIMABLE)
        emails_deleted = sent.count()
        sent.delete()
        links_deleted, _ = GuardianLink.objects.filter(guardian=guardian).delete()
        ConsentRequest.objects.filter(guardian=guardian).delete()
        now = timezone.now()
        guardian.mis_id = f"archived-{guardian.pk}"
        guardian.email = ""
        guardian.phone = ""
        guardian.archived_at = now
        guardian.processing_restricted_at = guardian.processing_restricted_at or now
        guardian.save(update_fields=["mis_id", "email", "phone", "archived_at", "processing_restricted_at",
                                     "updated_at"])
        # Their refusals and withdrawals no longer bind their children: the school's counts change.
        counts_recount_school(school=guardian.school)
        audit_log(actor=actor, action="retention.guardian_erased", obj=guardian, school=guardian.school,
                  data={"rights_request": getattr(rights_request, "pk", None), "consents_withdrawn": withdrawn,
                        "links_deleted": links_deleted, "emails_deleted": emails_deleted})
    return True


# --- Housekeeping across organisations -------------------------------------------------------------


def _housekeeping(*, now: datetime, report: RetentionReport) -> None:
    # The file and its preview (which names pupils and parents) go; the run's counts stay.
    # A run a worker is importing (or about to) keeps its file: the import sweep ends dead runs within
    # minutes, and an ended run's file is erased then. A preview nobody confirmed within a day expires.
    uploads = (
        ImportRun.objects.filter(created_at__lt=now - UPLOAD_KEEP)
        .exclude(status__in=[ImportRun.Status.QUEUED, ImportRun.Status.RUNNING])
        .exclude(content="", preview="")
    )
    expired_previews = ImportRun.objects.filter(created_at__lt=now - UPLOAD_KEEP, status=ImportRun.Status.PLANNED)
    old_runs = ImportRun.objects.filter(created_at__lt=now - IMPORT_RUN_KEEP)
    revoked = GuardianLink.objects.filter(revoked_at__lt=now - REVOKED_LINK_KEEP)
    bodies = OutboxMessage.objects.filter(status=OutboxMessage.Status.SENT, sent_at__lt=now - SENT_BODY_KEEP).exclude(
        body_text="", body_html="", attachments=""
    )
    # Once delivered or given up, an email to an address that is no longer any current parent's or staff
    # member's (an erased parent) keeps neither the address nor its subject, which may name a child.
    current = Q(Exists(Guardian.objects.filter(email__iexact=OuterRef("recipient"), archived_at__isnull=True))) | Q(
        Exists(User.objects.filter(email__iexact=OuterRef("recipient")))
    )
    addresses = (
        OutboxMessage.objects.filter(status__in=[OutboxMessage.Status.SENT, OutboxMessage.Status.FAILED],
                                     created_at__lt=now - SENT_BODY_KEEP)
        .exclude(recipient=ERASED).exclude(current)
    )
    report.email_bodies_erased += bodies.count()
    report.addresses_erased += addresses.count()
    report.uploads_erased += uploads.count()
    report.import_runs_deleted += old_runs.count()
    report.links_deleted += revoked.count()
    if report.dry_run:
        return
    with transaction.atomic():
        done = {
            "uploads_erased": uploads.update(content="", preview=""),
            "previews_expired": expired_previews.update(status=ImportRun.Status.DISCARDED, finished_at=now),
            "import_runs_deleted": old_runs.delete()[1].get(ImportRun._meta.label, 0),
            "links_deleted": revoked.delete()[1].get(GuardianLink._meta.label, 0),
            "email_bodies_erased": bodies.update(body_text="", body_html="", attachments=""),
            "addresses_erased": addresses.update(recipient=ERASED, subject=ERASED),
        }
        if any(done.values()):
            audit_log(actor=None, action="retention.applied", obj=None, data=done)
