"""Consent requests: ask every guardian who has not answered, then remind them, a capped number of times.

Who is asked. A guardian with an email address and parental responsibility for at least one child on roll
at the school (in the chosen group, or anywhere in the school) for whom *their own* decision is missing,
lapsed, or given on an older notice that needs renewing. A refusal or a withdrawal is an answer. Their one
email covers every such child of theirs at the school, by first name, with a fresh personal link (the
parent page lets them decide for each child).

The record. One `ConsentRequest` per guardian and notice version: the first email, then the reminders.
Every email is an outbox message related to it, so each guardian's delivery status shows on the requests
page. Sending twice never doubles: a guardian with an open request for the current notice is skipped.

Reminders. `consent_reminders_send` (hourly) claims due requests with `FOR UPDATE SKIP LOCKED`, in
bounded batches of one short transaction each: the reminder's outbox row and the request's next due time
are written together, so each due reminder is queued at most once even when two runs overlap (the
outbox then delivers it at least once). It closes a request when the guardian has answered for every
child, when the purpose's cap is reached, or when it is no longer needed (a newer notice was published,
the children left, the address was removed). Due rows are found by comparing times, never exact dates.
"""

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Case, CharField, Count, Exists, F, Max, OuterRef, Q, QuerySet, TextChoices, Value, When
from django.utils import timezone

from outbox.models import OutboxMessage
from outbox.services import email_queue
from schools.audit import audit_log
from schools.models import Role, School
from schools.scope import build_scope

from .links import guardian_link_issue
from .models import ConsentRequest, ConsentState, ConsentStatus, Group, Guardian, Guardianship, Notice, Purpose

# Who sends requests and reads the requests page: the people who read the outbox and fix addresses. The
# page shows parents' addresses with their delivery failures, so teachers, the DPO and the SIRO do not
# see it (the DPO follows the requests in the audit trail and consent coverage on the registry pages).
REQUEST_ROLES = frozenset({Role.HEADTEACHER, Role.OFFICE, Role.ORG_ADMIN})

# A guardian's own decision that answers the request (unless it needs renewing). "No answer", "lapsed"
# and a consent given on an older notice that must be renewed leave the question open.
SETTLED_STATES = (ConsentState.GIVEN, ConsentState.REFUSED, ConsentState.WITHDRAWN)

# Guardians per batch inside one send (bounds the IN lists and the memory, not the transaction).
SEND_BATCH_SIZE = 500
# Requests per reminder transaction, transactions per run, and a time budget per run that keeps the
# hourly task well inside the Celery time limit. A backlog drains over the following runs.
REMINDER_BATCH_SIZE = 200
REMINDER_MAX_BATCHES = 25
REMINDER_TIME_BUDGET_SECONDS = 60.0

RELATED_TYPE = ConsentRequest._meta.label_lower
Closed = ConsentRequest.Closed


class RequestStatus(TextChoices):
    """Where a guardian stands for the current notice, as the requests page counts and filters them."""

    NOT_ASKED = "not_asked", "Not yet asked"
    WAITING = "waiting", "Asked, waiting"
    EXHAUSTED = "exhausted", "Reminders exhausted"
    NO_EMAIL = "no_email", "No email address"
    # They asked the school to stop using their data (a completed suppression request): never emailed.
    RESTRICTED = "restricted", "Data restricted"
    ANSWERED = "answered", "Answered"


# --- Who has not answered: SQL, a constant number of queries however many guardians ------------------


def _concerned_guardianships(*, school: School | None = None, group: Group | None = None) -> QuerySet:
    """Links with parental responsibility to children on roll (at `school`, else at the guardian's own)."""
    rows = Guardianship.objects.filter(
        parental_responsibility=True, pupil__left_on__isnull=True, pupil__archived_at__isnull=True
    )
    rows = rows.filter(pupil__school=school) if school is not None else rows.filter(pupil__school=F("guardian__school"))
    if group is not None:
        rows = rows.filter(pupil__groups=group)
    return rows


def _settled(purpose: Purpose) -> Exists:
    """For a Guardianship row: has this guardian answered for this child (an answer that needs no renewal)?"""
    return Exists(
        ConsentStatus.objects.filter(
            guardian=OuterRef("guardian"), pupil=OuterRef("pupil"), purpose=purpose,
            state__in=SETTLED_STATES, renewal_needed=False,
        )
    )


def guardians_with_request_status(
    *, school: School, purpose: Purpose, notice: Notice | None, group: Group | None = None
) -> QuerySet:
    """The school's guardians with parental responsibility for a child on roll (in `group`), each annotated
    with `request_status` (a `RequestStatus`) for `notice`. One query to list, filter or count."""
    concerned = _concerned_guardianships(school=school, group=group).filter(guardian=OuterRef("pk"))
    unanswered = concerned.filter(~_settled(purpose))
    requests = ConsentRequest.objects.filter(guardian=OuterRef("pk"), notice=notice)
    return (
        Guardian.objects.filter(school=school, archived_at__isnull=True)
        .filter(Exists(concerned))
        .annotate(
            request_status=Case(
                When(~Exists(unanswered), then=Value(RequestStatus.ANSWERED)),
                When(processing_restricted_at__isnull=False, then=Value(RequestStatus.RESTRICTED)),
                When(email="", then=Value(RequestStatus.NO_EMAIL)),
                When(Exists(requests.filter(closed_at__isnull=True)), then=Value(RequestStatus.WAITING)),
                When(Exists(requests.filter(closed_reason=Closed.CAP_REACHED)), then=Value(RequestStatus.EXHAUSTED)),
                default=Value(RequestStatus.NOT_ASKED),
                output_field=CharField(),
            )
        )
    )


def request_status_counts(guardians: QuerySet) -> dict[str, int]:
    """How many guardians of `guardians_with_request_status` stand where: one query."""
    counts = {status.value: 0 for status in RequestStatus}
    for row in guardians.order_by().values("request_status").annotate(n=Count("pk")):
        counts[row["request_status"]] = row["n"]
    counts["total"] = sum(counts.values())
    return counts


def unanswered_counts_by_school(*, school_ids: Iterable[int], purposes: Iterable[Purpose]) -> dict[int, dict[str, int]]:
    """school id → how many of its guardians (with parental responsibility for a child on roll) were not yet
    asked, are waiting, or have had every reminder, for the current notice of their organisation's purpose.
    One query per purpose (one per organisation), however many schools: the home pages' figures."""
    result: dict[int, dict[str, int]] = {}
    for purpose in purposes:
        notice = purpose.current_notice()
        concerned = _concerned_guardianships().filter(guardian=OuterRef("pk"))
        requests = ConsentRequest.objects.filter(guardian=OuterRef("pk"), notice=notice)
        rows = (
            Guardian.objects.filter(school_id__in=list(school_ids), school__organisation_id=purpose.organisation_id,
                                    archived_at__isnull=True, processing_restricted_at__isnull=True)
            .exclude(email="")
            .filter(Exists(concerned.filter(~_settled(purpose))))
            .annotate(request_status=Case(
                When(Exists(requests.filter(closed_at__isnull=True)), then=Value(RequestStatus.WAITING)),
                When(Exists(requests.filter(closed_reason=Closed.CAP_REACHED)), then=Value(RequestStatus.EXHAUSTED)),
                default=Value(RequestStatus.NOT_ASKED), output_field=CharField(),
            ))
            .order_by().values("school_id", "request_status").annotate(n=Count("pk"))
        )
        for row in rows:
            counts = result.setdefault(row["school_id"], {RequestStatus.NOT_ASKED: 0, RequestStatus.WAITING: 0,
                                                          RequestStatus.EXHAUSTED: 0})
            counts[row["request_status"]] = row["n"]
    return result


@dataclass(frozen=True)
class Child:
    pupil_id: int
    first_name: str
    last_name: str
    needs_answer: bool
    # Consented on an older notice that was changed materially: asked to read it and answer again.
    renewal: bool


def children_of(guardian_ids: Iterable[int], purpose: Purpose) -> dict[int, list[Child]]:
    """Each guardian's children on roll at the guardian's school, with parental responsibility, and
    whether each still needs an answer: one query for the whole batch."""
    renewing = Exists(
        ConsentStatus.objects.filter(
            guardian=OuterRef("guardian"), pupil=OuterRef("pupil"), purpose=purpose,
            state=ConsentState.GIVEN, renewal_needed=True,
        )
    )
    rows = (
        _concerned_guardianships()
        .filter(guardian_id__in=list(guardian_ids))
        .annotate(settled=_settled(purpose), renewing=renewing)
        .order_by("pupil__first_name", "pupil_id")
        .values_list("guardian_id", "pupil_id", "pupil__first_name", "pupil__last_name", "settled", "renewing")
    )
    found: dict[int, list[Child]] = defaultdict(list)
    for guardian_id, pupil_id, first_name, last_name, settled, renewing in rows:
        found[guardian_id].append(Child(pupil_id, first_name, last_name, needs_answer=not settled, renewal=renewing))
    return found


def first_names(children: Sequence[Child]) -> list[str]:
    """First names, as a parent calls their children; the full name where two share a first name."""
    shared = {c.first_name for c in children if sum(d.first_name == c.first_name for d in children) > 1}
    return [f"{c.first_name} {c.last_name}" if c.first_name in shared else c.first_name for c in children]


def names_in_words(names: Sequence[str]) -> str:
    """"Ada", "Ada and Ben", "Ada, Ben and Cy": how a parent would say it."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


# --- Sending the requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestsPlan:
    """What a send would do now: shown on the confirmation page, from the same query the send uses."""

    notice: Notice | None
    counts: dict[str, int]
    include_exhausted: bool

    @property
    def emails(self) -> int:
        if self.notice is None:
            return 0
        extra = self.counts[RequestStatus.EXHAUSTED] if self.include_exhausted else 0
        return self.counts[RequestStatus.NOT_ASKED] + extra


def consent_requests_plan(
    *, school: School, purpose: Purpose, group: Group | None = None, include_exhausted: bool = False
) -> RequestsPlan:
    notice = purpose.current_notice()
    guardians = guardians_with_request_status(school=school, purpose=purpose, notice=notice, group=group)
    return RequestsPlan(notice=notice, counts=request_status_counts(guardians), include_exhausted=include_exhausted)


@dataclass(frozen=True)
class RequestsSent:
    sent: int
    already_asked: int
    exhausted_skipped: int
    no_email: int
    answered: int

    def __str__(self) -> str:
        parts = [f"{self.sent} sent"]
        if self.already_asked:
            parts.append(f"{self.already_asked} already asked (reminders are scheduled)")
        if self.exhausted_skipped:
            parts.append(f"{self.exhausted_skipped} not emailed again (all their reminders were sent)")
        if self.no_email:
            parts.append(f"{self.no_email} without an email address")
        return ", ".join(parts)


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def consent_requests_send(
    *,
    school: School,
    purpose: Purpose,
    group: Group | None = None,
    actor,
    include_exhausted: bool = False,
) -> RequestsSent:
    """Email every guardian of the school (or of `group`) who has not answered the current notice: one
    email each, covering all their children at the school, with a fresh personal link; one
    `ConsentRequest` each, its first reminder due after the purpose's interval. Guardians already asked
    about this notice and still open are skipped, and so are those whose reminders ran out unless
    `include_exhausted`. One transaction; the emails leave after commit, through the outbox."""
    with transaction.atomic():
        if not build_scope(actor).roles_at_school(school.pk) & REQUEST_ROLES:
            raise PermissionDenied("Only the office or the headteacher of this school can send consent requests.")
        if purpose.organisation_id != school.organisation_id:
            raise ValidationError("This consent belongs to another organisation.")
        if group is not None and group.school_id != school.pk:
            raise ValidationError("This group belongs to another school.")
        # FOR NO KEY UPDATE on the purpose: serialises sends with each other and with `notice_publish`
        # (which locks it FOR UPDATE), so the notice read next stays current until we commit and two
        # sends never create the same request; parents' decisions (a FOR KEY SHARE) are not blocked.
        purpose = Purpose.objects.select_for_update(no_key=True).get(pk=purpose.pk)
        notice = purpose.current_notice()
        if notice is None:
            raise ValidationError(
                "The consent notice has not been published yet: publish the letter before asking parents."
            )
        guardians = guardians_with_request_status(school=school, purpose=purpose, notice=notice, group=group)
        counts = request_status_counts(guardians)
        wanted = [RequestStatus.NOT_ASKED] + ([RequestStatus.EXHAUSTED] if include_exhausted else [])
        guardian_ids = list(guardians.filter(request_status__in=wanted).order_by("pk").values_list("pk", flat=True))
        now = timezone.now()
        sent = 0
        for batch in _chunks(guardian_ids, SEND_BATCH_SIZE):
            sent += _send_batch(batch, school=school, purpose=purpose, notice=notice, actor=actor, now=now)
        result = RequestsSent(
            sent=sent,
            already_asked=counts[RequestStatus.WAITING],
            exhausted_skipped=0 if include_exhausted else counts[RequestStatus.EXHAUSTED],
            no_email=counts[RequestStatus.NO_EMAIL],
            answered=counts[RequestStatus.ANSWERED],
        )
        audit_log(
            actor=actor,
            action="consent.requests_sent",
            obj=notice,
            school=school,
            data={
                "purpose_id": purpose.pk,
                "notice_version": notice.version,
                "group_id": group.pk if group else None,
                "group": group.name if group else "whole school",
                "sent": result.sent,
                "already_asked": result.already_asked,
                "asked_again_after_reminders": counts[RequestStatus.EXHAUSTED] if include_exhausted else 0,
                "not_emailed_reminders_exhausted": result.exhausted_skipped,
                "no_email_address": result.no_email,
                "already_answered": result.answered,
            },
        )
    return result


def _send_batch(
    guardian_ids: Sequence[int], *, school: School, purpose: Purpose, notice: Notice, actor, now: datetime
) -> int:
    guardians = Guardian.objects.in_bulk(list(guardian_ids))
    children = children_of(guardian_ids, purpose)
    existing = {r.guardian_id: r for r in ConsentRequest.objects.filter(guardian_id__in=guardian_ids, notice=notice)}
    next_reminder_at = now + timedelta(days=purpose.reminder_interval_days)
    requested_by = actor if getattr(actor, "is_authenticated", False) else None
    to_ask = [gid for gid in guardian_ids if any(c.needs_answer for c in children.get(gid, ()))]
    fresh = dict(created_at=now, last_sent_at=now, reminders_sent=0, next_reminder_at=next_reminder_at,
                 closed_at=None, closed_reason="", requested_by=requested_by)
    new = [
        ConsentRequest(guardian_id=gid, purpose=purpose, notice=notice, **fresh)
        for gid in to_ask if gid not in existing
    ]
    ConsentRequest.objects.bulk_create(new)
    # Asked about this notice before and closed (answered, then a new child joined; or every reminder
    # sent and staff chose to ask again): the same row starts over, as the unique constraint wants.
    again = [existing[gid] for gid in to_ask if gid in existing]
    for request in again:
        for field, value in fresh.items():
            setattr(request, field, value)
    ConsentRequest.objects.bulk_update(again, list(fresh))
    for request in new + again:
        _request_email_queue(
            request=request, guardian=guardians[request.guardian_id], school=school, purpose=purpose,
            notice=notice, children=children[request.guardian_id], template="consent-request",
        )
    return len(new) + len(again)


def _request_email_queue(
    *, request: ConsentRequest, guardian: Guardian, school: School, purpose: Purpose, notice: Notice | None,
    children: list[Child], template: str,
) -> OutboxMessage:
    """The request or a reminder: the children still to answer for, by first name, and a fresh link."""
    to_answer = [c for c in children if c.needs_answer]
    names = dict(zip((c.pupil_id for c in to_answer), first_names(to_answer), strict=True))
    return email_queue(
        template=template,
        to=guardian.email,
        school=school,
        related=request,
        context={
            "guardian": guardian,
            "purpose": purpose,
            "children": list(names.values()),
            "children_names": names_in_words(list(names.values())),
            "renewal_names": names_in_words([names[c.pupil_id] for c in to_answer if c.renewal]),
            "renewal_deadline": (
                notice.renewal_deadline if notice is not None and any(c.renewal for c in to_answer) else None
            ),
            "request": request,
            "first_sent_on": timezone.localtime(request.created_at, school.tz),
            "reminder_number": request.reminders_sent + 1,
            "max_reminders": purpose.max_reminders,
            "link": guardian_link_issue(guardian=guardian, purpose=purpose),
        },
    )


# --- Reminders -----------------------------------------------------------------------------------------


def consent_reminders_send(*, now: datetime) -> int:
    """Remind the guardians whose request is due and who still have not answered; close the requests that
    are done. Bounded: at most REMINDER_MAX_BATCHES batches or REMINDER_TIME_BUDGET_SECONDS per run.
    Returns how many reminders were queued."""
    started = time.monotonic()
    reminded = 0
    for _ in range(REMINDER_MAX_BATCHES):
        claimed, queued = _reminder_batch(now=now)
        reminded += queued
        if claimed < REMINDER_BATCH_SIZE or time.monotonic() - started > REMINDER_TIME_BUDGET_SECONDS:
            break
    return reminded


def _current_versions(purpose_ids: Iterable[int]) -> dict[int, int]:
    rows = (
        Notice.objects.filter(purpose_id__in=list(purpose_ids), published_at__isnull=False)
        .values("purpose_id").annotate(latest=Max("version")).values_list("purpose_id", "latest")
    )
    return dict(rows)


def _reminder_batch(*, now: datetime) -> tuple[int, int]:
    """One transaction: claim up to a batch of due (or superseded) open requests, skipping rows another run
    holds, and remind or close each. Returns (rows claimed, reminders queued)."""
    superseded = Notice.objects.filter(
        purpose=OuterRef("purpose"), published_at__isnull=False, version__gt=OuterRef("notice__version")
    )
    with transaction.atomic():
        due = list(
            ConsentRequest.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(closed_at__isnull=True)
            .filter(Q(next_reminder_at__lte=now) | Exists(superseded))
            .select_related("guardian__school__organisation", "purpose", "notice")
            .order_by("next_reminder_at", "pk")[:REMINDER_BATCH_SIZE]
        )
        if not due:
            return 0, 0
        current = _current_versions({r.purpose_id for r in due})
        children: dict[tuple[int, int], list[Child]] = {}
        for purpose_id in {r.purpose_id for r in due}:
            requests = [r for r in due if r.purpose_id == purpose_id]
            for guardian_id, found in children_of([r.guardian_id for r in requests], requests[0].purpose).items():
                children[(guardian_id, purpose_id)] = found
        reminded: list[ConsentRequest] = []
        closed: list[ConsentRequest] = []
        for request in due:
            reason = _close_reason(request, current, children.get((request.guardian_id, request.purpose_id), []))
            if reason:
                request.closed_at, request.closed_reason, request.next_reminder_at = now, reason, None
                closed.append(request)
                continue
            guardian = request.guardian
            _request_email_queue(
                request=request, guardian=guardian, school=guardian.school, purpose=request.purpose,
                notice=request.notice, children=children[(request.guardian_id, request.purpose_id)],
                template="consent-reminder",
            )
            request.reminders_sent += 1
            request.last_sent_at = now
            request.next_reminder_at = now + timedelta(days=request.purpose.reminder_interval_days)
            reminded.append(request)
        ConsentRequest.objects.bulk_update(reminded, ["reminders_sent", "last_sent_at", "next_reminder_at"])
        ConsentRequest.objects.bulk_update(closed, ["closed_at", "closed_reason", "next_reminder_at"])
        _audit_batch(reminded, closed)
    return len(due), len(reminded)


def _close_reason(request: ConsentRequest, current_versions: dict[int, int], children: list[Child]) -> str:
    """Why this request needs no reminder any more, or "" to send one."""
    guardian = request.guardian
    if request.notice.version < current_versions.get(request.purpose_id, 0):
        # The guardian is asked about the new version by the next send, which the page counts as "not yet asked".
        return Closed.NO_LONGER_NEEDED
    if guardian.archived_at is not None or guardian.processing_restricted_at is not None:
        return Closed.NO_LONGER_NEEDED
    if not guardian.email or not children:
        return Closed.NO_LONGER_NEEDED
    if not any(c.needs_answer for c in children):
        return Closed.ANSWERED
    if request.reminders_sent >= request.purpose.max_reminders:
        return Closed.CAP_REACHED
    return ""


def _audit_batch(reminded: list[ConsentRequest], closed: list[ConsentRequest]) -> None:
    """One entry per school and batch, naming the requests, rather than one per guardian: the emails
    themselves are traced per guardian in the outbox (related to each request), and a nightly backlog
    of thousands of reminders would otherwise bury the school's audit trail."""
    by_school: dict[int, tuple[School, list, list]] = {}
    for request in reminded:
        by_school.setdefault(request.guardian.school_id, (request.guardian.school, [], []))[1].append(request)
    for request in closed:
        by_school.setdefault(request.guardian.school_id, (request.guardian.school, [], []))[2].append(request)
    for school, sent, done in by_school.values():
        if sent:
            audit_log(
                actor=None, action="consent.reminder_sent", obj=school, school=school,
                data={"reminders": len(sent), "request_ids": sorted(r.pk for r in sent)},
            )
        if done:
            reasons: dict[str, list[int]] = defaultdict(list)
            for request in done:
                reasons[request.closed_reason].append(request.pk)
            audit_log(
                actor=None, action="consent.requests_closed", obj=school, school=school,
                data={"closed": len(done), **{reason: sorted(ids) for reason, ids in reasons.items()}},
            )


# --- Reading: the rows of the requests page and a guardian's panel --------------------------------------

DELIVERY: dict[str, tuple[str, str]] = {
    OutboxMessage.Status.QUEUED: ("Queued", "text-bg-light border"),
    OutboxMessage.Status.SENDING: ("Sending", "text-bg-info"),
    OutboxMessage.Status.SENT: ("Sent", "text-bg-success"),
    OutboxMessage.Status.RETRY: ("Retrying", "text-bg-warning"),
    OutboxMessage.Status.FAILED: ("Failed", "text-bg-danger"),
}
STATUS_BADGES: dict[str, str] = {
    RequestStatus.NOT_ASKED: "text-bg-light border",
    RequestStatus.WAITING: "text-bg-info",
    RequestStatus.EXHAUSTED: "text-bg-warning",
    RequestStatus.NO_EMAIL: "text-bg-danger",
    RequestStatus.RESTRICTED: "text-bg-secondary",
    RequestStatus.ANSWERED: "text-bg-success",
}
MESSAGE_FIELDS = ("id", "related_id", "template", "recipient", "status", "attempts", "last_error",
                  "possible_duplicate", "created_at", "sent_at", "next_attempt_at")


@dataclass(frozen=True)
class Delivery:
    """One email of a request, as staff see it: never its body (it holds the parent's link)."""

    message: OutboxMessage

    @property
    def label(self) -> str:
        return DELIVERY[self.message.status][0]

    @property
    def css(self) -> str:
        return DELIVERY[self.message.status][1]

    @property
    def kind(self) -> str:
        return "Reminder" if self.message.template == "consent-reminder" else "Request"


def _deliveries(request_ids: Iterable[int]) -> dict[int, list[Delivery]]:
    """Every email of these requests, newest first, in one query."""
    found: dict[int, list[Delivery]] = defaultdict(list)
    messages = (
        OutboxMessage.objects.filter(related_type=RELATED_TYPE, related_id__in=[str(pk) for pk in request_ids])
        .only(*MESSAGE_FIELDS).order_by("-created_at", "-id")
    )
    for message in messages:
        found[int(message.related_id)].append(Delivery(message))
    return found


@dataclass(frozen=True)
class RequestRow:
    guardian: Guardian
    status: str
    status_label: str
    status_css: str
    children: list[Child]
    request: ConsentRequest | None
    latest: Delivery | None
    emails: int


def request_rows(guardians: Sequence[Guardian], purpose: Purpose) -> list[RequestRow]:
    """The rows of one page of the requests list: three queries, whatever the page size."""
    guardian_ids = [g.pk for g in guardians]
    children = children_of(guardian_ids, purpose)
    latest_request: dict[int, ConsentRequest] = {}
    for request in (
        ConsentRequest.objects.filter(guardian_id__in=guardian_ids, purpose=purpose)
        .select_related("notice").order_by("guardian_id", "-created_at", "-pk")
    ):
        latest_request.setdefault(request.guardian_id, request)
    deliveries = _deliveries(r.pk for r in latest_request.values())
    rows = []
    for guardian in guardians:
        request = latest_request.get(guardian.pk)
        emails = deliveries.get(request.pk, []) if request else []
        status = guardian.request_status
        rows.append(RequestRow(
            guardian=guardian, status=status, status_label=RequestStatus(status).label,
            status_css=STATUS_BADGES[status], children=children.get(guardian.pk, []), request=request,
            latest=emails[0] if emails else None, emails=len(emails),
        ))
    return rows


def guardian_requests_panel(*, guardian: Guardian, purpose: Purpose | None) -> dict:
    """Context for `consent/requests/_guardian_panel.html` on a guardian's page: their requests, newest
    first, each with every email and its delivery status. Two queries."""
    if purpose is None:
        return {"consent_requests": []}
    requests = list(
        ConsentRequest.objects.filter(guardian=guardian, purpose=purpose).select_related("notice", "purpose")
        .order_by("-created_at", "-pk")
    )
    deliveries = _deliveries(r.pk for r in requests)
    return {"consent_requests": [{"request": r, "emails": deliveries.get(r.pk, [])} for r in requests]}
