"""Sending invitations: the planner, the send task's claim and send, the sweeper, and withdrawals.

design.md, "How sending works". The database is the truth; Celery only carries "look at delivery N".

- `deliveries_plan` (beat, every minute): sessions whose `send_at` has come and whose start has not, by
  the database clock; one `Delivery` per eligible guardian (insert-or-ignore on the unique
  (session, guardian)), naming all their children in the session; a send task per batch after commit.
- `delivery_send_batch` (the send task): per id, one short transaction claims the row (FOR UPDATE SKIP
  LOCKED), locks the children's consent rows FOR SHARE and re-checks everything (promise 1); then,
  outside any transaction, one SMTP connection carries the batch; then `sent`, `retry` or `failed`.
  At-least-once, as the outbox: a worker dying between the mail server's accept and our write leads to
  one more copy, counted in `possible_duplicate` (promise 2).
- `deliveries_sweep` (beat, every minute): lost tasks, due retries, expired leases, what the start
  overtook, and one alert when invitations are still unsent ten minutes before the start (promise 3).
- `on_consent_withdrawn`: called by `consent.services` under the consent row's FOR UPDATE lock.

Who is eligible (the planner and the claim use the same rule, `_eligible_children`): a guardian with
parental responsibility, not erased or restricted, with an email address, of a current pupil (not left,
not erased) who is in the session's groups or hand-picked; the guardian's own consent for the session's
purpose is active (given, and not waiting for a renewal whose deadline has passed), and no other guardian
of the child has refused or withdrawn (the purpose's rule: a "no" wins). A guardian who has not answered
gets no link, even when the other parent consented: invitations go only to consenting parents.
"""

import logging
import time
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection, make_msgid
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from consent.models import ConsentState, ConsentStatus, Group, Guardian, Guardianship, Notice, Pupil
from outbox.services import (
    LOST_TASK_AFTER,
    SEND_BATCH_SIZE,
    _batch_budget_seconds,
    _lease,
    _one_line,
    classify_send_error,
    email_queue,
    retry_delay,
    text_engine,
)
from schools.audit import audit_log

from .models import Delivery, DeliveryEvent, SessionAlert, VideoSession

logger = logging.getLogger(__name__)

Status = Delivery.Status

# Sessions the planner takes per transaction, and transactions per run.
PLAN_SESSIONS_PER_BATCH = 20
PLAN_MAX_BATCHES = 50
SWEEP_BATCH_SIZE = 500
# When invitations are still unsent this close to the start, the host is told (once per session).
UNSENT_ALERT_BEFORE = timedelta(minutes=10)
# Meeting passwords are erased this long after the session's end (design.md, retention).
PASSWORD_KEPT_AFTER_END = timedelta(hours=24)

OVERTAKEN_REASON = "the session started before it could be sent"


# ---------------------------------------------------------------------------------------------------
# Eligibility: one rule, read in a constant number of queries for many sessions at once


@dataclass
class Registry:
    """What eligibility needs about a set of pupils, read in bulk (see `_read_registry`)."""

    pupils: dict[int, Pupil] = field(default_factory=dict)  # current pupils only
    guardianships: dict[int, list[Guardianship]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[tuple[int, int, int], tuple[str, bool, int]] = field(default_factory=dict)
    lapse_versions: dict[int, int] = field(default_factory=dict)


def _lapse_versions(purpose_ids: Iterable[int], now: datetime) -> dict[int, int]:
    """Per purpose, the newest material notice version whose renewal deadline has passed (in the
    organisation's time zone): a consent given on an older version and flagged for renewal is no longer
    active, even before the hourly `consent_lapse` task has recorded the lapse. One query."""
    versions: dict[int, int] = {}
    for notice in Notice.objects.filter(
        purpose_id__in=list(purpose_ids), material_change=True, published_at__isnull=False,
        renewal_deadline__isnull=False,
    ).select_related("purpose__organisation"):
        if notice.renewal_deadline < now.astimezone(zoneinfo.ZoneInfo(notice.purpose.organisation.time_zone)).date():
            versions[notice.purpose_id] = max(versions.get(notice.purpose_id, 0), notice.version)
    return versions


def _read_registry(pupil_ids: Iterable[int], purpose_ids: Iterable[int], now: datetime) -> Registry:
    """Four queries, however many pupils and guardians."""
    pupil_ids, purpose_ids = sorted(set(pupil_ids)), sorted(set(purpose_ids))
    registry = Registry()
    registry.pupils = {
        p.pk: p for p in Pupil.objects.filter(pk__in=pupil_ids, left_on__isnull=True, archived_at__isnull=True)
        .only("pk", "first_name", "school_id")
    }
    for guardianship in Guardianship.objects.filter(pupil_id__in=list(registry.pupils)).select_related("guardian"):
        registry.guardianships[guardianship.pupil_id].append(guardianship)
    for guardian_id, pupil_id, purpose_id, state, renewal_needed, version in ConsentStatus.objects.filter(
        pupil_id__in=list(registry.pupils), purpose_id__in=purpose_ids
    ).values_list("guardian_id", "pupil_id", "purpose_id", "state", "renewal_needed", "last_event__notice_version"):
        registry.statuses[(guardian_id, pupil_id, purpose_id)] = (state, renewal_needed, version or 0)
    registry.lapse_versions = _lapse_versions(purpose_ids, now)
    return registry


def _consent_active(registry: Registry, guardian_id: int, pupil_id: int, purpose_id: int) -> bool:
    state, renewal_needed, version = registry.statuses.get((guardian_id, pupil_id, purpose_id), ("none", False, 0))
    if state != ConsentState.GIVEN:
        return False
    return not (renewal_needed and version < registry.lapse_versions.get(purpose_id, 0))


def guardian_may_receive(guardian: Guardian) -> bool:
    return guardian.archived_at is None and guardian.processing_restricted_at is None and bool(guardian.email)


def _eligible_children(registry: Registry, pupil_ids: Iterable[int], purpose_id: int) -> dict[int, list[int]]:
    """guardian id → the children (of `pupil_ids`) for whom that guardian is to be invited."""
    result: dict[int, list[int]] = defaultdict(list)
    for pupil_id in sorted(set(pupil_ids)):
        if pupil_id not in registry.pupils:
            continue  # left or erased
        guardianships = [g for g in registry.guardianships.get(pupil_id, []) if g.guardian.archived_at is None]
        # The purpose's rule: a refusal or withdrawal by any (unerased) guardian wins.
        if any(registry.statuses.get((g.guardian_id, pupil_id, purpose_id), ("none",))[0]
               in (ConsentState.REFUSED, ConsentState.WITHDRAWN) for g in guardianships):
            continue
        for g in guardianships:
            if (g.parental_responsibility and guardian_may_receive(g.guardian)
                    and _consent_active(registry, g.guardian_id, pupil_id, purpose_id)):
                result[g.guardian_id].append(pupil_id)
    return result


def _session_pupils(session_ids: Sequence[int], only_pupils: Iterable[int] | None = None) -> dict[int, set[int]]:
    """session id → pupils in its groups or hand-picked. Two queries."""
    found: dict[int, set[int]] = defaultdict(set)
    through = Group.pupils.through.objects.filter(group__video_sessions__in=session_ids)
    picked = VideoSession.pupils.through.objects.filter(videosession_id__in=session_ids)
    if only_pupils is not None:
        through, picked = through.filter(pupil_id__in=list(only_pupils)), picked.filter(pupil_id__in=list(only_pupils))
    for session_id, pupil_id in through.values_list("group__video_sessions", "pupil_id"):
        found[session_id].add(pupil_id)
    for session_id, pupil_id in picked.values_list("videosession_id", "pupil_id"):
        found[session_id].add(pupil_id)
    return found


def session_gate_reasons(session: VideoSession) -> tuple[str, ...]:
    """Why the session's governance gate is red (empty when green). `sessions.gate` when it is there."""
    try:
        from .gate import gate_for
    except ImportError:  # pragma: no cover - the gate module is built beside this one
        from pia.platforms import platform_status
        from riskassess.services import video_lessons_assessment_status
        from schools.models import SCHOOL_ROLES, Membership

        reasons = [*platform_status(platform=session.platform, school=session.school).reasons,
                   *video_lessons_assessment_status(school=session.school).reasons]
        if not Membership.objects.filter(user_id=session.host_id, school_id=session.school_id,
                                         role__in=sorted(SCHOOL_ROLES)).exists():
            reasons.append("The host is not a member of staff of the school.")
        return tuple(reasons)
    gate = gate_for(session)
    return () if gate.ok else tuple(gate.reasons)


# ---------------------------------------------------------------------------------------------------
# Events and alerts


def _events(deliveries: Iterable[tuple[int, str, str]]) -> None:
    """One `DeliveryEvent` per (delivery id, status, reason), in one query."""
    DeliveryEvent.objects.bulk_create(
        [DeliveryEvent(delivery_id=pk, status=status, reason=reason[:300]) for pk, status, reason in deliveries]
    )


def session_url(session: VideoSession) -> str:
    """The session's page for the host, or the dashboard if the sessions pages are not mounted."""
    try:
        path = reverse("video_sessions:session", kwargs={"pk": session.pk})
    except NoReverseMatch:
        path = reverse("schools:dashboard")
    return settings.SITE_URL + path


def _alert(*, session: VideoSession, kind: str, message: str, delivery_ids: Sequence[int] = ()) -> int:
    """Record alerts (one per delivery, or one for the session) and email the host once about them. Inside
    the caller's transaction. Returns how many alerts were new; nothing is emailed when none is."""
    if delivery_ids:
        existing = set(SessionAlert.objects.filter(session=session, kind=kind, delivery_id__in=list(delivery_ids))
                       .values_list("delivery_id", flat=True))
        new = [SessionAlert(session=session, kind=kind, delivery_id=pk, message=message[:500])
               for pk in delivery_ids if pk not in existing]
        SessionAlert.objects.bulk_create(new, ignore_conflicts=True)
    else:
        # Once per session and kind: lock the session row so two sweepers cannot both add it.
        VideoSession.objects.select_for_update().filter(pk=session.pk).first()
        if SessionAlert.objects.filter(session=session, kind=kind, delivery__isnull=True).exists():
            return 0
        new = [SessionAlert.objects.create(session=session, kind=kind, message=message[:500])]
    if not new:
        return 0
    host = session.host
    if host.email:
        school = session.school
        email_queue(
            template="session-alert",
            to=host.email,
            school=school,
            related=session,
            context={
                "host": host,
                "session": session,
                "kind": SessionAlert.Kind(kind).label,
                "message": message,
                "count": len(new),
                "starts_at": timezone.localtime(session.starts_at, school.tz),
                "link": session_url(session),
            },
        )
    audit_log(actor=None, action="session.alert_raised", obj=session,
              data={"kind": kind, "alerts": len(new), "delivery_ids": list(delivery_ids)[:50]})
    return len(new)


# ---------------------------------------------------------------------------------------------------
# Planning


def _due_sessions():
    """Scheduled sessions whose send time has come and whose start has not, by the database clock."""
    return VideoSession.objects.filter(status=VideoSession.Status.SCHEDULED, send_at__lte=Now(), starts_at__gt=Now())


@dataclass
class PlanResult:
    sessions: int = 0
    created: int = 0
    gate_red: int = 0


def _plan_batch(after: tuple | None, limit: int) -> tuple[PlanResult, tuple | None, list[int]]:
    result = PlanResult()
    now = timezone.now()
    with transaction.atomic():
        sessions_q = (_due_sessions().select_related("school__organisation", "platform", "host")
                      .order_by("send_at", "pk"))
        if after is not None:
            sessions_q = sessions_q.filter(Q(send_at__gt=after[0]) | Q(send_at=after[0], pk__gt=after[1]))
        sessions = list(sessions_q[:limit])
        if not sessions:
            return result, None, []
        result.sessions = len(sessions)
        # The gate is read per session (a few queries each, never per guardian); a red gate plans nothing.
        green = []
        for session in sessions:
            if session_gate_reasons(session):
                result.gate_red += 1
            else:
                green.append(session)
        members = _session_pupils([s.pk for s in green])
        registry = _read_registry((p for ids in members.values() for p in ids), {s.purpose_id for s in green}, now)
        existing = set(Delivery.objects.filter(session__in=green).values_list("session_id", "guardian_id"))
        rows = []
        for session in green:
            for guardian_id, children in _eligible_children(registry, members.get(session.pk, ()),
                                                            session.purpose_id).items():
                if (session.pk, guardian_id) not in existing:
                    rows.append(Delivery(session=session, guardian_id=guardian_id, pupil_ids=children,
                                         revision=session.revision, next_attempt_at=now, dispatched_at=now))
        # Insert-or-ignore: a second planner running at once inserts nothing twice (unique constraint).
        Delivery.objects.bulk_create(rows, ignore_conflicts=True)
        # The rows this run inserted carry its own timestamp (a concurrent planner's rows carry another).
        new = list(Delivery.objects.filter(session__in=green, status=Status.PENDING, dispatched_at=now,
                                           created_at__gte=now).values_list("pk", "session_id"))
        _events((pk, Status.PENDING, "") for pk, _ in new)
        per_session: dict[int, int] = defaultdict(int)
        for _, session_id in new:
            per_session[session_id] += 1
        for session in green:
            if per_session.get(session.pk):
                audit_log(actor=None, action="session.invitations_planned", obj=session,
                          data={"deliveries": per_session[session.pk], "revision": session.revision})
        ids = [pk for pk, _ in new]
        result.created = len(ids)
        if ids:
            transaction.on_commit(lambda: deliveries_dispatch(ids))
    last = sessions[-1]
    return result, (last.send_at, last.pk), ids


def deliveries_plan(*, batch_size: int = PLAN_SESSIONS_PER_BATCH, max_batches: int = PLAN_MAX_BATCHES) -> PlanResult:
    """Create the missing invitations of every due session. Safe to run twice at once."""
    total = PlanResult()
    after = None
    for _ in range(max_batches):
        result, after, _ids = _plan_batch(after, batch_size)
        total.sessions += result.sessions
        total.created += result.created
        total.gate_red += result.gate_red
        if after is None or result.sessions < batch_size:
            break
    return total


def deliveries_dispatch(delivery_ids: Sequence[int]) -> None:
    """Hand ids to the broker in batches. After commit only; if the broker is down, the sweeper catches up."""
    from kombu.exceptions import OperationalError

    from .tasks import deliveries_send

    for start in range(0, len(delivery_ids), SEND_BATCH_SIZE):
        batch = list(delivery_ids[start : start + SEND_BATCH_SIZE])
        try:
            deliveries_send.delay(batch)
        except (OperationalError, OSError):
            logger.warning("Could not hand invitations %s to the broker; the sweeper will send them", batch,
                           exc_info=True)


# ---------------------------------------------------------------------------------------------------
# Claiming: one short transaction per invitation, with every check of promise 1 under the locks


@dataclass
class Claimed:
    delivery: Delivery
    session: VideoSession
    guardian: Guardian
    pupils: list[Pupil]
    withdraw_link: str


def _lock_consent_rows(pupil_ids: Sequence[int], purpose_id: int) -> None:
    """FOR SHARE on every guardian's consent row of these children: a withdrawal (FOR UPDATE on one of
    them) then happens strictly before this claim (which sees it) or strictly after (and cancels or
    alerts). SQLite has no row locks; its write lock, taken at the claim's first write, serialises."""
    assert ConsentStatus._meta.db_table == "consent_consentstatus"  # the table named in the SQL below
    if db_connection.vendor != "postgresql" or not pupil_ids:
        return
    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM consent_consentstatus WHERE purpose_id = %s AND pupil_id = ANY(%s) ORDER BY id FOR SHARE",
            [purpose_id, list(pupil_ids)],
        )


def _skip(delivery: Delivery, reason: str) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(status=Status.SKIPPED, reason=reason[:300], lease_until=None,
                                                   next_attempt_at=None, dispatched_at=None)
    _events([(delivery.pk, Status.SKIPPED, reason)])


def delivery_claim(delivery_id: int, gate_cache: dict | None = None) -> Claimed | None:
    """Take one due invitation for sending, or record why it will not be sent. None if it is not ours to
    send now (gone, taken by another worker, already decided, not yet due, skipped or failed here).

    `gate_cache` keeps each session's gate for one batch (a few seconds): the gate is a property of the
    session, not of the guardian, and a batch is far shorter than any change of PIA or risk assessment."""
    gate_cache = gate_cache if gate_cache is not None else {}
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=delivery_id, status__in=Delivery.CLAIMABLE)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=Now()))
            .select_related("session__school__organisation", "session__platform", "session__host", "guardian")
            .annotate(db_now=Now())
            .first()
        )
        if delivery is None:
            return None
        session, guardian, now = delivery.session, delivery.guardian, delivery.db_now
        if session.status != VideoSession.Status.SCHEDULED:
            _skip(delivery, "the session was cancelled")
            return None
        if session.starts_at <= now:
            _overtake([delivery.pk], session)
            return None
        if session.send_at > now:
            # Moved later since it was planned: wait for the new send time (the sweeper queues it then).
            Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=session.send_at, dispatched_at=None)
            return None
        _lock_consent_rows(delivery.pupil_ids, session.purpose_id)
        if not guardian_may_receive(guardian):
            _skip(delivery, "the parent or carer has no email address, or their record is erased or restricted")
            return None
        if session.pk not in gate_cache:
            gate_cache[session.pk] = session_gate_reasons(session)
        if gate_cache[session.pk]:
            _skip(delivery, "the session may not go ahead: " + " ".join(gate_cache[session.pk]))
            return None
        members = _session_pupils([session.pk], only_pupils=delivery.pupil_ids).get(session.pk, set())
        registry = _read_registry(members, [session.purpose_id], now)
        children = _eligible_children(registry, members, session.purpose_id).get(guardian.pk, [])
        if not children:
            left = not members or not any(p in registry.pupils for p in members)
            _skip(delivery, "the child is no longer in the session" if left else "no active consent")
            return None
        from consent.links import guardian_link_issue

        link = guardian_link_issue(guardian=guardian, purpose=session.purpose)
        delivery.status = Status.SENDING
        delivery.attempts += 1
        delivery.lease_until = now + _lease()
        delivery.recipient = guardian.email
        delivery.pupil_ids = children
        delivery.revision = session.revision
        delivery.message_id = make_msgid(domain=settings.EMAIL_MESSAGE_ID_DOMAIN)
        delivery.save(update_fields=["status", "attempts", "lease_until", "recipient", "pupil_ids", "revision",
                                     "message_id"])
        _events([(delivery.pk, Status.SENDING, "")])
    pupils = sorted((registry.pupils[p] for p in children), key=lambda p: p.first_name)
    return Claimed(delivery=delivery, session=session, guardian=guardian, pupils=pupils, withdraw_link=link)


# ---------------------------------------------------------------------------------------------------
# The email


def invitation_context(claimed: Claimed) -> dict:
    session, school = claimed.session, claimed.session.school
    try:
        from .protocol import effective_protocol, parent_reminders

        reminders, reminders_minimal = parent_reminders(effective_protocol(school)), False
    except ImportError:  # pragma: no cover - the protocol module is built beside this one
        reminders, reminders_minimal = ["An adult must be in the room with your child for the whole session."], True
    names = [p.first_name for p in claimed.pupils]
    starts_at = timezone.localtime(session.starts_at, school.tz)
    # Sent before for an older revision: this email replaces that one, and says what changed.
    replaces_earlier = claimed.delivery.sent_revision is not None
    if replaces_earlier:
        from .changes import revision_changes

        changed = revision_changes(session=session, since_revision=claimed.delivery.sent_revision)
    return {
        "replaces_earlier": replaces_earlier,
        "changed": changed if replaces_earlier else [],
        "site_url": settings.SITE_URL,
        "school": school,
        "organisation": school.organisation,
        "guardian": claimed.guardian,
        "session": session,
        "children": " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0],
        "starts_at": starts_at,
        "ends_at": timezone.localtime(session.ends_at, school.tz),
        "time_zone": school.time_zone,
        "host_name": session.host.get_full_name() or session.host.get_username(),
        "reminders": reminders,
        "reminders_minimal": reminders_minimal,
        "withdraw_link": claimed.withdraw_link,
    }


def invitation_email(claimed: Claimed, connection=None) -> EmailMultiAlternatives:
    from .ics import invitation_ics

    context = invitation_context(claimed)
    subject = _one_line(text_engine().render_to_string("emails/session-invitation-subject.txt", context))
    email = EmailMultiAlternatives(
        subject=subject,
        body=text_engine().render_to_string("emails/session-invitation-body.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[claimed.delivery.recipient],
        headers={"Message-ID": claimed.delivery.message_id, "Auto-Submitted": "auto-generated"},
        connection=connection,
    )
    email.attach_alternative(render_to_string("emails/session-invitation-body.html", context), "text/html")
    email.attach("invitation.ics", invitation_ics(claimed.session), "text/calendar")
    return email


# ---------------------------------------------------------------------------------------------------
# Sending


def _record_sent(claimed: Claimed) -> None:
    delivery = claimed.delivery
    with transaction.atomic():
        # Not conditional on the lease: the server accepted it, so it is sent, whatever the sweeper did.
        updated = Delivery.objects.filter(pk=delivery.pk).exclude(status=Status.SENT).update(
            status=Status.SENT, sent_at=timezone.now(), sent_revision=delivery.revision,
            message_id=delivery.message_id, lease_until=None, next_attempt_at=None, dispatched_at=None, reason="",
        )
        if updated:
            _events([(delivery.pk, Status.SENT, "")])
    logger.info("Sent invitation %s %s for session %s, attempt %s", delivery.pk, delivery.message_id,
                delivery.session_id, delivery.attempts)


def _record_failure(claimed: Claimed, error) -> str:
    delivery, session = claimed.delivery, claimed.session
    final = not error.transient or delivery.attempts >= settings.EMAIL_MAX_ATTEMPTS
    status = Status.FAILED if final else Status.RETRY
    now = timezone.now()
    reason = error.reason if not (final and error.transient) else f"gave up after {delivery.attempts} attempts: " \
        f"{error.reason}"
    with transaction.atomic():
        updated = Delivery.objects.filter(pk=delivery.pk, status=Status.SENDING, attempts=delivery.attempts).update(
            status=status, reason=reason[:300], lease_until=None, dispatched_at=None,
            next_attempt_at=None if final else now + retry_delay(delivery.attempts),
        )
        if updated:
            _events([(delivery.pk, status, reason)])
            if final:
                audit_log(actor=None, action="session.invitation_failed", obj=delivery, school=session.school,
                          data={"session_id": session.pk, "attempts": delivery.attempts, "reason": error.reason})
                _alert(session=session, kind=SessionAlert.Kind.DELIVERY_FAILED, delivery_ids=[delivery.pk],
                       message=f"An invitation could not be sent: {error.reason}.")
    log = logger.error if final else logger.warning
    log("Invitation %s for session %s %s (attempt %s): %s", delivery.pk, session.pk,
        "failed" if final else "will be retried", delivery.attempts, error.reason)
    return status


@dataclass
class SendResult:
    sent: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)


def delivery_send_batch(delivery_ids: Iterable[int]) -> SendResult:
    """Claim and send each invitation over one SMTP connection; the mail server is only ever spoken to
    outside a transaction. At-least-once (see the module docstring)."""
    ids = list(dict.fromkeys(int(pk) for pk in delivery_ids))
    result = SendResult()
    gate_cache: dict = {}
    sessions_sent: dict[int, tuple[VideoSession, list[int]]] = {}
    connection = get_connection(timeout=settings.EMAIL_TIMEOUT)
    opened = False
    started = time.monotonic()
    try:
        for index, pk in enumerate(ids):
            if time.monotonic() - started > _batch_budget_seconds():
                result.left = ids[index:]
                deliveries_dispatch(result.left)
                break
            claimed = delivery_claim(pk, gate_cache)
            if claimed is None:
                result.skipped.append(pk)
                continue
            try:
                if not opened:
                    opened = True
                    connection.open()
                if not connection.send_messages([invitation_email(claimed, connection)]):
                    raise ValueError("the email backend accepted no recipient")
            except Exception as exc:
                error = classify_send_error(exc)
                if not error.expected:
                    logger.exception("Unexpected error sending invitation %s", pk)
                status = _record_failure(claimed, error)
                (result.failed if status == Status.FAILED else result.retry).append(pk)
                if error.connection_broken:
                    result.left = ids[index + 1 :]
                    break
            else:
                _record_sent(claimed)
                result.sent.append(pk)
                sessions_sent.setdefault(claimed.session.pk, (claimed.session, []))[1].append(pk)
    finally:
        if opened:
            connection.close()
        # One audit entry per session and batch, not per message: the audit chain is one lock for everyone,
        # and each invitation's own history is in its DeliveryEvents.
        for session, sent_ids in sessions_sent.values():
            audit_log(actor=None, action="session.invitations_sent", obj=session,
                      data={"deliveries": len(sent_ids), "delivery_ids": sent_ids, "revision": session.revision})
    return result


# ---------------------------------------------------------------------------------------------------
# Sweeping


@dataclass
class SweepResult:
    dispatched: int = 0
    lease_expired: int = 0
    overtaken: int = 0
    alerted: int = 0


def _overtake(delivery_ids: Sequence[int], session: VideoSession) -> int:
    """Mark failed what the start time overtook, with one alert each (and one email to the host)."""
    updated = Delivery.objects.filter(pk__in=list(delivery_ids)).exclude(status__in=Delivery.FINAL).update(
        status=Status.FAILED, reason=OVERTAKEN_REASON, lease_until=None, next_attempt_at=None, dispatched_at=None,
    )
    if updated:
        _events((pk, Status.FAILED, OVERTAKEN_REASON) for pk in delivery_ids)
        _alert(session=session, kind=SessionAlert.Kind.DELIVERY_FAILED, delivery_ids=delivery_ids,
               message=f"An invitation could not be sent: {OVERTAKEN_REASON}.")
    return updated


def _sweep_overtaken(limit: int) -> int:
    with transaction.atomic():
        rows = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status__in=[*Delivery.CLAIMABLE, Status.SENDING], session__starts_at__lte=Now())
            # A row being sent keeps its lease: the mail server may accept it yet (and it was claimed in time).
            .exclude(status=Status.SENDING, lease_until__gt=Now())
            .values_list("pk", "session_id")[:limit]
        )
        by_session: dict[int, list[int]] = defaultdict(list)
        for pk, session_id in rows:
            by_session[session_id].append(pk)
        count = 0
        for session in VideoSession.objects.filter(pk__in=list(by_session)).select_related("school", "host"):
            count += _overtake(by_session[session.pk], session)
    return count


def _sweep_expired_leases(limit: int) -> int:
    """Take back rows whose worker presumably died mid-send: the mail server may have accepted the
    message already, so a retry may duplicate it (counted). Their last attempt spent: failed, alerted."""
    with transaction.atomic():
        rows = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=Status.SENDING, lease_until__lt=Now(), session__starts_at__gt=Now())
            .values_list("pk", "attempts", "session_id")[:limit]
        )
        again = [pk for pk, attempts, _ in rows if attempts < settings.EMAIL_MAX_ATTEMPTS]
        final = [(pk, session_id) for pk, attempts, session_id in rows if attempts >= settings.EMAIL_MAX_ATTEMPTS]
        reason = "the worker stopped while sending; the mail server may already have accepted it"
        if again:
            Delivery.objects.filter(pk__in=again).update(
                status=Status.RETRY, possible_duplicate=F("possible_duplicate") + 1, lease_until=None,
                next_attempt_at=timezone.now(), dispatched_at=None, reason=reason,
            )
            _events((pk, Status.RETRY, reason) for pk in again)
        if final:
            Delivery.objects.filter(pk__in=[pk for pk, _ in final]).update(
                status=Status.FAILED, lease_until=None, next_attempt_at=None, dispatched_at=None,
                reason=f"gave up: {reason}",
            )
            _events((pk, Status.FAILED, f"gave up: {reason}") for pk, _ in final)
            by_session: dict[int, list[int]] = defaultdict(list)
            for pk, session_id in final:
                by_session[session_id].append(pk)
            for session in VideoSession.objects.filter(pk__in=list(by_session)).select_related("school", "host"):
                _alert(session=session, kind=SessionAlert.Kind.DELIVERY_FAILED, delivery_ids=by_session[session.pk],
                       message=f"An invitation could not be sent: {reason}.")
    for pk in again:
        logger.warning("Invitation %s: lease expired, sending again (possible duplicate)", pk)
    return len(rows)


def _sweep_due(limit: int) -> list[int]:
    """Claimable rows whose task seems lost, and retries now due, of sessions still ahead: to the broker."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status__in=Delivery.CLAIMABLE, session__send_at__lte=Now(), session__starts_at__gt=Now())
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=Now()))
            .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lte=now - LOST_TASK_AFTER))
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            Delivery.objects.filter(pk__in=ids).update(dispatched_at=now)
            transaction.on_commit(lambda: deliveries_dispatch(ids))
    return ids


def _sweep_unsent_near_start() -> int:
    """One alert per session whose invitations are still unsent ten minutes before its start."""
    sessions = VideoSession.objects.filter(
        status=VideoSession.Status.SCHEDULED, starts_at__gt=Now(), starts_at__lte=Now() + UNSENT_ALERT_BEFORE,
        deliveries__status__in=[*Delivery.CLAIMABLE, Status.SENDING],
    ).exclude(alerts__kind=SessionAlert.Kind.UNSENT_NEAR_START).distinct().select_related("school", "host")
    alerted = 0
    for session in sessions:
        with transaction.atomic():
            unsent = session.deliveries.filter(status__in=[*Delivery.CLAIMABLE, Status.SENDING]).count()
            alerted += _alert(session=session, kind=SessionAlert.Kind.UNSENT_NEAR_START,
                              message=f"{unsent} invitation(s) still unsent shortly before the start; "
                                      "they are still being tried until the session starts.")
    return alerted


def deliveries_sweep(*, batch_size: int = SWEEP_BATCH_SIZE, max_batches: int = 20) -> SweepResult:
    """Run every minute by beat. Safe to run twice at once: every step claims rows with SKIP LOCKED."""
    result = SweepResult()
    for _ in range(max_batches):
        count = _sweep_overtaken(batch_size)
        result.overtaken += count
        if count < batch_size:
            break
    for _ in range(max_batches):
        count = _sweep_expired_leases(batch_size)
        result.lease_expired += count
        if count < batch_size:
            break
    for _ in range(max_batches):
        ids = _sweep_due(batch_size)
        result.dispatched += len(ids)
        if len(ids) < batch_size:
            break
    result.alerted = _sweep_unsent_near_start()
    return result


# ---------------------------------------------------------------------------------------------------
# Withdrawals (promise 5)


def on_consent_withdrawn(*, guardian_id: int, pupil_id: int, purpose_id: int, state: str) -> None:
    """Called by `consent.services` inside a decision's transaction, under the consent row's FOR UPDATE
    lock, when a consent becomes anything but "given" (withdrawn, refused, lapsed).

    A "no" from any guardian wins, so every guardian's unsent invitations naming this child, for sessions
    of this purpose still ahead, lose the child; an invitation left naming no child is cancelled. Rows a
    claim holds are skipped (SKIP LOCKED, no deadlock with the claim's FOR SHARE): that claim is waiting
    for this transaction and will see the new state. Invitations already sent (or being sent) cannot be
    called back: the host is alerted and emailed once per invitation."""
    reason = {ConsentState.REFUSED: "consent refused", ConsentState.LAPSED: "consent lapsed",
              ConsentState.NONE: "consent superseded by a newer notice"}.get(state, "consent withdrawn")
    ahead = Delivery.objects.filter(session__purpose_id=purpose_id, session__starts_at__gt=Now(),
                                    guardian__guardianships__pupil_id=pupil_id)
    unsent = [
        d for d in ahead.filter(status__in=Delivery.CLAIMABLE).select_for_update(skip_locked=True, of=("self",))
        if pupil_id in d.pupil_ids
    ]
    cancelled, narrowed = [], []
    for delivery in unsent:
        remaining = [p for p in delivery.pupil_ids if p != pupil_id]
        if remaining:
            Delivery.objects.filter(pk=delivery.pk).update(pupil_ids=remaining)
            narrowed.append(delivery.pk)
        else:
            cancelled.append(delivery.pk)
    if cancelled:
        Delivery.objects.filter(pk__in=cancelled).update(status=Status.CANCELLED, reason=reason, lease_until=None,
                                                         next_attempt_at=None, dispatched_at=None)
        _events((pk, Status.CANCELLED, reason) for pk in cancelled)
    if cancelled or narrowed:
        audit_log(actor=None, action="session.invitations_cancelled", obj=None,
                  school=Pupil.objects.select_related("school__organisation").get(pk=pupil_id).school,
                  data={"pupil_id": pupil_id, "guardian_id": guardian_id, "purpose_id": purpose_id, "reason": reason,
                        "cancelled": cancelled, "narrowed": narrowed})
    sent = [d for d in ahead.filter(status__in=[Status.SENT, Status.SENDING]).select_related("session__school",
                                                                                            "session__host")
            if pupil_id in d.pupil_ids]
    if sent:
        # The host needs the first name to know whom not to admit (staff see pupils' first names anyway).
        first_name = Pupil.objects.filter(pk=pupil_id).values_list("first_name", flat=True).first() or "the child"
    for delivery in sent:
        _alert(session=delivery.session, kind=SessionAlert.Kind.WITHDRAWN_AFTER_SEND, delivery_ids=[delivery.pk],
               message=f"The invitation naming {first_name} was already sent; since then: {reason}. Do not "
                       f"admit {first_name} unless consent is given again.")


def invitations_sent_ahead(*, guardian: Guardian, pupil_id: int, purpose_id: int) -> list[VideoSession]:
    """Sessions still ahead for which this guardian's invitation naming this child was already sent: the
    parent's withdrawal page says so (and that the teacher has been told)."""
    rows = Delivery.objects.filter(guardian=guardian, session__purpose_id=purpose_id, session__starts_at__gt=Now(),
                                   status__in=[Status.SENT, Status.SENDING]).select_related("session__school")
    return [d.session for d in rows if pupil_id in d.pupil_ids]


# ---------------------------------------------------------------------------------------------------
# Housekeeping


def session_passwords_erase(*, now: datetime | None = None) -> int:
    """Erase the meeting password 24 hours after each session's end (design.md, retention). Safe to repeat."""
    now = now or timezone.now()
    candidates = VideoSession.objects.filter(password_erased_at__isnull=True,
                                             starts_at__lte=now - PASSWORD_KEPT_AFTER_END).only(
        "pk", "starts_at", "duration_minutes", "school_id")
    due = [s.pk for s in candidates if s.ends_at + PASSWORD_KEPT_AFTER_END <= now]
    if not due:
        return 0
    with transaction.atomic():
        erased = VideoSession.objects.filter(pk__in=due, password_erased_at__isnull=True).update(
            password="", password_erased_at=now)
        audit_log(actor=None, action="session.passwords_erased", obj=None, data={"sessions": erased})
    return erased
