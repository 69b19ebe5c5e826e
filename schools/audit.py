"""The audit trail: one call, `audit_log`, for every state change in Gatehouse.

Entries are hash-chained. Appending takes a lock so that two writers never chain onto the same
predecessor: a PostgreSQL transaction-level advisory lock (released at commit, so keep the audit call
inside the service's own short transaction), and on SQLite the database write lock that every
transaction takes at BEGIN (see `transaction_mode` in settings).
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from .models import AuditEntry, Organisation, School

GENESIS_HASH = "0" * 64
# An arbitrary constant naming the audit chain's advisory lock.
_AUDIT_LOCK_KEY = 0x6A7E_A0D1

# Readable text for each action, shown on the audit page. Every new action name gets a line here.
ACTION_LABELS: dict[str, str] = {
    "auth.login": "signed in",
    "auth.login_failed": "failed to sign in",
    "auth.logout": "signed out",
    "auth.locked_out": "was locked out after repeated failed sign-ins",
    "auth.password_reset_requested": "asked for a password reset",
    "auth.password_changed": "changed their password",
    "auth.two_factor_enrolled": "set up two-factor authentication",
    "auth.two_factor_verified": "passed the two-factor check",
    "auth.two_factor_failed": "failed the two-factor check",
    "auth.backup_codes_generated": "generated new backup codes",
    "auth.backup_code_used": "used a backup code",
    "auth.reauthenticated": "confirmed their identity",
    "auth.reauthentication_failed": "failed to confirm their identity",
    "admin.added": "added a record in the admin",
    "admin.changed": "changed a record in the admin",
    "admin.deleted": "deleted a record in the admin",
    "email.failed": "could not send an email",
    "email.retried": "queued a failed email again",
    "email.test_queued": "queued a test email",
    "demo.seeded": "loaded the demo data",
    "import.applied": "imported pupils and guardians from the MIS",
    "consent.notice_published": "published a version of the consent notice",
    "consent.given": "gave consent",
    "consent.refused": "refused consent",
    "consent.withdrawn": "withdrew consent",
    "consent.recorded_by_staff": "recorded a consent decision received by email, paper or phone",
    "consent.lapsed": "let a consent lapse after its renewal deadline",
    "registry.guardian_updated": "changed a guardian's contact details",
    "import.uploaded": "uploaded a roster file to import",
    "import.discarded": "discarded a roster file without importing it",
    "import.failed": "had an import fail",
    "import.confirmed": "confirmed an import",
    "import.replanned": "had an import previewed again because the registry changed",
    "consent.notice_draft_saved": "saved a draft of the consent notice",
    "consent.notice_draft_discarded": "discarded a draft of the consent notice",
    "consent.requests_sent": "sent consent requests to parents",
    "consent.reminder_sent": "sent a consent reminder",
    "consent.requests_closed": "closed consent requests (answered, reminders used up, or no longer needed)",
    "consent.purpose_created": "added something for parents to agree to",
    "consent.purpose_updated": "changed the reminder settings of something parents agree to",
    "registry.exported": "exported the consent register",
    "rights.requested": "made a request about their data",
    "rights.recorded_by_staff": "recorded a parent's request about their data",
    "rights.status_changed": "changed the status of a parent's request",
    "rights.responded": "answered a parent's request",
    "rights.data_downloaded": "downloaded a copy of the data held about a parent",
    "rights.contact_suppressed": "suppressed a parent's data",
    "retention.applied": "applied the retention schedule",
    "retention.schedule_updated": "changed the retention schedule",
    "retention.guardian_erased": "erased a parent's contact details at their request",
    "risk.assessment_created": "started a risk assessment",
    "risk.hazard_saved": "saved a hazard row of a risk assessment",
    "risk.hazard_removed": "removed a hazard row from a risk assessment",
    "risk.submitted": "submitted a risk assessment for approval",
    "risk.approved": "approved a risk assessment",
    "risk.revision_started": "started a new version of a risk assessment",
    "risk.version_details_saved": "changed the assessor, date or review date of a draft risk assessment",
    "risk.flagged_for_review": "flagged a risk assessment for review",
    "risk.reviewed_no_change": "reviewed a risk assessment after an incident: no change needed",
    "risk.review_escalated": "stopped lessons in every school until a risk assessment is reviewed",
    "risk.copied": "copied a risk assessment from another school",
    "risk.hazards_reordered": "reordered the hazard rows of a risk assessment",
    "risk.pdf_stored": "stored the PDF of an approved risk assessment",
    "risk.exported": "exported the risk register",
    "risk.reminder_sent": "sent risk assessment reminders",
    "risk.action_done": "marked a risk assessment action as done",
    "risk.matrix_changed": "changed the organisation's risk matrix and re-mapped the scores",
    "pia.created": "started a privacy impact assessment",
    "pia.step_saved": "saved a step of a privacy impact assessment",
    "pia.row_saved": "saved a row of a privacy impact assessment",
    "pia.row_removed": "removed a row from a privacy impact assessment",
    "pia.rows_reordered": "reordered the rows of a privacy impact assessment",
    "pia.submitted": "submitted a privacy impact assessment to the DPO",
    "pia.dpo_advised": "gave the DPO's advice on a privacy impact assessment",
    "pia.changes_requested": "asked for changes to a privacy impact assessment",
    "pia.controller_accepted": "accepted the DPO's advice as data controller",
    "pia.controller_overruled": "overruled the DPO's advice as data controller, with reasons",
    "pia.siro_signed": "signed a privacy impact assessment as SIRO",
    "pia.revision_started": "started a new version of a privacy impact assessment",
    "pia.notification_sent": "emailed someone that a privacy impact assessment waits for them",
    "pia.pdf_stored": "stored the PDF of a signed privacy impact assessment",
    "pia.notice_drafted": "drafted a privacy notice from a signed privacy impact assessment",
    "pia.platform_saved": "registered or changed a video platform",
    "pia.platform_removed": "removed a video platform",
    "pia.action_done": "marked a privacy impact assessment action as done",
    "pia.reminder_sent": "sent privacy impact assessment action reminders",
    # Invitations to video sessions (sessions/dispatch.py).
    "session.invitations_planned": "created the invitations of a video session",
    "session.invitations_sent": "sent invitations to a video session",
    "session.invitation_failed": "could not send an invitation to a video session",
    "session.invitations_cancelled": "cancelled invitations after a consent was withdrawn or refused",
    "session.alert_raised": "alerted the host of a video session",
    "session.invitations_revised": "queued fresh invitations after a video session changed",
    "session.passwords_erased": "erased the meeting passwords of past video sessions",
    # Video sessions: scheduling and the meeting protocol (helper S1).
    "session.protocol_saved": "saved a version of the meeting protocol",
    "session.scheduled": "scheduled a video session",
    "session.low_coverage_confirmed": "confirmed a video session that fewer children may attend than the "
                                      "organisation's share",
    "session.updated": "changed or rescheduled a video session",
    "session.cancelled": "cancelled a video session",
    "session.parents_told_off": "told the parents invited that a video session cannot go ahead",
    "session.not_held": "recorded that a video session did not go ahead",
    "session.password_revealed": "looked at a video session's meeting password",
    "session.attendance_recorded": "recorded the attendance of a video session",
    "session.incident_reported": "reported an incident in a video session",
    "session.incident_closed": "closed an incident",
    # The daily digest (schools/digest.py) and each person's choice of it.
    "digest.sent": "sent the daily digests",
    "organisation.settings_changed": "changed the organisation's settings",
    "account.digest_changed": "changed whether they get the daily digest",
}


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)


@dataclass(frozen=True)
class Actor:
    """Who did something, when it was not a signed-in member of staff (a parent via link, a task)."""

    kind: str
    label: str
    id: int | None = None


SYSTEM = Actor(kind=AuditEntry.ActorKind.SYSTEM, label="Gatehouse")


def _actor_fields(actor) -> tuple[str, int | None, str]:
    if actor is None:
        actor = SYSTEM
    if isinstance(actor, Actor):
        return actor.kind, actor.id, actor.label[:300]
    if getattr(actor, "is_authenticated", False):
        label = f"{actor.get_full_name() or actor.username} <{actor.email}>"
        return AuditEntry.ActorKind.STAFF, actor.pk, label[:300]
    return SYSTEM.kind, None, SYSTEM.label


def _object_fields(obj: Model | None) -> tuple[str, str, str]:
    if obj is None:
        return "", "", ""
    # Audit entries are kept for ever and never change, so objects whose text would name a pupil or a
    # parent say what they are by number instead (`audit_repr`): erasing the registry then leaves no
    # name behind in the trail.
    text = obj.audit_repr() if hasattr(obj, "audit_repr") else str(obj)
    return obj._meta.label_lower, str(obj.pk), text[:300]


def _canonical(data: dict[str, Any] | None) -> dict[str, Any]:
    # Round-trip through JSON so what is stored is exactly what was hashed (dates become strings).
    return json.loads(json.dumps(data or {}, sort_keys=True, default=str))


def audit_chain_lock() -> None:
    """Take the chain's lock now, ahead of this transaction's `audit_log`: for a transaction that must take
    another shared lock before it writes its entry (consent.counts), so that every such transaction takes
    the two in the same order. Held until the transaction ends; taking it again is free."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_LOCK_KEY])


def audit_log(
    *,
    actor,
    action: str,
    obj: Model | None = None,
    data: dict[str, Any] | None = None,
    school=None,
    organisation=None,
) -> AuditEntry:
    """Append one entry. `actor` is a staff User, an `Actor`, or None for Gatehouse itself.

    The school and organisation default to the object's own, so the entry shows up in the right
    people's audit page.
    """
    if school is None and isinstance(obj, School):
        school = obj
    elif school is None and isinstance(obj, Organisation):
        organisation = organisation or obj
    elif school is None and obj is not None:
        school = getattr(obj, "school", None)
    if organisation is None:
        organisation = getattr(school, "organisation", None) if school is not None else None
        if organisation is None and obj is not None:
            organisation = getattr(obj, "organisation", None)
    actor_kind, actor_id, actor_label = _actor_fields(actor)
    object_type, object_id, object_repr = _object_fields(obj)
    with transaction.atomic():
        audit_chain_lock()
        last = AuditEntry.objects.order_by("-seq").values_list("seq", "hash").first()
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        entry = AuditEntry(
            seq=seq,
            created_at=timezone.now(),
            actor_kind=actor_kind,
            actor_id=actor_id,
            actor_label=actor_label,
            action=action,
            object_type=object_type,
            object_id=object_id,
            object_repr=object_repr,
            organisation_id=getattr(organisation, "pk", organisation),
            school_id=getattr(school, "pk", school),
            data=_canonical(data),
            prev_hash=prev_hash,
        )
        entry.hash = entry.compute_hash()
        entry.save()
    return entry


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    entry_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f"entry #{self.seq}" + (f" (id {self.entry_id})" if self.entry_id is not None else "")
        return f"{where}: {self.reason}"


def _entries() -> Iterator[AuditEntry]:
    return AuditEntry.objects.order_by("seq").iterator(chunk_size=2000)


def audit_verify() -> tuple[int, ChainBreak | None]:
    """Walk the chain from the start. Returns (entries checked, the first break or None)."""
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    for entry in _entries():
        if entry.seq != expected_seq:
            return checked, ChainBreak(
                expected_seq, None, f"missing: the chain jumps to #{entry.seq} (an entry was deleted)"
            )
        if entry.prev_hash != prev_hash:
            return checked, ChainBreak(
                entry.seq, entry.pk, "does not follow the previous entry (an earlier entry was changed or removed)"
            )
        if entry.compute_hash() != entry.hash:
            return checked, ChainBreak(entry.seq, entry.pk, "its contents do not match its hash (it was edited)")
        checked += 1
        expected_seq, prev_hash = entry.seq + 1, entry.hash
    return checked, None
