"""Sending invitations: the planner, and the send task's claim and send (design.md, "How sending
works"). The database is the truth; Celery only carries "look at delivery N".

- `deliveries_plan` (beat, every minute): sessions whose `send_at` has come and whose start has not, by
  the database clock; one `Delivery` per eligible guardian (`sessions.eligibility`; insert-or-ignore on
  the unique (session, guardian)), naming all their children in the session; a send task per batch after
  commit.
- `delivery_send_batch` (the send task): one short transaction claims the whole batch (FOR UPDATE SKIP
  LOCKED), locks the children's consent rows FOR SHARE and re-checks everything (promise 1), in a number
  of queries that does not grow with the batch; then, outside any transaction, one SMTP connection
  carries the batch (`sessions.invitation` makes the emails), each accepted message marked in the shared
  cache at once and every 20 in the database (`sessions.progress`), and all recorded `sent` together at
  the end (one UPDATE), or `retry` or `failed`. At-least-once, as the outbox: a worker dying between the
  mail server's accept and its mark leads to one more copy, counted in `possible_duplicate` (promise 2);
  the rows it marked are recorded by the sweeper (`sessions.sweep`) at their moment of acceptance, not
  sent again. With the cache lost as well, the database's record bounds the copies to 20 per batch.
- Withdrawals: `sessions.withdrawals`.
"""

import json
import logging
import secrets
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import make_msgid
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.urls import reverse
from django.utils import timezone

from consent.links import token_hash
from consent.models import ConsentStatus, GuardianLink, Pupil
from outbox.services import BatchResult, MailBatch, SendError, retry_delay, send_lease
from schools.audit import audit_log

# `deliveries_dispatch` is looked up here at call time by the planner, the send task and the sweeper, so that
# the benchmark and the tests can keep the handed ids in the process by replacing it on this module.
from .delivery_steps import (
    SEND_BATCH_SIZE,  # noqa: F401 (named here for the benchmark)
    deliveries_dispatch,
    deliveries_overtake,
    delivery_events_record,
    session_alert_raise,
    session_url,  # noqa: F401 (named here for the tests)
)
from .eligibility import Registry, eligible_children, guardian_may_receive, read_registry, session_pupils
from .gate import gate_for
from .invitation import Claimed, invitation_email
from .models import Delivery, SessionAlert, VideoSession
from .progress import (
    PROGRESS_EVERY,
    AcceptedMarks,
    accepted_mark_key,  # noqa: F401 (named here for the tests)
    accepted_rows_record,
)

logger = logging.getLogger(__name__)

Status = Delivery.Status

# Sessions the planner takes per transaction, and transactions per run.
PLAN_SESSIONS_PER_BATCH = 20
PLAN_MAX_BATCHES = 50
# Meeting passwords are erased this long after the session's end (design.md, retention).
PASSWORD_KEPT_AFTER_END = timedelta(hours=24)


def session_gate_reasons(session: VideoSession) -> tuple[str, ...]:
    """Why the session's governance gate is red (empty when green)."""
    gate = gate_for(session)
    return () if gate.ok else tuple(gate.reasons)


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
        members = session_pupils([s.pk for s in green])
        registry = read_registry((p for ids in members.values() for p in ids), {s.purpose_id for s in green}, now)
        existing = {(session_id, guardian_id): (pk, status) for pk, session_id, guardian_id, status in
                    Delivery.objects.filter(session__in=green).values_list("pk", "session_id", "guardian_id",
                                                                           "status")}
        rows, revive = [], {}
        for session in green:
            for guardian_id, children in eligible_children(registry, members.get(session.pk, ()),
                                                            session.purpose_id).items():
                pk, status = existing.get((session.pk, guardian_id), (None, None))
                if pk is None:
                    rows.append(Delivery(session=session, guardian_id=guardian_id, pupil_ids=children,
                                         revision=session.revision, next_attempt_at=None, dispatched_at=now))
                elif status in REVIVABLE:
                    revive[pk] = (children, session.revision)
        # Insert-or-ignore: a second planner running at once inserts nothing twice (unique constraint).
        Delivery.objects.bulk_create(rows, ignore_conflicts=True)
        # The rows this run inserted carry its own timestamp (a concurrent planner's rows carry another).
        new = list(Delivery.objects.filter(session__in=green, status=Status.PENDING, dispatched_at=now,
                                           created_at__gte=now).values_list("pk", "session_id"))
        delivery_events_record((pk, Status.PENDING, "") for pk, _ in new)
        new += _revive(revive, now)
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


# An invitation cancelled (its parent withdrew) or skipped (no consent, the gate red, the child out of the
# group) before it was sent is planned again once its guardian is eligible again: a parent who withdraws and
# then consents again before the lesson gets the link, as the host's roster says they may be admitted.
REVIVABLE = (Status.CANCELLED, Status.SKIPPED)
REVIVED_REASON = "eligible again: consent given again, or what stopped it has changed"


def _revive(revive: dict[int, tuple[list[int], int]], now) -> list[tuple[int, int]]:
    """Set these cancelled or skipped rows back to `pending` (those still so: SKIP LOCKED). Two queries."""
    rows = list(Delivery.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(pk__in=list(revive), status__in=REVIVABLE))
    for row in rows:
        row.pupil_ids, row.revision = revive[row.pk]
        row.status, row.reason, row.next_attempt_at, row.dispatched_at, row.lease_until = (
            Status.PENDING, "", None, now, None)
        row.attempts = 0  # a fresh invitation
    Delivery.objects.bulk_update(rows, ["status", "reason", "pupil_ids", "revision", "attempts", "next_attempt_at",
                                        "dispatched_at", "lease_until"])
    delivery_events_record((row.pk, Status.PENDING, REVIVED_REASON) for row in rows)
    return [(row.pk, row.session_id) for row in rows]


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


# ---------------------------------------------------------------------------------------------------
# Claiming: one short transaction per batch, with every check of promise 1 under the locks


def _lock_consent_rows(pupil_ids: Iterable[int], purpose_ids: Iterable[int]) -> None:
    """FOR SHARE on every guardian's consent row of these children: a withdrawal (FOR UPDATE on one of
    them) then happens strictly before this claim (which sees it) or strictly after (and cancels or
    alerts). Two queries for the whole batch, in id order so that two claims never deadlock. SQLite has no
    row locks; its write lock, taken at the claim's first write, serialises."""
    # the tables named in the SQL below
    assert (Pupil._meta.db_table, ConsentStatus._meta.db_table) == ("consent_pupil", "consent_consentstatus")
    pupil_ids, purpose_ids = sorted(set(pupil_ids)), sorted(set(purpose_ids))
    if db_connection.vendor != "postgresql" or not pupil_ids:
        return
    with db_connection.cursor() as cursor:
        # The children's rows first: a guardian's FIRST decision has no consent row to lock yet, so every
        # decision also locks the child's row (`consent.services._lock_status`, FOR NO KEY UPDATE), and a
        # co-guardian's first refusal is ordered against this claim like any withdrawal.
        cursor.execute("SELECT id FROM consent_pupil WHERE id = ANY(%s) ORDER BY id FOR SHARE", [pupil_ids])
        cursor.execute(
            "SELECT id FROM consent_consentstatus WHERE purpose_id = ANY(%s) AND pupil_id = ANY(%s) "
            "ORDER BY id FOR SHARE",
            [purpose_ids, pupil_ids],
        )


def _skip_all(skipped: Sequence[tuple[int, str]]) -> None:
    """Record why these rows will not be sent: one UPDATE per distinct reason (a handful), not per row."""
    by_reason: dict[str, list[int]] = defaultdict(list)
    for pk, reason in skipped:
        by_reason[reason[:300]].append(pk)
    for reason, pks in by_reason.items():
        Delivery.objects.filter(pk__in=pks).update(status=Status.SKIPPED, reason=reason, lease_until=None,
                                                   next_attempt_at=None, dispatched_at=None)


def _withdraw_links(deliveries: Sequence[Delivery]) -> dict[int, str]:
    """delivery id → a fresh personal link for its guardian and the session's purpose, as
    `consent.links.guardian_link_issue` makes one, for the whole batch in one INSERT."""
    tokens = {d.pk: secrets.token_urlsafe(32) for d in deliveries}
    if db_connection.vendor != "postgresql":
        GuardianLink.objects.bulk_create([
            GuardianLink(guardian_id=d.guardian_id, purpose_id=d.session.purpose_id,
                         token_sha256=token_hash(tokens[d.pk]))
            for d in deliveries
        ])
    else:
        # The model's defaults, written out (as in `delivery_events_record`: a model instance per link cost more
        # than the database's work): created now, good for giving consent for GIVE_PERIOD, not revoked.
        meta, quote = GuardianLink._meta, db_connection.ops.quote_name
        columns = ", ".join(quote(meta.get_field(name).column) for name in (
            "guardian", "purpose", "token_sha256", "created_at", "give_until"))
        now = timezone.now()
        with db_connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {quote(meta.db_table)} ({columns}) "  # noqa: S608 (names from the model)
                "SELECT g, p, t, %s, %s FROM UNNEST(%s::bigint[], %s::bigint[], %s::varchar[]) AS l (g, p, t)",
                [now, now + GuardianLink.GIVE_PERIOD, [d.guardian_id for d in deliveries],
                 [d.session.purpose_id for d in deliveries], [token_hash(tokens[d.pk]) for d in deliveries]],
            )
    # One reverse() for the batch: a URL-safe token is never quoted, so every link is the same path around it.
    sample = next(iter(tokens.values()))
    before, after = (settings.SITE_URL + reverse("parent:page", kwargs={"token": sample})).split(sample)
    return {pk: f"{before}{token}{after}" for pk, token in tokens.items()}


def _claim_rows_update(deliveries: Sequence[Delivery], lease_until: datetime, lease_token: uuid.UUID) -> None:
    """Mark the claimed rows `sending` with their lease, each with its own message id, recipient, children
    and revision. PostgreSQL: one UPDATE … FROM (VALUES …), a row of values per delivery (the ORM's
    `bulk_update`, a CASE per column, took as long as the rest of the claim). Elsewhere: what is the same
    for the whole batch in one UPDATE, what differs per row in a `bulk_update`."""
    if db_connection.vendor != "postgresql":
        Delivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(
            status=Status.SENDING, attempts=F("attempts") + 1, lease_until=lease_until, lease_token=lease_token,
            accepted_at=None)
        Delivery.objects.bulk_update(deliveries, ["recipient", "pupil_ids", "revision", "message_id"])
        return
    meta, quote = Delivery._meta, db_connection.ops.quote_name
    column = {name: quote(meta.get_field(name).column) for name in (
        "id", "status", "attempts", "lease_until", "lease_token", "recipient", "pupil_ids", "revision", "message_id",
        "accepted_at")}
    rows = ", ".join(["(%s, %s, %s, %s, %s)"] * len(deliveries))
    params = [Status.SENDING, lease_until, str(lease_token)]
    for d in deliveries:
        params += [d.pk, d.recipient, json.dumps(d.pupil_ids), d.revision, d.message_id]
    sql = (f"UPDATE {quote(meta.db_table)} AS d SET {column['status']} = %s, "  # noqa: S608 (names from the model)
           f"{column['attempts']} = d.{column['attempts']} + 1, {column['lease_until']} = %s, "
           f"{column['lease_token']} = %s::uuid, {column['accepted_at']} = NULL, "
           f"{column['recipient']} = v.recipient, {column['pupil_ids']} = v.pupil_ids::jsonb, "
           f"{column['revision']} = v.revision, {column['message_id']} = v.message_id "
           f"FROM (VALUES {rows}) AS v (id, recipient, pupil_ids, revision, message_id) WHERE d.{column['id']} = v.id")
    with db_connection.cursor() as cursor:
        cursor.execute(sql, params)


def deliveries_claim(delivery_ids: Iterable[int], gate_cache: dict | None = None,
                     lease_token: uuid.UUID | None = None) -> list[Claimed]:
    """Take due invitations for sending, in one short transaction whose queries do not grow with the batch
    (a few per session: the gate, the overtaken). Rows that will not be sent get their reason recorded;
    rows that are not ours to send now (gone, taken by another worker, already decided, not yet due) are
    left alone. Returns the claimed rows, marked `sending` with a lease, in id order, all with the same
    `lease_token` (a new one unless given).

    `gate_cache` keeps each session's gate for one batch (a few seconds): the gate is a property of the
    session, not of the guardian, and a batch is far shorter than any change of PIA or risk assessment."""
    gate_cache = gate_cache if gate_cache is not None else {}
    ids = sorted(set(int(pk) for pk in delivery_ids))
    if not ids:
        return []
    with transaction.atomic():
        deliveries = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=ids, status__in=Delivery.CLAIMABLE)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=Now()))
            .select_related("guardian")
            .annotate(db_now=Now())
            .order_by("pk")
        )
        if not deliveries:
            return []
        now = deliveries[0].db_now
        # One instance per session, read once for the batch rather than joined to every row (each would
        # decrypt the meeting password again). The rows' locks keep their session from being deleted.
        sessions = VideoSession.objects.select_related("school__organisation", "platform", "host").in_bulk(
            {d.session_id for d in deliveries})
        skipped: list[tuple[int, str]] = []
        overtaken: dict[int, list[int]] = defaultdict(list)
        later: dict[int, list[int]] = defaultdict(list)
        candidates = []
        for delivery in deliveries:
            session = delivery.session = sessions[delivery.session_id]
            if session.status != VideoSession.Status.SCHEDULED:
                skipped.append((delivery.pk, "the session was cancelled"))
            elif session.starts_at <= now:
                overtaken[session.pk].append(delivery.pk)
            elif session.send_at > now:
                later[session.pk].append(delivery.pk)
            else:
                candidates.append(delivery)
        _lock_consent_rows((p for d in candidates for p in d.pupil_ids), (d.session.purpose_id for d in candidates))
        eligible = []
        for delivery in candidates:
            session = delivery.session
            if not guardian_may_receive(delivery.guardian):
                skipped.append((delivery.pk, "the parent or carer has no valid email address, or their record is "
                                             "erased or restricted"))
                continue
            if session.pk not in gate_cache:
                gate_cache[session.pk] = session_gate_reasons(session)
            if gate_cache[session.pk]:
                skipped.append((delivery.pk, "the session may not go ahead: " + " ".join(gate_cache[session.pk])))
                continue
            eligible.append(delivery)
        members = session_pupils(list({d.session_id for d in eligible}),
                                  only_pupils={p for d in eligible for p in d.pupil_ids}) if eligible else {}
        registry = read_registry((p for pupils in members.values() for p in pupils),
                                  {d.session.purpose_id for d in eligible}, now) if eligible else Registry()
        claimed: list[Claimed] = []
        for delivery in eligible:
            session = delivery.session
            mine = members.get(session.pk, set()) & set(delivery.pupil_ids)
            children = eligible_children(registry, mine, session.purpose_id).get(delivery.guardian_id, [])
            if not children:
                left = not mine or not any(p in registry.pupils for p in mine)
                skipped.append((delivery.pk, "the child is no longer in the session" if left else "no active consent"))
                continue
            claimed.append(Claimed(
                delivery=delivery, session=session, guardian=delivery.guardian, withdraw_link="",
                pupils=sorted((registry.pupils[p] for p in children), key=lambda p: p.first_name),
                previous_status=delivery.status,
            ))
        if claimed:
            links = _withdraw_links([c.delivery for c in claimed])
            lease_until, lease_token = now + send_lease(), lease_token or uuid.uuid4()
            shared: dict[int, dict] = defaultdict(dict)
            for item in claimed:
                delivery = item.delivery
                item.withdraw_link = links[delivery.pk]
                item.shared = shared[item.session.pk]
                delivery.status = Status.SENDING
                delivery.attempts += 1
                delivery.lease_until = lease_until
                delivery.lease_token = lease_token
                delivery.recipient = item.guardian.email
                delivery.pupil_ids = [p.pk for p in item.pupils]
                delivery.revision = item.session.revision
                delivery.message_id = make_msgid(domain=settings.EMAIL_MESSAGE_ID_DOMAIN)
            _claim_rows_update([c.delivery for c in claimed], lease_until, lease_token)
        if skipped:
            _skip_all(skipped)
        delivery_events_record([*((pk, Status.SKIPPED, reason) for pk, reason in skipped),
                                *((c.delivery.pk, Status.SENDING, "") for c in claimed)])
        for session_id, pks in later.items():
            # Moved later since it was planned: wait for the new send time (the sweeper queues it then).
            Delivery.objects.filter(pk__in=pks).update(next_attempt_at=sessions[session_id].send_at,
                                                       dispatched_at=None)
        for session_id, pks in overtaken.items():
            deliveries_overtake(pks, sessions[session_id])
    return claimed


def delivery_claim(delivery_id: int, gate_cache: dict | None = None,
                   lease_token: uuid.UUID | None = None) -> Claimed | None:
    """`deliveries_claim` for one row: the claimed invitation, or None if it is not ours to send now."""
    claimed = deliveries_claim([delivery_id], gate_cache, lease_token)
    return claimed[0] if claimed else None


# ---------------------------------------------------------------------------------------------------
# Sending

# Rows are claimed together, each with the lease of one send (`send_lease()`: two mail timeouts and a margin).
# So that no row's lease runs out while it waits its turn in the batch, the batch stops starting sends
# once this much of the lease's margin is spent, and gives the rest back unsent.
CLAIM_SLACK_SECONDS = 25


def _record_sent_one(claimed: Claimed, sent_at: datetime) -> bool:
    """The fallback when the cache cannot take a mark: this accepted message recorded at once. False if the
    row was already recorded sent."""
    return bool(_sent_rows_update([(claimed, sent_at)]))


def _sent_rows_update(accepted: Sequence[tuple[Claimed, datetime]]) -> list[int]:
    """Mark these rows sent, each with its moment and revision, adding the children it named to those of
    earlier sends; returns the ids it changed (a row already recorded sent, by the sweeper from a mark, is
    left alone). Not conditional on the lease: the server accepted them, so they are sent, whatever the
    sweeper did meanwhile. PostgreSQL: one UPDATE … FROM (VALUES …) … RETURNING. Elsewhere: one SELECT and
    one `bulk_update`."""
    if not accepted:
        return []
    if db_connection.vendor != "postgresql":
        by_pk = {claimed.delivery.pk: (claimed, sent_at) for claimed, sent_at in accepted}
        rows = list(Delivery.objects.filter(pk__in=list(by_pk)).exclude(status=Status.SENT).only("pk",
                                                                                                  "sent_pupil_ids"))
        for row in rows:
            claimed, sent_at = by_pk[row.pk]
            row.status, row.sent_at, row.sent_revision = Status.SENT, sent_at, claimed.delivery.revision
            row.sent_pupil_ids = sorted({*row.sent_pupil_ids, *claimed.delivery.pupil_ids})
            row.message_id, row.reason = claimed.delivery.message_id, ""
            row.lease_until = row.lease_token = row.next_attempt_at = row.dispatched_at = row.accepted_at = None
        Delivery.objects.bulk_update(rows, ["status", "sent_at", "sent_revision", "sent_pupil_ids", "message_id",
                                            "reason", "lease_until", "lease_token", "next_attempt_at",
                                            "dispatched_at", "accepted_at"])
        return [row.pk for row in rows]
    meta, quote = Delivery._meta, db_connection.ops.quote_name
    column = {name: quote(meta.get_field(name).column) for name in (
        "id", "status", "sent_at", "sent_revision", "message_id", "reason", "lease_until", "lease_token",
        "next_attempt_at", "dispatched_at", "accepted_at", "pupil_ids", "sent_pupil_ids")}
    rows = ", ".join(["(%s, %s::timestamptz, %s, %s)"] * len(accepted))
    params: list = [Status.SENT, ""]
    for claimed, sent_at in accepted:
        params += [claimed.delivery.pk, sent_at, claimed.delivery.revision, claimed.delivery.message_id]
    params.append(Status.SENT)
    nulls = ", ".join(f"{column[name]} = NULL" for name in ("lease_until", "lease_token", "next_attempt_at",
                                                            "dispatched_at", "accepted_at"))
    children = (f"(SELECT COALESCE(jsonb_agg(DISTINCT c ORDER BY c), '[]'::jsonb) "  # noqa: S608 (names from the model)
                f"FROM jsonb_array_elements(d.{column['sent_pupil_ids']} || d.{column['pupil_ids']}) AS c)")
    sql = (f"UPDATE {quote(meta.db_table)} AS d SET {column['status']} = %s, {column['reason']} = %s, "  # noqa: S608
           f"{column['sent_at']} = v.sent_at, {column['sent_revision']} = v.revision, "
           f"{column['sent_pupil_ids']} = {children}, "
           f"{column['message_id']} = v.message_id, {nulls} "
           f"FROM (VALUES {rows}) AS v (id, sent_at, revision, message_id) "
           f"WHERE d.{column['id']} = v.id AND d.{column['status']} <> %s RETURNING d.{column['id']}")
    with db_connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [pk for (pk,) in cursor.fetchall()]


def _record_sent_batch(accepted: Sequence[tuple[Claimed, datetime]],
                       recorded: Sequence[tuple[Claimed, datetime]]) -> None:
    """At the batch's end, in one transaction: the accepted rows not yet recorded marked sent, then the
    events of every invitation this batch sent (each at its moment of acceptance) and one audit entry per
    session, not per message: the audit chain is one lock for everyone, and each invitation's own history is
    in its DeliveryEvents. `recorded`: the rows already written one by one (`_record_sent_one`)."""
    if not accepted and not recorded:
        return
    with transaction.atomic():
        changed = set(_sent_rows_update(accepted))
        moments = {claimed.delivery.pk: at for claimed, at in [*accepted, *recorded]}
        sent = [*(claimed for claimed, _ in recorded),
                *(claimed for claimed, _ in accepted if claimed.delivery.pk in changed)]
        if not sent:
            return
        by_session: dict[int, tuple[VideoSession, list[int]]] = {}
        for claimed in sent:
            by_session.setdefault(claimed.session.pk, (claimed.session, []))[1].append(claimed.delivery.pk)
        delivery_events_record(((claimed.delivery.pk, Status.SENT, "") for claimed in sent), moments=moments)
        for session, sent_ids in by_session.values():
            audit_log(actor=None, action="session.invitations_sent", obj=session,
                      data={"deliveries": len(sent_ids), "delivery_ids": sent_ids, "revision": session.revision})
    logger.info("Recorded %s invitation(s) sent (delivery/attempt): %s", len(sent), " ".join(
        f"{c.delivery.pk}/{c.delivery.attempts}" for c in sent))


def _give_back(claimed: Sequence[Claimed], reason: str) -> None:
    """Rows claimed but never tried (the connection broke, or time ran short) go back as they were before
    the claim, their attempt not spent; only while still ours (same lease), in one UPDATE per status."""
    by_status: dict[str, list[Claimed]] = defaultdict(list)
    for item in claimed:
        by_status[item.previous_status].append(item)
    with transaction.atomic():
        for status, items in by_status.items():
            Delivery.objects.filter(
                pk__in=[c.delivery.pk for c in items], status=Status.SENDING, lease_until=items[0].delivery.lease_until,
            ).update(status=status, attempts=F("attempts") - 1, lease_until=None, dispatched_at=timezone.now())
        delivery_events_record((c.delivery.pk, c.previous_status, reason) for c in claimed)


def _record_failure(claimed: Claimed, error: SendError) -> str:
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
            delivery_events_record([(delivery.pk, status, reason)])
            if final:
                audit_log(actor=None, action="session.invitation_failed", obj=delivery, school=session.school,
                          data={"session_id": session.pk, "attempts": delivery.attempts, "reason": error.reason})
                session_alert_raise(session=session, kind=SessionAlert.Kind.DELIVERY_FAILED,
                                    delivery_ids=[delivery.pk],
                                    message=f"An invitation could not be sent: {error.reason}.")
    log = logger.error if final else logger.warning
    log("Invitation %s for session %s %s (attempt %s): %s", delivery.pk, session.pk,
        "failed" if final else "will be retried", delivery.attempts, error.reason)
    return status


def _invitations_build(claimed: Sequence[Claimed], connection) -> list:
    """Every invitation of the batch built before the first is sent, so that the sends follow each other
    with only their UPDATE between them: a mail server kept waiting between commands answers each one
    more slowly. An error building one is kept, and raised when that one is sent (`_built`), so that it
    is classified and recorded as it was."""
    emails: list = []
    for item in claimed:
        try:
            email = invitation_email(item, connection)
            email.prepare()
        except Exception as exc:  # raised again in `MailBatch.send`, which classifies it
            email = exc
        emails.append(email)
    return emails


def _built(email):
    if isinstance(email, Exception):
        raise email
    return email


def delivery_send_batch(delivery_ids: Iterable[int]) -> BatchResult:
    """Claim the batch in one transaction (`deliveries_claim`), then send it over one mail server
    connection outside any transaction, marking each accepted message in the shared cache
    (`AcceptedMarks`), and every `PROGRESS_EVERY` of them in the database (one UPDATE), and recording them
    all sent in one transaction at the end. At-least-once (see the module docstring). Queries: a fixed
    number per batch, plus one per `PROGRESS_EVERY` messages (and a few per failure); with the cache down,
    one more UPDATE per message sent.

    The end's record is written when the loop ends or raises an `Exception`. Anything else (a worker being
    stopped dead, which `tests/sessions/test_state_machine.py` plays with a BaseException) leaves the rows
    `sending` for the sweeper, which the marks tell what was accepted."""
    ids = list(dict.fromkeys(int(pk) for pk in delivery_ids))
    result = BatchResult()
    lease_token = uuid.uuid4()
    marks = AcceptedMarks(lease_token)
    with MailBatch(at_most_seconds=CLAIM_SLACK_SECONDS) as batch:
        claimed = deliveries_claim(ids, lease_token=lease_token)
        claimed_ids = {c.delivery.pk for c in claimed}
        result.skipped = [pk for pk in ids if pk not in claimed_ids]
        accepted: list[tuple[Claimed, datetime]] = []  # marked in the cache, recorded at the end
        progress_recorded = 0  # how many of `accepted` have their `accepted_at` in the database
        recorded: list[tuple[Claimed, datetime]] = []  # recorded one by one (the cache refused a mark)
        emails = _invitations_build(claimed, batch.connection)
        try:
            for index, item in enumerate(claimed):
                if batch.out_of_time():
                    _give_back(claimed[index:], "not tried: the batch ran out of time; queued again")
                    result.left = [c.delivery.pk for c in claimed[index:]]
                    deliveries_dispatch(result.left)
                    break
                error = batch.send(lambda connection: _built(emails[index]),  # noqa: B023 (called at once)
                                   what=f"invitation {item.delivery.pk}")
                if error is None:
                    result.sent.append(item.delivery.pk)
                    at = timezone.now()
                    if marks.accepted(item.delivery.pk, at):
                        accepted.append((item, at))
                        if len(accepted) - progress_recorded >= PROGRESS_EVERY:
                            # Before the next send, so that with the cache lost too no more than this many
                            # rows past the last record can have reached the mail server (`sessions.progress`).
                            accepted_rows_record([(c.delivery.pk, t) for c, t in accepted[progress_recorded:]])
                            progress_recorded = len(accepted)
                            marks.recorded()
                    elif _record_sent_one(item, at):
                        recorded.append((item, at))
                    continue
                status = _record_failure(item, error)
                (result.failed if status == Status.FAILED else result.retry).append(item.delivery.pk)
                if error.connection_broken:
                    _give_back(claimed[index + 1 :], "not tried: the connection to the mail server broke")
                    result.left = [c.delivery.pk for c in claimed[index + 1 :]]
                    break
        except Exception:
            _record_sent_batch(accepted, recorded)
            raise
        _record_sent_batch(accepted, recorded)
    marks.forget()
    return result


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
