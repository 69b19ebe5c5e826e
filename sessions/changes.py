"""What happens to invitations when a session is scheduled, changed or cancelled, or its gate turns red.

The rules (the state machine test in tests/sessions/test_state_machine.py relies on them):

Scheduling (`sessions_plan_soon`, from `session_schedule`): after the scheduling transaction commits, if
any new session is already due (its `send_at` has come, e.g. a 10-minute lead for a session starting in 15
minutes), the planner task is queued at once. A broker failure is logged and tolerated: beat runs the
planner every minute.

Cancelling (`deliveries_cancel`, inside `session_cancel`'s transaction, under the session's FOR UPDATE lock):
- every claimable row (pending, retry) becomes `cancelled`, reason "the session was cancelled", with a
  `DeliveryEvent`. These rows are locked FOR UPDATE (no SKIP LOCKED): a claim holding one is waited for, and
  the row is then seen as `sending`;
- every guardian already invited (the row `sent`, or `sending`: the mail server may have accepted it) gets
  ONE "session cancelled" email through the outbox: school, title, the local time cancelled with the time
  zone, whom to contact. Never the link, the password or the staff's reason;
- audited (counts only), in the `session.cancelled` entry.
A row `sending` when the session is cancelled may still be recorded `sent` by its worker: its guardian has
been told of the cancellation already (the email above).

Changing (`deliveries_revise`, inside `session_update`'s transaction when the revision went up, i.e. the
start time, link, meeting ID or password changed; and `deliveries_stale_revisions`, the per-minute sweep):
- rows `sent` for an older revision (`sent_revision < session.revision`):
  - if the session's new `send_at` has come: back to `pending` with `revision = session.revision`,
    `next_attempt_at = dispatched_at = now`, handed to the send task after commit. The fresh invitation goes
    through the claim's usual checks (consent, membership, gate, address, start) and says that it replaces
    the earlier one and what changed (`revision_changes`);
  - if the new `send_at` is still ahead: back to `pending` with `revision = session.revision`,
    `next_attempt_at = send_at`, `dispatched_at = None` (the sweeper queues the fresh invitation at the lead
    time); and if the start time differs from the one the guardian was told, a "session moved" email now
    (old time, new time, "a fresh invitation with the link and password N minutes before"; never the link
    or the password);
- claimable rows (pending, retry): `next_attempt_at` follows the new `send_at` when it is ahead (the claim
  refuses rows whose session's `send_at` is ahead anyway);
- rows `failed`, `skipped`, `cancelled`, `sending` are left alone; a row `sending` during the change is
  recorded `sent` with the old revision by its worker, and the sweep then treats it as above;
- the sweep takes rows with SKIP LOCKED, only of scheduled sessions not yet started, in batches with a
  constant number of queries per batch (plus one email per guardian told of a move).
Changes after the start are refused by `session_update`; nothing is ever re-sent after the start (the
claim refuses it). Invariants: at most one `Delivery` per (session, guardian); at most one invitation per
(session, guardian, revision) except the counted `possible_duplicate`; every re-send passes the claim.

The gate turning red after scheduling (`sessions_gate_watch`, beat every 5 minutes): for every scheduled
session not yet started, the gate is computed once per (school, platform, host). Red, and `gate_red_since`
empty: `gate_red_since` is set, a `SessionAlert` of kind GATE_RED records the reasons, and the host and the
school's headteachers are emailed once. Green: `gate_red_since` is cleared, so a later red is told again.
Invitations are not touched here: every claim re-checks the gate and skips while it is red.
"""

import logging

from schools.models import AuditEntry

from .models import VideoSession

logger = logging.getLogger(__name__)

# What an invitation says, in the words of the "this replaces the earlier invitation" line.
CHANGE_LABELS = {
    "starts_at": "the time",
    "meeting_url": "the meeting link",
    "meeting_id": "the meeting ID",
    "password": "the password",
}


def revision_changes(*, session: VideoSession, since_revision: int) -> list[str]:
    """What changed in the invitation since `since_revision`, in words ("the time", "the password"), read
    from the session's `session.updated` audit entries (field names only: never values). One query."""
    changed: set[str] = set()
    for data in AuditEntry.objects.filter(
        action="session.updated", object_type=VideoSession._meta.label_lower, object_id=str(session.pk)
    ).values_list("data", flat=True):
        if since_revision < (data.get("revision") or 0) <= session.revision:
            changed.update(data.get("changed") or ())
    return [label for name, label in CHANGE_LABELS.items() if name in changed]
