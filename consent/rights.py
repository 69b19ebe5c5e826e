"""Parents' rights (GDPR arts. 15–18): a copy of everything held, correction, deletion and suppression.

A parent asks through their personal link (`rights_request_create`), or the office records a request that
came by letter, email or phone (`rights_request_record_by_staff`). Either way the request gets its legal
due date, one calendar month after the day it was received (`rights_due_on`), and the parent an
acknowledgement email. Staff move it on (`rights_request_status_change`) and answer it
(`rights_request_respond`, emailed through the outbox). Completing a suppression request restricts the
guardian's processing: `Guardian.processing_restricted_at`, which the modules that write to parents check.
Completing a deletion request erases the guardian's personal data (`consent.retention.guardian_erase`).

Every change is one transaction with one audit entry. The audit data holds kinds, ids and statuses,
never the parent's own words: those stay in the request's encrypted fields.
"""

import calendar
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateformat import format as date_format

from lib.pdf import render_pdf
from schools.audit import audit_log
from schools.models import Role, School
from schools.scope import build_scope

from .links import guardian_link_issue
from .models import (
    ConsentEvent,
    ConsentStatus,
    Group,
    Guardian,
    GuardianLink,
    Guardianship,
    Pupil,
    Purpose,
    RightsRequest,
)
from .services import guardian_actor

Kind = RightsRequest.Kind
Status = RightsRequest.Status
Channel = RightsRequest.Channel

# Who sees the requests queue and acts on it: the people who answer for the school's data.
RIGHTS_ROLES = frozenset({Role.HEADTEACHER, Role.OFFICE, Role.DPO, Role.ORG_ADMIN})
# From their link a parent downloads their data themselves; the requests they can send are these.
PARENT_KINDS = (Kind.CORRECTION, Kind.DELETION, Kind.SUPPRESSION)
STAFF_CHANNELS = (Channel.EMAIL, Channel.LETTER, Channel.PHONE, Channel.IN_PERSON)
# The statuses staff move a request to; completed and refused are final (a further answer is still possible).
NEXT_STATUSES = (Status.IN_PROGRESS, Status.COMPLETED, Status.REFUSED)
MAX_DETAILS_LENGTH = 2000
MAX_RESPONSE_LENGTH = 5000
REASON_MAX_LENGTH = 500
# A link is a bearer secret: whoever holds it could flood the school's queue. Real parents send a few.
PARENT_REQUESTS_PER_DAY = 5

EXPORT_FORMAT = "gatehouse-guardian-data/1"


# --- The legal deadline ------------------------------------------------------------------------------


def rights_due_on(received: date) -> date:
    """One calendar month after the day a request was received: 3 September → 3 October. When the next
    month has no such day, its last day: 31 January → 28 February (29 in a leap year), 31 March →
    30 April. (The ICO's reading of "one month" in art. 12(3) UK GDPR.)"""
    year, month = (received.year + 1, 1) if received.month == 12 else (received.year, received.month + 1)
    return date(year, month, min(received.day, calendar.monthrange(year, month)[1]))


def school_today(school: School, now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(school.tz).date()


# --- Requests ------------------------------------------------------------------------------------------


def _guardian_label(guardian: Guardian) -> str:
    # Kept on the request so that its record outlives the retention schedule's deletion of the guardian.
    return f"{guardian} (MIS id {guardian.mis_id})"[:300]


def _request_data(rights_request: RightsRequest) -> dict:
    return {
        "kind": rights_request.kind,
        "guardian_id": rights_request.guardian_id,
        "pupil_id": rights_request.pupil_id,
        "channel": rights_request.channel,
        "received_on": school_today(rights_request.school, rights_request.received_at),
        "due_on": rights_request.due_on,
    }


def _clean_details(details: str, *, required: bool, message: str) -> str:
    details = (details or "").strip()
    if required and not details:
        raise ValidationError({"details": message})
    if len(details) > MAX_DETAILS_LENGTH:
        raise ValidationError({"details": f"Please keep it under {MAX_DETAILS_LENGTH} characters."})
    return details


def _check_child(guardian: Guardian, pupil: Pupil | None) -> None:
    if pupil is not None and not Guardianship.objects.filter(
        guardian=guardian, pupil=pupil, pupil__school_id=guardian.school_id
    ).exists():
        raise ValidationError({"pupil": "Choose one of this guardian's children."})


def _check_staff(staff, school_id: int) -> None:
    if not build_scope(staff).roles_at_school(school_id) & RIGHTS_ROLES:
        raise PermissionDenied("Only the headteacher, the office, the DPO or the organisation admin can do this.")


def _rights_link(guardian: Guardian, purpose: Purpose | None) -> str:
    """A fresh personal link straight to the guardian's rights page, or "" when there is no purpose."""
    if guardian.archived_at is not None:  # erased: no link may reach them again
        return ""
    if purpose is None:
        purpose = Purpose.objects.filter(organisation_id=guardian.school.organisation_id).order_by("id").first()
    if purpose is None:
        return ""
    # The rights page is `<token>/rights/` below the consent page (consent/urls_parent.py).
    return guardian_link_issue(guardian=guardian, purpose=purpose) + "rights/"


def _acknowledgement_queue(*, rights_request: RightsRequest, purpose: Purpose | None) -> None:
    """Tell the guardian the request arrived and when the school will answer. No address, no email."""
    from outbox.services import email_queue

    guardian = rights_request.guardian
    if guardian is None or not guardian.email:
        return
    school = rights_request.school
    email_queue(
        template="rights-acknowledgement",
        to=guardian.email,
        school=school,
        related=rights_request,
        context={
            "guardian": guardian,
            "rights_request": rights_request,
            "kind": rights_request.get_kind_display(),
            "pupil": rights_request.pupil,
            "received_on": school_today(school, rights_request.received_at),
            "link": _rights_link(guardian, purpose),
        },
    )


def rights_request_create(
    *, guardian: Guardian, kind: str, details: str = "", pupil: Pupil | None = None, purpose: Purpose | None = None
) -> RightsRequest:
    """A parent asks, through their personal link, for a correction, a deletion or a suppression.
    `purpose` is the link's, for the fresh link in the acknowledgement."""
    with transaction.atomic():
        # Locking the guardian serialises their requests, so the daily cap below cannot be raced past.
        guardian = Guardian.objects.select_for_update().select_related("school__organisation").get(pk=guardian.pk)
        if kind not in PARENT_KINDS:
            raise ValidationError("Choose what you are asking for: a correction, a deletion or a suppression.")
        details = _clean_details(
            details, required=kind == Kind.CORRECTION,
            message="Tell the school what is wrong, and what it should say instead.",
        )
        _check_child(guardian, pupil)
        now = timezone.now()
        recent = RightsRequest.objects.filter(
            guardian=guardian, channel=Channel.PARENT_LINK, received_at__gte=now - timedelta(days=1)
        ).count()
        if recent >= PARENT_REQUESTS_PER_DAY:
            raise ValidationError(
                "You have already sent several requests today. The school will answer them; if something is "
                "urgent, please contact the school office."
            )
        school = guardian.school
        rights_request = RightsRequest.objects.create(
            school=school,
            guardian=guardian,
            guardian_label=_guardian_label(guardian),
            pupil=pupil,
            kind=kind,
            details=details,
            channel=Channel.PARENT_LINK,
            received_at=now,
            due_on=rights_due_on(school_today(school, now)),
        )
        audit_log(actor=guardian_actor(guardian), action="rights.requested", obj=rights_request, school=school,
                  data=_request_data(rights_request))
        _acknowledgement_queue(rights_request=rights_request, purpose=purpose)
    return rights_request


def rights_request_record_by_staff(
    *,
    staff,
    guardian: Guardian,
    kind: str,
    channel: str,
    received_on: date,
    details: str = "",
    pupil: Pupil | None = None,
    acknowledge: bool = True,
) -> RightsRequest:
    """The office records a request that reached the school by letter, email, phone or in person. The
    month runs from the day it was received, not the day it was typed in."""
    with transaction.atomic():
        guardian = Guardian.objects.select_for_update().select_related("school__organisation").get(pk=guardian.pk)
        school = guardian.school
        _check_staff(staff, school.pk)
        if kind not in Kind.values:
            raise ValidationError({"kind": "Choose the kind of request."})
        if channel not in STAFF_CHANNELS:
            raise ValidationError({"channel": "Choose how the request reached the school."})
        today = school_today(school)
        if received_on > today:
            raise ValidationError({"received_on": "The date received cannot be in the future."})
        if received_on < today - timedelta(days=366):
            raise ValidationError({"received_on": "The date received is more than a year ago: check the year."})
        details = _clean_details(details, required=kind == Kind.CORRECTION,
                                 message="Say what the guardian says is wrong, and what it should say.")
        _check_child(guardian, pupil)
        received_at = (
            timezone.now() if received_on == today
            else datetime.combine(received_on, time.min, tzinfo=school.tz)
        )
        rights_request = RightsRequest.objects.create(
            school=school,
            guardian=guardian,
            guardian_label=_guardian_label(guardian),
            pupil=pupil,
            kind=kind,
            details=details,
            channel=channel,
            recorded_by=staff,
            received_at=received_at,
            due_on=rights_due_on(received_on),
        )
        audit_log(actor=staff, action="rights.recorded_by_staff", obj=rights_request, school=school,
                  data=_request_data(rights_request))
        if acknowledge:
            _acknowledgement_queue(rights_request=rights_request, purpose=None)
    return rights_request


def _lock_request(rights_request: RightsRequest) -> RightsRequest:
    return (
        RightsRequest.objects.select_for_update(of=("self",))
        .select_related("school__organisation", "guardian", "pupil")
        .get(pk=rights_request.pk)
    )


def _change_status(*, rights_request: RightsRequest, status: str, reason: str, actor) -> None:
    reason = (reason or "").strip()
    if status not in NEXT_STATUSES:
        raise ValidationError({"status": "Choose in progress, completed or refused."})
    if not rights_request.is_active:
        raise ValidationError(
            f"This request is already {rights_request.get_status_display().lower()}: its status no longer changes."
        )
    if status == rights_request.status:
        raise ValidationError({"status": f"The request is already {rights_request.get_status_display().lower()}."})
    if status == Status.REFUSED and not reason:
        raise ValidationError({"reason": "Say why the request is refused (it goes in the audit trail)."})
    if len(reason) > REASON_MAX_LENGTH:
        raise ValidationError({"reason": f"Keep the reason under {REASON_MAX_LENGTH} characters."})
    previous = rights_request.status
    rights_request.status = status
    rights_request.save(update_fields=["status"])
    audit_log(actor=actor, action="rights.status_changed", obj=rights_request, school=rights_request.school,
              data={"from": previous, "to": status, "reason": reason, "kind": rights_request.kind})
    if status == Status.COMPLETED and rights_request.kind == Kind.SUPPRESSION:
        _restrict_processing(rights_request=rights_request, actor=actor)
    # A deletion about the parent erases them; one about a child names what the school must do in its own
    # records (the MIS), which the answer tells the parent: the child's registry entry follows the MIS.
    if (status == Status.COMPLETED and rights_request.kind == Kind.DELETION and rights_request.guardian_id
            and rights_request.pupil_id is None):
        from .retention import guardian_erase

        guardian_erase(guardian=rights_request.guardian, actor=actor, rights_request=rights_request)


def _restrict_processing(*, rights_request: RightsRequest, actor) -> None:
    """Granting a suppression request: from now on the guardian is sent nothing but answers to their own
    requests (consent requests, reminders and lesson invitations check `processing_restricted_at`)."""
    guardian = rights_request.guardian
    if guardian is None:  # erased meanwhile: nothing left to restrict
        return
    guardian = Guardian.objects.select_for_update().get(pk=guardian.pk)
    if guardian.processing_restricted_at is not None:
        return
    guardian.processing_restricted_at = timezone.now()
    guardian.save(update_fields=["processing_restricted_at", "updated_at"])
    rights_request.guardian = guardian
    audit_log(actor=actor, action="rights.contact_suppressed", obj=guardian, school=rights_request.school,
              data={"rights_request": rights_request.pk, "guardian_id": guardian.pk})


def rights_request_status_change(
    *, rights_request: RightsRequest, status: str, reason: str = "", actor
) -> RightsRequest:
    """Move a request to in progress, completed or refused (a refusal needs a reason). Completing a
    suppression request restricts the guardian's processing; completing a deletion request erases the
    guardian's personal data (`consent.retention.guardian_erase`)."""
    with transaction.atomic():
        rights_request = _lock_request(rights_request)
        _check_staff(actor, rights_request.school_id)
        _change_status(rights_request=rights_request, status=status, reason=reason, actor=actor)
    return rights_request


@dataclass(frozen=True)
class Response:
    rights_request: RightsRequest
    emailed: bool


def rights_request_respond(*, rights_request: RightsRequest, response: str, actor, status: str = "") -> Response:
    """Write the school's answer; it is emailed to the guardian through the outbox (when they have an
    address: otherwise it is recorded, and the school sends it by post). Optionally moves the status on
    in the same step. A request may be answered more than once (e.g. asking for proof of identity first);
    the request keeps the latest answer and the outbox every email."""
    from outbox.services import email_queue

    response = (response or "").strip()
    if not response:
        raise ValidationError({"response": "Write the answer to send."})
    if len(response) > MAX_RESPONSE_LENGTH:
        raise ValidationError({"response": f"Keep the answer under {MAX_RESPONSE_LENGTH} characters."})
    with transaction.atomic():
        rights_request = _lock_request(rights_request)
        _check_staff(actor, rights_request.school_id)
        rights_request.response = response
        rights_request.responded_at = timezone.now()
        rights_request.responded_by = actor
        rights_request.save(update_fields=["response", "responded_at", "responded_by"])
        guardian = rights_request.guardian
        emailed = bool(guardian is not None and guardian.email and guardian.archived_at is None)
        # The answer that completes a deletion is the last email: it is queued before the guardian is erased
        # (erasing blanks the address) and carries no link (erasing deletes their links).
        erasing = status == Status.COMPLETED and rights_request.kind == Kind.DELETION
        if status and not erasing:
            _change_status(rights_request=rights_request, status=status, reason="With the answer sent",
                           actor=actor)
        if emailed:
            email_queue(
                template="rights-response",
                to=guardian.email,
                school=rights_request.school,
                related=rights_request,
                context={
                    "guardian": guardian,
                    "rights_request": rights_request,
                    "kind": rights_request.get_kind_display(),
                    "status": Status.COMPLETED.label if erasing else rights_request.get_status_display(),
                    "received_on": school_today(rights_request.school, rights_request.received_at),
                    "response": response,
                    "link": "" if erasing else _rights_link(guardian, None),
                },
            )
        if erasing:
            _change_status(rights_request=rights_request, status=status, reason="With the answer sent",
                           actor=actor)
        audit_log(actor=actor, action="rights.responded", obj=rights_request, school=rights_request.school,
                  data={"emailed": emailed, "status": rights_request.status, "kind": rights_request.kind})
    return Response(rights_request=rights_request, emailed=emailed)


# --- Everything held about a guardian and their children ----------------------------------------------


def _when(value: datetime | None, school: School) -> str | None:
    return timezone.localtime(value, school.tz).isoformat(timespec="seconds") if value else None


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _recorded_by(event: ConsentEvent) -> str:
    # Which member of staff is a staff internal: the parent learns that it was the school.
    if event.recorded_by_id:
        return "the school, from your reply"
    if event.channel == ConsentEvent.Channel.SYSTEM:
        return "Gatehouse, automatically"
    return "you, through your personal link"


def _event(event: ConsentEvent, school: School) -> dict:
    return {
        "date": _when(event.created_at, school),
        "decision": event.get_kind_display(),
        "purpose": event.purpose.name,
        "channel": event.get_channel_display(),
        "received_on": _day(event.received_on),
        "recorded_by": _recorded_by(event),
        "notice_version": event.notice_version,
        "notice_sha256": event.notice_sha256,
        "parental_responsibility_attested": event.attestation,
        "browser": event.user_agent_family,
        "scanned_form_or_email_kept": bool(event.attachment),
    }


def guardian_data_export(*, guardian: Guardian) -> dict:
    """Everything Gatehouse holds about this guardian and, through them, their children, as plain data
    (the JSON download; the PDF is rendered from the same dict).

    Left out on purpose: other guardians (a child's other parent's contact details and decisions are
    theirs, and may be sensitive in separated families), other pupils, and staff internals (who on the
    staff recorded what, their notes, link tokens, which are stored only as hashes anyway). A constant
    number of queries whatever the number of children or events.
    """
    guardian = Guardian.objects.select_related("school__organisation").get(pk=guardian.pk)
    school = guardian.school
    guardianships = list(
        Guardianship.objects.filter(guardian=guardian, pupil__school_id=school.pk)
        .select_related("pupil").order_by("pupil__first_name", "pupil__last_name", "pupil_id")
    )
    pupil_ids = [g.pupil_id for g in guardianships]
    groups: dict[int, list[str]] = {}
    memberships = Group.pupils.through.objects.filter(pupil_id__in=pupil_ids).select_related("group")
    for membership in memberships.order_by("group__name"):
        groups.setdefault(membership.pupil_id, []).append(membership.group.name)
    events: dict[int, list[dict]] = {}
    unlinked: list[dict] = []
    for event in (
        ConsentEvent.objects.filter(guardian=guardian).select_related("purpose", "pupil").order_by("created_at", "id")
    ):
        if event.pupil_id in pupil_ids:
            events.setdefault(event.pupil_id, []).append(_event(event, school))
        else:
            # A child no longer linked to this guardian: their decisions are still data about them.
            unlinked.append({"child": f"{event.pupil.first_name} {event.pupil.last_name}", **_event(event, school)})
    statuses: dict[int, list[dict]] = {}
    for status in ConsentStatus.objects.filter(guardian=guardian).select_related("purpose").order_by("purpose_id"):
        statuses.setdefault(status.pupil_id, []).append({
            "purpose": status.purpose.name,
            "your_answer": status.get_state_display(),
            "renewal_needed": status.renewal_needed,
        })
    children = [
        {
            "first_name": g.pupil.first_name,
            "last_name": g.pupil.last_name,
            "mis_id": g.pupil.mis_id,
            "year_group": g.pupil.year_group,
            "left_on": _day(g.pupil.left_on),
            "groups": groups.get(g.pupil_id, []),
            "your_relationship": g.get_relationship_display(),
            "your_parental_responsibility": g.parental_responsibility,
            "your_current_answers": statuses.get(g.pupil_id, []),
            "your_consent_decisions": events.get(g.pupil_id, []),
        }
        for g in guardianships
    ]
    requests = [
        {
            "reference": r.pk,
            "kind": r.get_kind_display(),
            "child": f"{r.pupil.first_name} {r.pupil.last_name}" if r.pupil else None,
            "received": _when(r.received_at, school),
            "how": r.get_channel_display(),
            "details": r.details,
            "due_on": _day(r.due_on),
            "status": r.get_status_display(),
            "answer": r.response,
            "answered": _when(r.responded_at, school),
        }
        for r in RightsRequest.objects.filter(guardian=guardian).select_related("pupil").order_by("received_at", "id")
    ]
    links = [
        {
            "purpose": link.purpose.name,
            "created": _when(link.created_at, school),
            "usable_to_give_consent_until": _when(link.give_until, school),
            "revoked": _when(link.revoked_at, school),
        }
        for link in GuardianLink.objects.filter(guardian=guardian).select_related("purpose").order_by("created_at")
    ]
    return {
        "format": EXPORT_FORMAT,
        "generated": _when(timezone.now(), school),
        "school": {"name": school.name, "organisation": school.organisation.name,
                   "contact_email": school.contact_email},
        "about_this_copy": (
            "Everything the school holds about you and your children in Gatehouse, the system it uses for "
            "live video lessons. Decisions made by any other parent or carer are theirs and are not included. "
            "For other records the school keeps, ask the school office."
        ),
        "you": {
            "first_name": guardian.first_name,
            "last_name": guardian.last_name,
            "email": guardian.email,
            "phone": guardian.phone,
            "mis_id": guardian.mis_id,
            "on_record_since": _when(guardian.created_at, school),
            "last_changed": _when(guardian.updated_at, school),
            "processing_restricted_since": _when(guardian.processing_restricted_at, school),
        },
        "children": children,
        "decisions_about_children_no_longer_linked_to_you": unlinked,
        "your_requests": requests,
        "your_personal_links": links,
        "emails_sent_to_you": _emails(guardian, school),
    }


def _emails(guardian: Guardian, school: School) -> list[dict]:
    from outbox.models import OutboxMessage

    if not guardian.email:
        return []
    # Subject, date and status only: the bodies carry personal links (and, for invitations, meeting
    # passwords), which a downloaded file must not spread.
    rows = (
        OutboxMessage.objects.filter(school=school, recipient__iexact=guardian.email)
        .only("subject", "created_at", "status").order_by("created_at", "id")
    )
    return [{"date": _when(m.created_at, school), "subject": m.subject, "status": m.get_status_display()}
            for m in rows]


def guardian_data_json(*, guardian: Guardian) -> bytes:
    return json.dumps(guardian_data_export(guardian=guardian), indent=2, ensure_ascii=False).encode()


_ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _for_print(value):
    """The export with its ISO dates written for people ("31 January 2025, 14:05"): JSON is for machines,
    the PDF for reading. The times are already in the school's zone."""
    if isinstance(value, dict):
        return {key: _for_print(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_for_print(item) for item in value]
    if isinstance(value, str) and _ISO_MOMENT.fullmatch(value):
        return date_format(datetime.fromisoformat(value), "j F Y, H:i")
    if isinstance(value, str) and _ISO_DAY.fullmatch(value):
        return date_format(date.fromisoformat(value), "j F Y")
    return value


def guardian_data_pdf(*, guardian: Guardian, export: dict | None = None) -> bytes:
    export = export or guardian_data_export(guardian=guardian)
    school = guardian.school
    return render_pdf("consent/rights/data_pdf.html", {
        "data": _for_print(export), "school": school, "organisation": school.organisation,
    })


@dataclass(frozen=True)
class DataFile:
    content: bytes
    content_type: str
    filename: str


DOWNLOAD_FORMATS = ("json", "pdf")


def guardian_data_download(
    *, guardian: Guardian, fmt: str, actor=None, rights_request: RightsRequest | None = None
) -> DataFile:
    """The copy of everything held, as a file, and the audit entry saying who took it. `actor` is the
    member of staff exporting it for an access request, or None for the guardian through their link."""
    if fmt not in DOWNLOAD_FORMATS:
        raise ValidationError("Choose JSON or PDF.")
    guardian = Guardian.objects.select_related("school__organisation").get(pk=guardian.pk)
    if actor is not None:
        _check_staff(actor, guardian.school_id)
    # Rendered before the transaction: a PDF takes a moment and must not hold the audit chain's lock.
    if fmt == "json":
        content, content_type = guardian_data_json(guardian=guardian), "application/json; charset=utf-8"
    else:
        content, content_type = guardian_data_pdf(guardian=guardian), "application/pdf"
    with transaction.atomic():
        audit_log(
            actor=actor or guardian_actor(guardian),
            action="rights.data_downloaded",
            obj=rights_request or guardian,
            school=guardian.school,
            data={"format": fmt, "guardian_id": guardian.pk,
                  "rights_request": rights_request.pk if rights_request else None},
        )
    stamp = school_today(guardian.school).isoformat()
    return DataFile(content=content, content_type=content_type,
                    filename=f"data-held-{guardian.school.slug}-{stamp}.{fmt}")
