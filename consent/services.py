"""Consent: publishing notices, recording decisions, and reading the effective state.

Every change is one keyword-only function here, one transaction, one audit entry, and the only way that
change happens. A decision appends one `ConsentEvent` (the evidence) and updates the guardian's
`ConsentStatus` row from it in the same transaction, so the row always equals the fold of the events
(promise 6).

Locking: every decision locks the status row `FOR UPDATE` before it writes. The send task locks the same
row `FOR SHARE` while it claims an invitation, so a withdrawal is ordered strictly before a claim (the
claim then sees "withdrawn" and does not send) or strictly after it (the withdrawal then cancels what
was claimed). On SQLite the write lock taken at BEGIN serialises the same way.
"""

import re
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from schools.audit import Actor, audit_log
from schools.models import AuditEntry, Role
from schools.scope import build_scope

from .counts import counts_record_change, counts_recount
from .links import consent_confirmation_queue
from .models import (
    ConsentEvent,
    ConsentState,
    ConsentStatus,
    Guardian,
    Guardianship,
    GuardiansRule,
    Notice,
    Pupil,
    Purpose,
    validate_evidence_attachment,
)

Kind = ConsentEvent.Kind
Channel = ConsentEvent.Channel

# Staff who may record a decision that reached the school by email, paper or phone.
RECORDING_ROLES = frozenset({Role.HEADTEACHER, Role.OFFICE, Role.ORG_ADMIN})
STAFF_CHANNELS = frozenset({Channel.EMAIL_REPLY, Channel.PAPER_FORM, Channel.PHONE})
DECISION_KINDS = frozenset({Kind.GIVEN, Kind.REFUSED, Kind.WITHDRAWN})
NO_KINDS = frozenset({ConsentState.REFUSED, ConsentState.WITHDRAWN})
# A renewal deadline further ahead would keep superseded consents valid for too long (and a far-future
# date overflows the date arithmetic).
MAX_RENEWAL_PERIOD = timedelta(days=366)

_NEXT_STATE: dict[str, str] = {
    Kind.GIVEN: ConsentState.GIVEN,
    Kind.REFUSED: ConsentState.REFUSED,
    Kind.WITHDRAWN: ConsentState.WITHDRAWN,
    Kind.LAPSED: ConsentState.LAPSED,
    # A decision replaced by a later notice no longer counts: the guardian is asked again.
    Kind.SUPERSEDED: ConsentState.NONE,
}


# --- Folding: the current state is a pure function of the events ----------------------------------


def next_state(state: str, kind: str) -> str:
    return _NEXT_STATE[kind]


def fold_events(events: Iterable[ConsentEvent | str]) -> str:
    """The state after these events, oldest first (events or their kinds). No events: no answer."""
    state: str = ConsentState.NONE
    for event in events:
        state = next_state(state, getattr(event, "kind", event))
    return state


# --- Notices ---------------------------------------------------------------------------------------


def _organisation_today(organisation, now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(zoneinfo.ZoneInfo(organisation.time_zone)).date()


def notice_publish(*, notice: Notice, actor, material_change: bool, renewal_deadline: date | None = None) -> Notice:
    """Freeze a draft as the purpose's next version. A material change asks earlier consents to renew:
    they stay valid until `renewal_deadline`, then `consent_lapse_due` lapses them."""
    with transaction.atomic():
        notice = (
            Notice.objects.select_for_update(of=("self",)).select_related("purpose__organisation").get(pk=notice.pk)
        )
        purpose = notice.purpose
        if notice.is_published:
            raise ValidationError("This notice is already published.")
        if material_change and renewal_deadline is None:
            raise ValidationError("A material change needs a renewal deadline.")
        if material_change and renewal_deadline < _organisation_today(purpose.organisation):
            raise ValidationError("The renewal deadline is in the past.")
        if material_change and renewal_deadline > _organisation_today(purpose.organisation) + MAX_RENEWAL_PERIOD:
            raise ValidationError("Set a renewal deadline within a year: parents are asked to renew, not to wait.")
        if not material_change and renewal_deadline is not None:
            raise ValidationError("Only a material change has a renewal deadline.")
        # Locking the purpose serialises publishers, so two drafts never take the same number.
        Purpose.objects.select_for_update().filter(pk=purpose.pk).first()
        last = purpose.notices.aggregate(last=Max("version"))["last"] or 0
        notice.version = last + 1
        notice.material_change = material_change
        notice.renewal_deadline = renewal_deadline
        notice.published_at = timezone.now()
        notice.published_by = actor if getattr(actor, "is_authenticated", False) else None
        notice.sha256 = notice.compute_sha256()
        notice.save()
        flagged = 0
        if material_change:
            flagged = ConsentStatus.objects.filter(
                purpose=purpose, state=ConsentState.GIVEN, last_event__notice_version__lt=notice.version
            ).update(renewal_needed=True)
            if flagged:
                counts_recount(school_ids=purpose.organisation.schools.values_list("pk", flat=True), purpose=purpose)
        audit_log(
            actor=actor,
            action="consent.notice_published",
            obj=notice,
            organisation=purpose.organisation,
            data={
                "version": notice.version,
                "sha256": notice.sha256,
                "material_change": material_change,
                "renewal_deadline": renewal_deadline,
                "consents_needing_renewal": flagged,
            },
        )
    return notice


def consent_lapse_due(*, now: datetime) -> int:
    """Lapse every consent whose renewal deadline has passed. Run by a periodic task; safe to repeat
    (a lapsed row is no longer "given", so a second run finds nothing). Returns how many lapsed."""
    # The newest material version per purpose whose deadline is behind us (in the organisation's zone).
    due: dict[int, int] = {}
    # Few rows: one per material change ever published. The date is compared in each organisation's zone.
    for notice in Notice.objects.filter(
        material_change=True, published_at__isnull=False, renewal_deadline__isnull=False
    ).select_related("purpose__organisation"):
        if notice.renewal_deadline < _organisation_today(notice.purpose.organisation, now):
            due[notice.purpose_id] = max(due.get(notice.purpose_id, 0), notice.version)
    lapsed = 0
    for purpose_id, version in due.items():
        status_ids = ConsentStatus.objects.filter(
            purpose_id=purpose_id,
            state=ConsentState.GIVEN,
            renewal_needed=True,
            last_event__notice_version__lt=version,
        ).values_list("pk", flat=True)
        for status_id in list(status_ids):
            lapsed += _lapse_one(status_id=status_id, version=version)
    return lapsed


def _lapse_one(*, status_id: int, version: int) -> int:
    with transaction.atomic():
        status = (
            # Lock the status row only: the joined rows are read, not changed (and PostgreSQL refuses
            # FOR UPDATE on the nullable side of the outer join to last_event).
            ConsentStatus.objects.select_for_update(of=("self",))
            .select_related("last_event__notice", "guardian", "pupil__school", "purpose")
            .get(pk=status_id)
        )
        # Re-checked under the lock: the guardian may have renewed since the query above.
        if not (status.state == ConsentState.GIVEN and status.renewal_needed
                and status.last_event.notice_version < version):
            return 0
        event = _append(
            status=status,
            kind=Kind.LAPSED,
            notice=status.last_event.notice,
            channel=Channel.SYSTEM,
            note=f"Not renewed by the deadline set with version {version} of the notice.",
        )
        audit_log(
            actor=None,
            action="consent.lapsed",
            obj=event,
            school=status.pupil.school,
            data=_event_data(event),
        )
    return 1


# --- Decisions -------------------------------------------------------------------------------------


def user_agent_family(user_agent: str) -> str:
    """A browser family and nothing more: enough to describe how a decision was made, too little to
    identify anyone. The full header and the IP address are never kept."""
    ua = user_agent or ""
    for pattern, family in (
        (r"Edg/", "Edge"),
        (r"OPR/|Opera", "Opera"),
        (r"SamsungBrowser", "Samsung Internet"),
        (r"Firefox/|FxiOS", "Firefox"),
        (r"Chrome/|CriOS", "Chrome"),
        (r"Safari/", "Safari"),
    ):
        if re.search(pattern, ua):
            mobile = " (mobile)" if re.search(r"Mobile|Android|iPhone|iPad", ua) else ""
            return f"{family}{mobile}"
    return "Other" if ua else ""


def guardian_actor(guardian: Guardian) -> Actor:
    # By number, never by name: the audit trail outlives the registry's retention period.
    return Actor(kind=AuditEntry.ActorKind.GUARDIAN, label=f"Parent or carer #{guardian.pk}", id=guardian.pk)


def _guardianship(*, guardian: Guardian, pupil: Pupil) -> Guardianship:
    if guardian.school_id != pupil.school_id:
        raise ValidationError("This guardian is not a guardian of this pupil.")
    found = Guardianship.objects.filter(guardian=guardian, pupil=pupil).first()
    if found is None:
        raise ValidationError("This guardian is not a guardian of this pupil.")
    return found


def _check_decision(*, guardian: Guardian, pupil: Pupil, notice: Notice, kind: str, any_version: bool) -> None:
    """Raise ValidationError unless this guardian may make this decision for this pupil on this notice."""
    # Read from the database, not from the objects passed in, which may predate the erasure.
    if (Guardian.objects.filter(pk=guardian.pk, archived_at__isnull=False).exists()
            or Pupil.objects.filter(pk=pupil.pk, archived_at__isnull=False).exists()):
        raise ValidationError("This record has been erased: no decision can be recorded on it.")
    guardianship = _guardianship(guardian=guardian, pupil=pupil)
    if kind == Kind.GIVEN and not guardianship.parental_responsibility:
        raise ValidationError("Only a guardian with parental responsibility can give consent.")
    purpose = notice.purpose
    if purpose.organisation_id != pupil.school.organisation_id:
        raise ValidationError("This notice belongs to another organisation.")
    if not notice.is_published:
        raise ValidationError("This notice is a draft.")
    # Withdrawing is never harder than giving: any published version will do, even an old page.
    if not any_version:
        current = purpose.current_notice()
        if current is None or current.pk != notice.pk:
            raise ValidationError("A newer version of the notice has been published: read it first.")


def _lock_status(*, guardian: Guardian, pupil: Pupil, purpose: Purpose) -> ConsentStatus:
    # FOR UPDATE on the status row: the send task's FOR SHARE lock on the same row orders every claim
    # strictly before or after this change (see the module docstring). get_or_create inside the
    # transaction: the first decision creates the row, and a concurrent creator retries the get.
    # A guardian's FIRST decision has no status row to lock yet, and a "no" from any guardian wins: so
    # the pupil row is locked too (FOR NO KEY UPDATE, which rows referencing the pupil do not wait for),
    # and the claim holds it FOR SHARE. A first refusal by a co-guardian then also happens strictly
    # before or after every claim naming the child.
    Pupil.objects.select_for_update(no_key=True).filter(pk=pupil.pk).values_list("pk", flat=True).first()
    status, _ = ConsentStatus.objects.select_for_update().get_or_create(
        guardian=guardian, pupil=pupil, purpose=purpose
    )
    return status


def _append(
    *,
    status: ConsentStatus,
    kind: str,
    notice: Notice,
    channel: str,
    recorded_by=None,
    received_on: date | None = None,
    note: str = "",
    attachment=None,
    attestation: bool = False,
    user_agent: str = "",
) -> ConsentEvent:
    before = _pupil_state(pupil_id=status.pupil_id, purpose=notice.purpose)
    event = ConsentEvent(
        guardian_id=status.guardian_id,
        pupil_id=status.pupil_id,
        purpose_id=status.purpose_id,
        kind=kind,
        notice=notice,
        notice_version=notice.version,
        notice_sha256=notice.sha256,
        channel=channel,
        recorded_by=recorded_by,
        received_on=received_on,
        note=note,
        attestation=attestation,
        user_agent_family=user_agent_family(user_agent),
    )
    if attachment is not None:
        event.attachment = attachment
    event.save()
    status.state = next_state(status.state, kind)
    # Any new decision is made on a current notice, so it answers a renewal request; a lapse closes it.
    status.renewal_needed = False
    status.last_event = event
    status.save(update_fields=["state", "renewal_needed", "last_event", "updated_at"])
    if status.state != ConsentState.GIVEN:
        # Still under this row's FOR UPDATE lock: unsent invitations naming the child are cancelled, and the
        # host is alerted about sent ones (promise 5). Imported here: sessions imports consent.
        from sessions.withdrawals import on_consent_withdrawn

        on_consent_withdrawn(guardian_id=status.guardian_id, pupil_id=status.pupil_id,
                             purpose_id=status.purpose_id, state=status.state)
    # Last: it locks the school's counts until the commit (consent.counts).
    counts_record_change(pupil_id=status.pupil_id, purpose=notice.purpose, before=before,
                         after=_pupil_state(pupil_id=status.pupil_id, purpose=notice.purpose))
    return event


def _event_data(event: ConsentEvent) -> dict:
    return {
        "kind": event.kind,
        "guardian_id": event.guardian_id,
        "pupil_id": event.pupil_id,
        "purpose_id": event.purpose_id,
        "notice_version": event.notice_version,
        "notice_sha256": event.notice_sha256,
        "channel": event.channel,
        "received_on": event.received_on,
        "attestation": event.attestation,
    }


def _decide_by_link(
    *, guardian: Guardian, pupil: Pupil, notice: Notice, kind: str, attestation: bool, user_agent: str
) -> ConsentEvent:
    with transaction.atomic():
        _check_decision(guardian=guardian, pupil=pupil, notice=notice, kind=kind,
                        any_version=kind == Kind.WITHDRAWN)
        if kind == Kind.GIVEN and not attestation:
            raise ValidationError("Confirm that you have parental responsibility for this child.")
        status = _lock_status(guardian=guardian, pupil=pupil, purpose=notice.purpose)
        # Checked under the lock: a repeated withdrawal (a double click, a second tab) records nothing more
        # and sends no second email.
        if kind == Kind.WITHDRAWN and status.state == ConsentState.WITHDRAWN and status.last_event is not None:
            return status.last_event
        event = _append(
            status=status, kind=kind, notice=notice, channel=Channel.PARENT_LINK,
            attestation=attestation, user_agent=user_agent,
        )
        audit_log(actor=guardian_actor(guardian), action=f"consent.{kind}", obj=event, school=pupil.school,
                  data=_event_data(event))
        # The confirmation email with the withdraw link, recorded in this transaction, sent after commit.
        consent_confirmation_queue(event=event)
    return event


def consent_give(
    *, guardian: Guardian, pupil: Pupil, notice: Notice, attestation: bool, user_agent: str = ""
) -> ConsentEvent:
    """A guardian with parental responsibility consents through their personal link."""
    return _decide_by_link(guardian=guardian, pupil=pupil, notice=notice, kind=Kind.GIVEN,
                           attestation=attestation, user_agent=user_agent)


def consent_refuse(
    *, guardian: Guardian, pupil: Pupil, notice: Notice, attestation: bool = False, user_agent: str = ""
) -> ConsentEvent:
    """A guardian refuses through their personal link."""
    return _decide_by_link(guardian=guardian, pupil=pupil, notice=notice, kind=Kind.REFUSED,
                           attestation=attestation, user_agent=user_agent)


def consent_withdraw(
    *, guardian: Guardian, pupil: Pupil, notice: Notice, attestation: bool = False, user_agent: str = ""
) -> ConsentEvent:
    """A guardian withdraws through their personal link: any published version of the notice is
    accepted and no attestation is required, so withdrawing is never harder than giving (promise 5).

    Cancelling pending invitations comes with sending: it will lock on the same status row."""
    return _decide_by_link(guardian=guardian, pupil=pupil, notice=notice, kind=Kind.WITHDRAWN,
                           attestation=attestation, user_agent=user_agent)


def consent_record_by_staff(
    *,
    staff,
    guardian: Guardian,
    pupil: Pupil,
    notice: Notice,
    kind: str,
    channel: str,
    received_on: date,
    note: str = "",
    attachment=None,
    attestation: bool = False,
) -> ConsentEvent:
    """A member of the office or the headteacher records a decision received by email reply, paper form
    or phone, with the day it reached the school. The event names them."""
    with transaction.atomic():
        if not build_scope(staff).roles_at_school(pupil.school_id) & RECORDING_ROLES:
            raise PermissionDenied("Only the office or the headteacher of this school can record consent.")
        if kind not in DECISION_KINDS:
            raise ValidationError(f"Record a decision: given, refused or withdrawn, not {kind!r}.")
        if channel not in STAFF_CHANNELS:
            raise ValidationError("Choose how the decision reached the school: email reply, paper form or phone.")
        _check_decision(guardian=guardian, pupil=pupil, notice=notice, kind=kind,
                        any_version=kind == Kind.WITHDRAWN)
        school_today = timezone.now().astimezone(pupil.school.tz).date()
        if received_on > school_today:
            raise ValidationError({"received_on": "The date received cannot be in the future."})
        if received_on < notice.published_at.astimezone(pupil.school.tz).date():
            raise ValidationError(
                {"received_on": "The date received is before this version of the notice was published."}
            )
        if attachment is not None:
            validate_evidence_attachment(attachment)
        status = _lock_status(guardian=guardian, pupil=pupil, purpose=notice.purpose)
        event = _append(
            status=status, kind=kind, notice=notice, channel=channel, recorded_by=staff,
            received_on=received_on, note=note, attachment=attachment, attestation=attestation,
        )
        audit_log(actor=staff, action="consent.recorded_by_staff", obj=event, school=pupil.school,
                  data=_event_data(event))
        # As for decisions by link; a guardian without an email address gets none.
        consent_confirmation_queue(event=event)
    return event


# --- Effective state per pupil -------------------------------------------------------------------


@dataclass(frozen=True)
class GuardianDecision:
    guardian: Guardian
    parental_responsibility: bool
    state: str
    renewal_needed: bool


@dataclass(frozen=True)
class PupilConsent:
    """A pupil's effective consent, and which guardian decided what (for the pupil's status page)."""

    state: str
    renewal_needed: bool
    decisions: tuple[GuardianDecision, ...]


def effective_state(decisions: Sequence[GuardianDecision], rule: str) -> tuple[str, bool]:
    """Combine the guardians' decisions under the purpose's rule. Pure: tested without a database."""
    if rule != GuardiansRule.ANY_MAY_CONSENT_REFUSAL_WINS:
        raise ValueError(f"Unknown rule for several guardians: {rule!r}")
    states = {d.state for d in decisions}
    # A "no" from any guardian wins, parental responsibility or not: when in doubt, no video link.
    if ConsentState.REFUSED in states:
        return ConsentState.REFUSED, False
    if ConsentState.WITHDRAWN in states:
        return ConsentState.WITHDRAWN, False
    given = [d for d in decisions if d.state == ConsentState.GIVEN and d.parental_responsibility]
    if given:
        return ConsentState.GIVEN, all(d.renewal_needed for d in given)
    if ConsentState.LAPSED in states:
        return ConsentState.LAPSED, False
    return ConsentState.NONE, False


def pupils_consent_states(*, pupils: Iterable[Pupil | int], purpose: Purpose) -> dict[int, PupilConsent]:
    """The effective consent of many pupils in two queries, however many pupils (bulk pages, sending)."""
    pupil_ids = [getattr(p, "pk", p) for p in pupils]
    # An erased (archived) guardian's decisions are kept as evidence but no longer decide anything: they
    # can no longer be reached to withdraw, and their "no" must not bind the child for ever.
    guardianships = Guardianship.objects.filter(
        pupil_id__in=pupil_ids, guardian__archived_at__isnull=True
    ).select_related("guardian")
    statuses = {
        (s.guardian_id, s.pupil_id): s
        for s in ConsentStatus.objects.filter(purpose=purpose, pupil_id__in=pupil_ids)
    }
    decisions: dict[int, list[GuardianDecision]] = {pid: [] for pid in pupil_ids}
    for guardianship in guardianships:
        status = statuses.get((guardianship.guardian_id, guardianship.pupil_id))
        decisions[guardianship.pupil_id].append(
            GuardianDecision(
                guardian=guardianship.guardian,
                parental_responsibility=guardianship.parental_responsibility,
                state=status.state if status else ConsentState.NONE,
                renewal_needed=status.renewal_needed if status else False,
            )
        )
    result = {}
    for pupil_id, found in decisions.items():
        state, renewal_needed = effective_state(found, purpose.guardians_rule)
        result[pupil_id] = PupilConsent(state=state, renewal_needed=renewal_needed, decisions=tuple(found))
    return result


def _pupil_state(*, pupil_id: int, purpose: Purpose) -> tuple[str, bool]:
    found = pupils_consent_states(pupils=[pupil_id], purpose=purpose)[pupil_id]
    return found.state, found.renewal_needed


def pupil_consent_state(*, pupil: Pupil, purpose: Purpose) -> PupilConsent:
    return pupils_consent_states(pupils=[pupil], purpose=purpose)[pupil.pk]
