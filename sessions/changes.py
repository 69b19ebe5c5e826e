"""What happens to invitations when a session is scheduled, changed or cancelled, or its gate turns red.

The rules (the state machine test in tests/sessions/test_state_machine.py relies on them):

Scheduling (`sessions_plan_soon`, from `session_schedule`): after the scheduling transaction commits, if
any new session is already due (its `send_at` has come, e.g. the default 60-minute lead for a session
starting in 15 minutes), the planner task is queued at once; so too after `session_update` moves a session (or changes
its lead time) into its send window. A broker failure is logged and tolerated: beat runs the planner every
minute.

Cancelling (`deliveries_cancel`, inside `session_cancel`'s transaction, the session row locked FOR NO KEY
UPDATE, as in `session_update`: rows that merely reference it, such as alerts, are not blocked):
- every claimable row (pending, retry) becomes `cancelled`, reason "the session was cancelled", with a
  `DeliveryEvent`. These rows are locked FOR UPDATE (no SKIP LOCKED): a claim holding one is waited for, and
  the row is then seen as `sending`;
- every guardian already invited (the row `sent`, or `sending`: the mail server may have accepted it, or
  any row with a `sent_revision`: an earlier revision was sent, whatever became of the fresh one) gets
  ONE "session cancelled" email through the outbox: school, title, the local time cancelled with the time
  zone, whom to contact. Never the link, the password or the staff's reason;
- audited (counts only), in the `session.cancelled` entry.
A row `sending` when the session is cancelled may still be recorded `sent` by its worker: its guardian has
been told of the cancellation already (the email above).

Changing (`deliveries_revise`, inside `session_update`'s transaction when the revision went up, i.e. the
start time, link, meeting ID or password changed, or when the lead time changed; and
`deliveries_stale_revisions`, the per-minute sweep):
- rows `sent` for an older revision (`sent_revision < session.revision`):
  - if the session's new `send_at` has come: back to `pending` with `revision = session.revision`,
    `attempts = 0`, `next_attempt_at` empty (due at once, by the database clock), `dispatched_at = now`,
    handed to the send task after commit
    (`sent_revision` is kept: it makes the email say that it replaces the earlier one). The fresh invitation
    goes through the claim's usual checks (consent, membership, gate, address, start) and says that it replaces
    the earlier one and what changed (`revision_changes`);
  - if the new `send_at` is still ahead: back to `pending` with `revision = session.revision`,
    `next_attempt_at = send_at`, `dispatched_at = None` (the sweeper queues the fresh invitation at the lead
    time); and if the start time differs from the one the guardian was told, a "session moved" email now
    (old time, new time, "a fresh invitation with the link and password N minutes before"; never the link
    or the password);
- claimable rows (pending, retry): `next_attempt_at` follows the new `send_at` when it is ahead (the claim
  refuses rows whose session's `send_at` is ahead anyway); those among them already invited once (waiting
  for a fresh invitation after an earlier change) get the "session moved" email when this change moved the
  start and the new `send_at` is ahead; when it has come, rows waiting for a later send time go now;
- rows `failed`, `skipped`, `cancelled`, `sending` are left alone; a row `sending` during the change is
  recorded `sent` with the old revision by its worker, and the sweep then treats it as above;
- the sweep takes rows with SKIP LOCKED, only of scheduled sessions not yet started, and their sessions with
  SKIP LOCKED too (a session being changed is left to that change), in batches with a constant number of
  queries per batch (plus one email per guardian told of a move, and one audit entry per session).
Changes after the start are refused by `session_update`; nothing is ever re-sent after the start (the
claim refuses it). Invariants: at most one `Delivery` per (session, guardian); at most one invitation per
(session, guardian, revision) except the counted `possible_duplicate`; every re-send passes the claim.

The gate turning red or green again after scheduling, and a lesson still red at its start: `sessions.gate_watch`.
"""

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import Now
from django.utils import timezone
from kombu.exceptions import OperationalError

from outbox.services import email_queue
from schools.audit import audit_log

from .delivery_steps import (
    deliveries_dispatch,
    deliveries_plan_queue,
    delivery_events_record,
)
from .eligibility import eligible_children, guardian_may_receive, read_registry, session_pupils
from .guardian_notices import guardian_email_context, guardians_tell, invited_guardians
from .models import Delivery, VideoSession
from .revisions import starts_told

logger = logging.getLogger(__name__)

Status = Delivery.Status

CANCELLED_REASON = "the session was cancelled"
RESEND_REASON = "the session changed: a fresh invitation replaces the one sent"
MOVED_REASON = "the session moved: a fresh invitation goes at the new send time"
STALE_BATCH_SIZE = 200


# ---------------------------------------------------------------------------------------------------
# Scheduling


def _plan_now() -> None:
    try:
        deliveries_plan_queue()
    except (OperationalError, OSError):
        logger.warning("Could not queue the planner; beat runs it within a minute", exc_info=True)


def sessions_plan_soon(*, sessions: Sequence[VideoSession]) -> bool:
    """Inside the scheduling transaction: if any of these sessions is already due, queue the planner once
    the transaction commits. Returns whether it will."""
    now = timezone.now()
    if not any(session.send_at <= now < session.starts_at for session in sessions):
        return False
    transaction.on_commit(_plan_now)
    return True


# ---------------------------------------------------------------------------------------------------
# Cancelling


@dataclass
class CancelResult:
    cancelled: int = 0
    told: int = 0


def deliveries_cancel(*, session: VideoSession) -> CancelResult:
    """Inside `session_cancel`'s transaction, the session row locked: unsent invitations are cancelled and
    every guardian already invited is emailed once that the lesson is cancelled."""
    result = CancelResult()
    # No SKIP LOCKED: a claim holding a row is waited for (a fraction of a second); the row is then `sending`.
    pending = list(Delivery.objects.select_for_update(of=("self",)).filter(
        session=session, status__in=Delivery.CLAIMABLE).values_list("pk", flat=True))
    if pending:
        result.cancelled = Delivery.objects.filter(pk__in=pending, status__in=Delivery.CLAIMABLE).update(
            status=Status.CANCELLED, reason=CANCELLED_REASON, lease_until=None, next_attempt_at=None,
            dispatched_at=None)
        delivery_events_record((pk, Status.CANCELLED, CANCELLED_REASON) for pk in pending)
    # Invited once, whatever the row says now; still with a child in the lesson with consent.
    result.told = guardians_tell(session=session, rows=invited_guardians(session), template="session-cancelled")
    return result


# ---------------------------------------------------------------------------------------------------
# Changing


@dataclass
class ReviseResult:
    resent: int = 0
    waiting: int = 0
    moved_told: int = 0
    followed: int = 0


def _revise_sent(rows: list[Delivery], sessions: dict[int, VideoSession], now: datetime) -> ReviseResult:
    """Rows sent for an older revision (locked by the caller, their sessions too): a fresh invitation now
    if the send time has come, else at the new send time, with a "moved" email now if the start moved."""
    result = ReviseResult()
    if not rows:
        return result
    session_field = VideoSession.objects.filter(pk=OuterRef("session_id"))
    now_rows = [d for d in rows if sessions[d.session_id].send_at <= now]
    later_rows = [d for d in rows if sessions[d.session_id].send_at > now]
    reset = {"status": Status.PENDING, "revision": Subquery(session_field.values("revision")[:1]),
             "attempts": 0, "lease_until": None, "reason": ""}
    if now_rows:
        ids = [d.pk for d in now_rows]
        result.resent = Delivery.objects.filter(pk__in=ids).update(**reset, next_attempt_at=None, dispatched_at=now)
        delivery_events_record((pk, Status.PENDING, RESEND_REASON) for pk in ids)
        transaction.on_commit(lambda: deliveries_dispatch(ids))
    if later_rows:
        ids = [d.pk for d in later_rows]
        result.waiting = Delivery.objects.filter(pk__in=ids).update(
            **reset, next_attempt_at=Subquery(session_field.values("send_at")[:1]), dispatched_at=None)
        delivery_events_record((pk, Status.PENDING, MOVED_REASON) for pk in ids)
        starts = starts_told([sessions[s] for s in {d.session_id for d in later_rows}],
                             {(d.session_id, d.sent_revision) for d in later_rows})
        result.moved_told = _tell_moved(later_rows, sessions,
                                        {d.pk: starts.get((d.session_id, d.sent_revision)) for d in later_rows})
    return result


def _tell_moved(rows: list[Delivery], sessions: dict[int, VideoSession], told_at: dict[int, datetime | None]) -> int:
    """A "session moved" email to each guardian (of `rows`) who was last told another start time (`told_at`,
    per row; None when unknown), if they may still be invited (the claim checks again before the fresh
    invitation)."""
    moved = [d for d in rows if told_at.get(d.pk) != sessions[d.session_id].starts_at]
    if not moved:
        return 0
    now = timezone.now()
    members = session_pupils(sorted({d.session_id for d in moved}))
    registry = read_registry((p for ids in members.values() for p in ids),
                              {sessions[d.session_id].purpose_id for d in moved}, now)
    names = {pk: pupil.first_name for pk, pupil in registry.pupils.items()}
    eligible = {
        session_id: eligible_children(registry, members.get(session_id, ()), sessions[session_id].purpose_id)
        for session_id in {d.session_id for d in moved}
    }
    told = 0
    guardians = {d.pk: d for d in Delivery.objects.filter(pk__in=[d.pk for d in moved]).select_related("guardian")}
    for delivery in moved:
        delivery = guardians[delivery.pk]
        session = sessions[delivery.session_id]
        if delivery.guardian_id not in eligible[session.pk] or not guardian_may_receive(delivery.guardian):
            continue  # no fresh invitation will come: the claim would skip it
        old = told_at.get(delivery.pk)
        email_queue(template="session-moved", to=delivery.guardian.email, school=session.school, related=delivery,
                    context={**guardian_email_context(delivery, session, names),
                             "old_starts_at": timezone.localtime(old, session.school.tz) if old else None,
                             "lead_minutes": session.lead_minutes})
        told += 1
    return told


def deliveries_revise(*, session: VideoSession, previous_starts_at: datetime | None = None) -> ReviseResult:
    """Inside `session_update`'s transaction, the session row locked and saved with its new revision (see
    the module docstring for the rules). `previous_starts_at`: the start before this change."""
    now = timezone.now()
    # Wait for a sweep holding a row (it never waits for this session's lock: it skips it).
    stale = list(Delivery.objects.select_for_update(of=("self",)).filter(
        session=session, status=Status.SENT, sent_revision__lt=session.revision))
    result = _revise_sent(stale, {session.pk: session}, now)
    claimable = Delivery.objects.filter(session=session, status__in=Delivery.CLAIMABLE).exclude(
        pk__in=[d.pk for d in stale])
    if session.send_at > now:
        if previous_starts_at is not None and previous_starts_at != session.starts_at:
            # Waiting to be invited again (after an earlier change): they hold an invitation with another time.
            again = list(claimable.filter(sent_revision__isnull=False))
            result.moved_told += _tell_moved(again, {session.pk: session}, {d.pk: previous_starts_at for d in again})
        result.followed = claimable.update(next_attempt_at=session.send_at, dispatched_at=None)
    else:
        # Moved into the send window: rows waiting for the old, later send time go now.
        ids = list(claimable.filter(status=Status.PENDING, next_attempt_at__gt=now).values_list("pk", flat=True))
        if ids:
            result.followed = Delivery.objects.filter(pk__in=ids).update(next_attempt_at=None, dispatched_at=now)
            transaction.on_commit(lambda: deliveries_dispatch(ids))
    return result


def _stale_batch(limit: int) -> tuple[int, ReviseResult]:
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=Status.SENT, sent_revision__lt=F("session__revision"),
                    session__status=VideoSession.Status.SCHEDULED, session__starts_at__gt=Now())
            .order_by("pk")[:limit]
        )
        if not rows:
            return 0, ReviseResult()
        # Same lock order as `session_update` (session, then rows) is impossible here; SKIP LOCKED on the
        # session instead: a session being changed right now is left to that change (and the next sweep).
        sessions = {s.pk: s for s in (
            VideoSession.objects.select_for_update(skip_locked=True, no_key=True, of=("self",))
            .filter(pk__in={d.session_id for d in rows}, status=VideoSession.Status.SCHEDULED, starts_at__gt=Now())
            .select_related("school__organisation", "purpose"))}
        mine = [d for d in rows if d.session_id in sessions and d.sent_revision < sessions[d.session_id].revision]
        result = _revise_sent(mine, sessions, now)
        per_session: dict[int, int] = defaultdict(int)
        for delivery in mine:
            per_session[delivery.session_id] += 1
        for session_id, count in per_session.items():
            audit_log(actor=None, action="session.invitations_revised", obj=sessions[session_id],
                      data={"deliveries": count, "revision": sessions[session_id].revision})
    return len(rows), result


def deliveries_stale_revisions(*, batch_size: int = STALE_BATCH_SIZE, max_batches: int = 20) -> ReviseResult:
    """Per minute (from the sweep task): invitations recorded `sent` for an older revision after the
    session changed (a send in flight during the change) get the rule of `deliveries_revise`."""
    total = ReviseResult()
    for _ in range(max_batches):
        taken, result = _stale_batch(batch_size)
        total.resent += result.resent
        total.waiting += result.waiting
        total.moved_told += result.moved_told
        if taken < batch_size:
            break
    return total
