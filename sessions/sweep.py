"""The sweeper (beat, every minute; design.md, "How sending works"): what the database says is owed,
whatever the broker lost, and what the start time overtook.

- Expired leases, a claim at a time: what its progress (`sessions.progress`) says was accepted is recorded
  sent at the moment it was, the row that may have been in flight is sent again and counted as a possible
  duplicate (promise 2), the rows never tried get their attempt back.
- What the start overtook is failed, with an alert; nothing is ever sent after the start.
- Rows whose task seems lost, and retries now due, go back to the broker (`dispatch.deliveries_dispatch`).
- One alert per session when invitations are late ten minutes before its start (promise 3), with how many:
  late, not merely unsent while the normal send runs.

Safe to run twice at once: every step takes its rows with SKIP LOCKED.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Greatest, Now
from django.utils import timezone

from outbox.services import LOST_TASK_AFTER
from schools.audit import audit_log

# The hand-off goes through `dispatch.deliveries_dispatch`, the name the benchmark and the tests replace.
from . import dispatch
from .delivery_steps import deliveries_overtake, delivery_events_record, session_alert_raise
from .models import Delivery, DeliveryEvent, SessionAlert, VideoSession
from .progress import PROGRESS_EVERY, Mark, cache_marks

logger = logging.getLogger(__name__)

Status = Delivery.Status

SWEEP_BATCH_SIZE = 500
# When invitations are late this close to the start, the host is told (once per session).
UNSENT_ALERT_BEFORE = timedelta(minutes=10)
# An invitation still unsent this long after it was due is late: the normal send of a whole session, even
# of thousands, takes far less. Shorter than the shortest lead time, which `UNSENT_ALERT_BEFORE` equals.
LATE_AFTER = timedelta(minutes=5)


@dataclass
class SweepResult:
    dispatched: int = 0
    lease_expired: int = 0
    overtaken: int = 0
    alerted: int = 0


def _sweep_overtaken(limit: int) -> int:
    with transaction.atomic():
        rows = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            # A row being sent is not touched: while its lease runs the mail server may accept it yet (it was
            # claimed in time), and once it has expired `_sweep_expired_leases` finds out whether it did.
            .filter(status__in=Delivery.CLAIMABLE, session__starts_at__lte=Now())
            .values_list("pk", "session_id")[:limit]
        )
        by_session: dict[int, list[int]] = defaultdict(list)
        for pk, session_id in rows:
            by_session[session_id].append(pk)
        count = 0
        for session in VideoSession.objects.filter(pk__in=list(by_session)).select_related("school", "host"):
            count += deliveries_overtake(by_session[session.pk], session)
    return count


def _judge_claim(claim: list, mark: Mark | None) -> tuple[dict[int, datetime | None], list, list]:
    """A dead batch's rows still `sending` (in id order, the order they were sent): those accepted (id → the
    moment of acceptance), those that may have reached the mail server unrecorded, and those never tried.

    Accepted: the rows whose `accepted_at` the database has, and the rows up to the cache's mark, which names
    each one since the database's last record with its moment. With the mark, only the next row may have
    been in flight. Without it (the cache lost it), the rows after the last one accepted may have been
    accepted too, but no more than `PROGRESS_EVERY` of them: the batch records its progress in the database
    before sending on past that many."""
    accepted = {row[0]: row[6] for row in claim if row[6] is not None}
    if mark is not None:
        accepted.update(mark.accepted_at)
        # A mark of old (its last id only), or a gap: accepted before the next known moment.
        for row in claim:
            if row[0] <= mark.last_id and row[0] not in accepted:
                accepted[row[0]] = min((at for pk, at in accepted.items() if pk > row[0] and at is not None),
                                       default=None)
    last = max(accepted, default=0)
    rest = [row for row in claim if row[0] > last]
    window = 1 if mark is not None else PROGRESS_EVERY
    return accepted, rest[:window], rest[window:]


def _sweep_expired_leases(limit: int) -> int:
    """Take back rows whose worker presumably died mid-send, a claim (`lease_token`) at a time.

    A claim's rows are sent in id order, and each accepted message is marked in the shared cache and every
    `PROGRESS_EVERY` in the database (`sessions.progress`) until the batch's end writes them all. So of a
    claim's rows still `sending` (`_judge_claim`): those accepted are recorded sent now, at the moment they
    were accepted, not sent again; the next may have reached the mail server (up to `PROGRESS_EVERY` when the
    cache lost the mark): each is counted as a possible duplicate (promise 2) and its attempt stays spent;
    the others were never tried, and get their attempt back. Rows out of attempts are failed and alerted.
    Rows of a session that has started are left to `_sweep_overtaken`, after their accepted rows are
    recorded."""
    expired = (Delivery.objects.filter(status=Status.SENDING, lease_until__lt=Now())
               .values_list("lease_token", flat=True).distinct())
    tokens = list(expired.order_by("lease_token")[:limit])
    if not tokens:
        return 0
    has_token = Q(lease_token__in=[t for t in tokens if t is not None])
    if None in tokens:
        has_token |= Q(lease_token__isnull=True)
    # Read before the rows are locked, so that no transaction waits on the cache: the marks of an expired
    # lease no longer move (its worker is presumed dead), so reading them first changes nothing.
    marks = cache_marks([token for token in tokens if token is not None])
    with transaction.atomic():
        rows = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(has_token, status=Status.SENDING, lease_until__lt=Now())
            .annotate(db_now=Now())
            .order_by("pk")
            .values_list("pk", "attempts", "session_id", "lease_token", "session__starts_at", "db_now",
                         "accepted_at")
        )
        if not rows:
            return 0
        now = rows[0][5]
        accepted: dict[int, datetime | None] = {}
        maybe, untried = [], []
        by_claim: dict = defaultdict(list)
        for row in rows:
            by_claim[row[3]].append(row)
        for token, claim in by_claim.items():
            claim_accepted, claim_maybe, claim_untried = _judge_claim(claim, marks.get(token))
            accepted.update(claim_accepted)
            maybe += claim_maybe
            untried += claim_untried
        if accepted:
            _sent_after_the_worker_died(accepted, now)
        ahead = {row[0] for row in rows if row[4] > now}
        not_tried = "the worker stopped before trying it; queued again"
        reason = "the worker stopped while sending; the mail server may already have accepted it"
        if untried:
            Delivery.objects.filter(pk__in=[row[0] for row in untried]).update(
                status=Status.RETRY, attempts=F("attempts") - 1, lease_until=None, lease_token=None,
                next_attempt_at=None, dispatched_at=None, reason=not_tried,
            )
            delivery_events_record((row[0], Status.RETRY, not_tried) for row in untried)
        again = [row[0] for row in maybe if row[1] < settings.EMAIL_MAX_ATTEMPTS or row[0] not in ahead]
        final = [(row[0], row[2]) for row in maybe if row[1] >= settings.EMAIL_MAX_ATTEMPTS and row[0] in ahead]
        if again:
            # A started session's rows become retries too, which `_sweep_overtaken` then fails and reports.
            Delivery.objects.filter(pk__in=again).update(
                status=Status.RETRY, possible_duplicate=F("possible_duplicate") + 1, lease_until=None,
                lease_token=None, next_attempt_at=None, dispatched_at=None, reason=reason,
            )
            delivery_events_record((pk, Status.RETRY, reason) for pk in again)
        if final:
            Delivery.objects.filter(pk__in=[pk for pk, _ in final]).update(
                status=Status.FAILED, possible_duplicate=F("possible_duplicate") + 1, lease_until=None,
                lease_token=None, next_attempt_at=None, dispatched_at=None, reason=f"gave up: {reason}",
            )
            delivery_events_record((pk, Status.FAILED, f"gave up: {reason}") for pk, _ in final)
            by_session: dict[int, list[int]] = defaultdict(list)
            for pk, session_id in final:
                by_session[session_id].append(pk)
            for session in VideoSession.objects.filter(pk__in=list(by_session)).select_related("school", "host"):
                session_alert_raise(session=session, kind=SessionAlert.Kind.DELIVERY_FAILED,
                                    delivery_ids=by_session[session.pk],
                                    message=f"An invitation could not be sent: {reason}.")
    for pk in again:
        logger.warning("Invitation %s: lease expired, sending again (possible duplicate)", pk)
    if accepted:
        logger.info("Recorded %s invitation(s) sent from their progress marks after their worker stopped: %s",
                    len(accepted), ", ".join(str(pk) for pk in sorted(accepted)))
    return len(rows)


def _sent_after_the_worker_died(accepted: dict[int, datetime | None], now: datetime) -> None:
    """Rows the mail server accepted (their batch's progress says so, with the moment) whose worker died
    before writing them: recorded sent at that moment, with their event, and one audit entry per session."""
    rows = list(Delivery.objects.filter(pk__in=list(accepted)).select_related("session"))
    for row in rows:
        # Only a mark written before the marks carried their moments has none: then when the sweeper learnt.
        row.status, row.sent_at, row.sent_revision, row.reason = Status.SENT, accepted[row.pk] or now, row.revision, ""
        row.sent_pupil_ids = sorted({*row.sent_pupil_ids, *row.pupil_ids})
        row.lease_until = row.lease_token = row.next_attempt_at = row.dispatched_at = row.accepted_at = None
    Delivery.objects.bulk_update(rows, ["status", "sent_at", "sent_revision", "sent_pupil_ids", "reason",
                                        "lease_until", "lease_token", "next_attempt_at", "dispatched_at",
                                        "accepted_at"])
    recovered = "sent; recorded from the progress mark after the worker stopped"
    delivery_events_record(((row.pk, Status.SENT, recovered) for row in rows),
                           moments={row.pk: row.sent_at for row in rows})
    by_session: dict[int, tuple[VideoSession, list[int]]] = {}
    for row in rows:
        by_session.setdefault(row.session_id, (row.session, []))[1].append(row.pk)
    for session, sent_ids in by_session.values():
        audit_log(actor=None, action="session.invitations_sent", obj=session,
                  data={"deliveries": len(sent_ids), "delivery_ids": sent_ids, "revision": session.revision,
                        "recorded_by": "sweeper"})



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
            transaction.on_commit(lambda: dispatch.deliveries_dispatch(ids))
    return ids


def late_unsent() -> QuerySet[Delivery]:
    """Invitations truly late: not sent, not being sent (a lease running), and due `LATE_AFTER` ago or more.
    Due: at the session's send time, or when the row was last made pending (planned, planned again, or reset
    by a change of the session), whichever is later; a whole session's normal send takes far less."""
    became_pending = (DeliveryEvent.objects.filter(delivery=OuterRef("pk"), status=Status.PENDING).order_by()
                      .values("delivery").annotate(at=Max("at")).values("at"))
    return (Delivery.objects
            .filter(Q(status__in=Delivery.CLAIMABLE) | Q(status=Status.SENDING, lease_until__lt=Now()))
            .annotate(due_at=Greatest("session__send_at", Coalesce(Subquery(became_pending), "created_at")))
            .filter(due_at__lte=Now() - LATE_AFTER))


def _sweep_unsent_near_start() -> int:
    """One alert per session with invitations truly late (`late_unsent`) ten minutes before its start, with
    how many: never while its invitations are being sent as usual, even when the lead time is that short."""
    late = late_unsent()
    sessions = VideoSession.objects.filter(
        status=VideoSession.Status.SCHEDULED, starts_at__gt=Now(), starts_at__lte=Now() + UNSENT_ALERT_BEFORE,
        pk__in=late.values("session_id"),
    ).exclude(alerts__kind=SessionAlert.Kind.UNSENT_NEAR_START).select_related("school", "host")
    alerted = 0
    for session in sessions:
        with transaction.atomic():
            unsent = late.filter(session=session).count()
            if not unsent:
                continue
            minutes = int(LATE_AFTER.total_seconds() // 60)
            alerted += session_alert_raise(
                session=session, kind=SessionAlert.Kind.UNSENT_NEAR_START,
                message=f"{unsent} invitation(s) not sent yet, more than {minutes} minutes after they were due, "
                        "shortly before the start; they are still being tried until the session starts.")
    return alerted


def deliveries_sweep(*, batch_size: int = SWEEP_BATCH_SIZE, max_batches: int = 20) -> SweepResult:
    """Run every minute by beat. Safe to run twice at once: every step claims rows with SKIP LOCKED."""
    result = SweepResult()
    for _ in range(max_batches):
        count = _sweep_expired_leases(batch_size)
        result.lease_expired += count
        if count == 0:
            break
    for _ in range(max_batches):
        count = _sweep_overtaken(batch_size)
        result.overtaken += count
        if count < batch_size:
            break
    for _ in range(max_batches):
        ids = _sweep_due(batch_size)
        result.dispatched += len(ids)
        if len(ids) < batch_size:
            break
    result.alerted = _sweep_unsent_near_start()
    return result
