"""Sending invitations: the planner, the send task's claim and send, the sweeper, and withdrawals.

design.md, "How sending works". The database is the truth; Celery only carries "look at delivery N".

- `deliveries_plan` (beat, every minute): sessions whose `send_at` has come and whose start has not, by
  the database clock; one `Delivery` per eligible guardian (insert-or-ignore on the unique
  (session, guardian)), naming all their children in the session; a send task per batch after commit.
- `delivery_send_batch` (the send task): one short transaction claims the whole batch (FOR UPDATE SKIP
  LOCKED), locks the children's consent rows FOR SHARE and re-checks everything (promise 1), in a number
  of queries that does not grow with the batch; then, outside any transaction, one SMTP connection
  carries the batch, each accepted message marked in the shared cache at once (`AcceptedMarks`) and all
  recorded `sent` together at the end (one UPDATE), or `retry` or `failed`. At-least-once, as the outbox:
  a worker dying between the mail server's accept and its mark leads to one more copy, counted in
  `possible_duplicate` (promise 2); the rows it marked are recorded by the sweeper, not sent again.
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

import json
import logging
import re
import secrets
import uuid
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.core.mail import EmailMultiAlternatives, make_msgid
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import conditional_escape

from consent.models import ConsentState, ConsentStatus, Group, Guardian, Guardianship, Notice, Pupil
from outbox.services import (
    LOST_TASK_AFTER,
    BatchResult,
    MailBatch,
    SendError,
    _batch_budget_seconds,
    _check_address,
    _lease,
    _one_line,
    email_queue,
    retry_delay,
    text_engine,
)
from schools.audit import audit_log

from .mailfast import FramedEmail
from .models import Delivery, DeliveryEvent, SessionAlert, VideoSession

logger = logging.getLogger(__name__)

Status = Delivery.Status

# Sessions the planner takes per transaction, and transactions per run.
PLAN_SESSIONS_PER_BATCH = 20
PLAN_MAX_BATCHES = 50
SWEEP_BATCH_SIZE = 500
# Invitations per send task: one claim, one connection. Larger than the outbox's batches, the claim's
# fixed queries (the gate, the registry) being spread over more messages; the batch's time budget
# (`CLAIM_SLACK_SECONDS`) still gives back what it has no time to send, whatever the size.
SEND_BATCH_SIZE = 200
# When invitations are still unsent this close to the start, the host is told (once per session).
UNSENT_ALERT_BEFORE = timedelta(minutes=10)
# Meeting passwords are erased this long after the session's end (design.md, retention).
PASSWORD_KEPT_AFTER_END = timedelta(hours=24)

OVERTAKEN_REASON = "the session started before it could be sent"


# ---------------------------------------------------------------------------------------------------
# Eligibility: one rule, read in a constant number of queries for many sessions at once


class Carer(NamedTuple):
    """A guardian of a pupil as eligibility reads them: a row of values, not two model instances (a
    batch reads hundreds). Has what `guardian_may_receive` asks of a guardian."""

    guardian_id: int
    parental_responsibility: bool
    archived_at: datetime | None
    processing_restricted_at: datetime | None
    email: str


@dataclass
class Registry:
    """What eligibility needs about a set of pupils, read in bulk (see `_read_registry`)."""

    pupils: dict[int, Pupil] = field(default_factory=dict)  # current pupils only
    carers: dict[int, list[Carer]] = field(default_factory=lambda: defaultdict(list))
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
    for pupil_id, *carer in Guardianship.objects.filter(pupil_id__in=list(registry.pupils)).values_list(
            "pupil_id", "guardian_id", "parental_responsibility", "guardian__archived_at",
            "guardian__processing_restricted_at", "guardian__email"):
        registry.carers[pupil_id].append(Carer(*carer))
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


def guardian_may_receive(guardian: Guardian | Carer) -> bool:
    return (guardian.archived_at is None and guardian.processing_restricted_at is None
            and _one_address(guardian.email))


def _one_address(email: str) -> bool:
    """Exactly one valid address, as the outbox requires: a row edited to "a@x, b@y" (or with a line break)
    must never reach a backend that would read it as two recipients."""
    try:
        return bool(email) and _check_address(email) == email
    except ValueError:
        return False


def _eligible_children(registry: Registry, pupil_ids: Iterable[int], purpose_id: int) -> dict[int, list[int]]:
    """guardian id → the children (of `pupil_ids`) for whom that guardian is to be invited."""
    result: dict[int, list[int]] = defaultdict(list)
    for pupil_id in sorted(set(pupil_ids)):
        if pupil_id not in registry.pupils:
            continue  # left or erased
        carers = [c for c in registry.carers.get(pupil_id, []) if c.archived_at is None]
        # The purpose's rule: a refusal or withdrawal by any (unerased) guardian wins.
        if any(registry.statuses.get((c.guardian_id, pupil_id, purpose_id), ("none",))[0]
               in (ConsentState.REFUSED, ConsentState.WITHDRAWN) for c in carers):
            continue
        for g in carers:
            if (g.parental_responsibility and guardian_may_receive(g)
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
    """One `DeliveryEvent` per (delivery id, status, reason), in one query, all at the same moment. On
    PostgreSQL an INSERT … SELECT FROM UNNEST of the three columns: building a model instance per event
    cost more than the database's work."""
    rows = [(pk, status, reason[:300]) for pk, status, reason in deliveries]
    if not rows:
        return
    if db_connection.vendor != "postgresql":
        DeliveryEvent.objects.bulk_create([DeliveryEvent(delivery_id=pk, status=status, reason=reason)
                                           for pk, status, reason in rows])
        return
    meta, quote = DeliveryEvent._meta, db_connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in ("delivery", "status", "reason", "at"))
    pks, statuses, reasons = (list(column) for column in zip(*rows, strict=True))
    with db_connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({columns}) "  # noqa: S608 (names from the model)
            "SELECT d, s, r, %s FROM UNNEST(%s::bigint[], %s::varchar[], %s::varchar[]) AS e (d, s, r)",
            [timezone.now(), pks, statuses, reasons],
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
        existing = {(session_id, guardian_id): (pk, status) for pk, session_id, guardian_id, status in
                    Delivery.objects.filter(session__in=green).values_list("pk", "session_id", "guardian_id",
                                                                           "status")}
        rows, revive = [], {}
        for session in green:
            for guardian_id, children in _eligible_children(registry, members.get(session.pk, ()),
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
        _events((pk, Status.PENDING, "") for pk, _ in new)
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
    _events((row.pk, Status.PENDING, REVIVED_REASON) for row in rows)
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


def deliveries_dispatch(delivery_ids: Sequence[int]) -> None:
    """Hand ids to the broker in batches. After commit only; if the broker is down, the sweeper catches up."""
    from kombu.exceptions import OperationalError

    from .tasks import deliveries_send

    for start in range(0, len(delivery_ids), SEND_BATCH_SIZE):
        batch = list(delivery_ids[start : start + SEND_BATCH_SIZE])
        try:
            deliveries_send.delay(batch)
        except (OperationalError, OSError):
            # Stop at the first failure: each try against a broker that is down costs a connection timeout,
            # and the rows are in the database, where the sweeper finds them once the broker is back.
            logger.warning("Could not hand %s invitation(s) to the broker (first batch: %s); the sweeper will "
                           "send them", len(delivery_ids) - start, batch, exc_info=True)
            return


# ---------------------------------------------------------------------------------------------------
# Claiming: one short transaction per batch, with every check of promise 1 under the locks


@dataclass
class Claimed:
    delivery: Delivery
    session: VideoSession
    guardian: Guardian
    pupils: list[Pupil]
    withdraw_link: str
    # What the claim found the row at (pending or retry): a row claimed but never tried goes back to it.
    previous_status: str = Status.PENDING
    # Parts of the email that are the same for every guardian of the session, built once per batch and
    # shared by that session's claims (see `_session_parts`).
    shared: dict = field(default_factory=dict)


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
    from consent.links import token_hash
    from consent.models import GuardianLink

    tokens = {d.pk: secrets.token_urlsafe(32) for d in deliveries}
    if db_connection.vendor != "postgresql":
        GuardianLink.objects.bulk_create([
            GuardianLink(guardian_id=d.guardian_id, purpose_id=d.session.purpose_id,
                         token_sha256=token_hash(tokens[d.pk]))
            for d in deliveries
        ])
    else:
        # The model's defaults, written out (as in `_events`: a model instance per link cost more than the
        # database's work): created now, good for giving consent for GIVE_PERIOD, not revoked.
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
            status=Status.SENDING, attempts=F("attempts") + 1, lease_until=lease_until, lease_token=lease_token)
        Delivery.objects.bulk_update(deliveries, ["recipient", "pupil_ids", "revision", "message_id"])
        return
    meta, quote = Delivery._meta, db_connection.ops.quote_name
    column = {name: quote(meta.get_field(name).column) for name in (
        "id", "status", "attempts", "lease_until", "lease_token", "recipient", "pupil_ids", "revision", "message_id")}
    rows = ", ".join(["(%s, %s, %s, %s, %s)"] * len(deliveries))
    params = [Status.SENDING, lease_until, str(lease_token)]
    for d in deliveries:
        params += [d.pk, d.recipient, json.dumps(d.pupil_ids), d.revision, d.message_id]
    sql = (f"UPDATE {quote(meta.db_table)} AS d SET {column['status']} = %s, "  # noqa: S608 (names from the model)
           f"{column['attempts']} = d.{column['attempts']} + 1, {column['lease_until']} = %s, "
           f"{column['lease_token']} = %s::uuid, "
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
        members = _session_pupils(list({d.session_id for d in eligible}),
                                  only_pupils={p for d in eligible for p in d.pupil_ids}) if eligible else {}
        registry = _read_registry((p for pupils in members.values() for p in pupils),
                                  {d.session.purpose_id for d in eligible}, now) if eligible else Registry()
        claimed: list[Claimed] = []
        for delivery in eligible:
            session = delivery.session
            mine = members.get(session.pk, set()) & set(delivery.pupil_ids)
            children = _eligible_children(registry, mine, session.purpose_id).get(delivery.guardian_id, [])
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
            lease_until, lease_token = now + _lease(), lease_token or uuid.uuid4()
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
        _events([*((pk, Status.SKIPPED, reason) for pk, reason in skipped),
                 *((c.delivery.pk, Status.SENDING, "") for c in claimed)])
        for session_id, pks in later.items():
            # Moved later since it was planned: wait for the new send time (the sweeper queues it then).
            Delivery.objects.filter(pk__in=pks).update(next_attempt_at=sessions[session_id].send_at,
                                                       dispatched_at=None)
        for session_id, pks in overtaken.items():
            _overtake(pks, sessions[session_id])
    return claimed


def delivery_claim(delivery_id: int, gate_cache: dict | None = None,
                   lease_token: uuid.UUID | None = None) -> Claimed | None:
    """`deliveries_claim` for one row: the claimed invitation, or None if it is not ours to send now."""
    claimed = deliveries_claim([delivery_id], gate_cache, lease_token)
    return claimed[0] if claimed else None


# ---------------------------------------------------------------------------------------------------
# The email


def _session_parts(claimed: Claimed) -> dict:
    """What every guardian's invitation to this session shares (the protocol's reminders, the .ics), built
    once per batch: reading the protocol is two queries, and the calendar file is the same bytes for all."""
    parts = claimed.shared
    if "ics" not in parts:
        from .ics import invitation_ics

        school = claimed.session.school
        try:
            from .protocol import effective_protocol, parent_reminders

            parts["reminders"] = parent_reminders(effective_protocol(school)), False
        except ImportError:  # pragma: no cover - the protocol module is built beside this one
            parts["reminders"] = ["An adult must be in the room with your child for the whole session."], True
        parts["ics"] = invitation_ics(claimed.session)
    return parts


def invitation_context(claimed: Claimed) -> dict:
    session, school = claimed.session, claimed.session.school
    reminders, reminders_minimal = _session_parts(claimed)["reminders"]
    names = [p.first_name for p in claimed.pupils]
    starts_at = timezone.localtime(session.starts_at, school.tz)
    # Sent before for an older revision: this email replaces that one, and says what changed.
    replaces_earlier = claimed.delivery.sent_revision is not None
    if replaces_earlier:
        from .changes import revision_changes

        # Once per batch and earlier revision, not per message: a change re-sends to everyone invited.
        changes = claimed.shared.setdefault("changes", {})
        since = claimed.delivery.sent_revision
        if since not in changes:
            changes[since] = revision_changes(session=session, since_revision=since)
        changed = changes[since]
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


INVITATION_TEMPLATES = ("emails/session-invitation-subject.txt", "emails/session-invitation-body.txt",
                        "emails/session-invitation-body.html")
# What differs from one guardian's invitation to the next of the same session (and revision).
PER_GUARDIAN = ("guardian", "children", "withdraw_link")


def invitation_render(context: dict) -> tuple[str, str, str]:
    """The invitation's subject, text and HTML: the templates rendered in full."""
    text = text_engine()
    return (_one_line(text.render_to_string(INVITATION_TEMPLATES[0], context)),
            text.render_to_string(INVITATION_TEMPLATES[1], context),
            render_to_string(INVITATION_TEMPLATES[2], context))


def _invitation_render_shared(claimed: Claimed, context: dict) -> tuple[str, str, str]:
    """`invitation_render`, with the templates rendered once per batch and session: a marker stands for
    each of `PER_GUARDIAN`, then each message fills in its own values (escaped in the HTML, as the template
    would). Rendering three templates per message was most of the send path's time. The markers carry a
    random key of the batch, so nothing typed into a title or a name can pose as one; and the children
    marker says whether there are several (the templates choose "is" or "are" by it). The result is the
    full render's, to the byte: tests/sessions/test_dispatch_queries.py checks it."""
    parts = claimed.shared
    key = secrets.token_hex(8) if "marker_key" not in parts else parts["marker_key"]
    parts["marker_key"] = key
    several = " and " in context["children"]
    variant = (context["replaces_earlier"], tuple(str(item) for item in context["changed"]), several)
    rendered = parts.setdefault("rendered", {})
    if variant not in rendered:
        marked = {**context, **{name: f"\x1f{key}:{name}\x1f" for name in PER_GUARDIAN}}
        if several:
            marked["children"] = f"\x1f{key}:children and \x1f"
        text = text_engine()
        rendered[variant] = (text.render_to_string(INVITATION_TEMPLATES[0], marked),
                             text.render_to_string(INVITATION_TEMPLATES[1], marked),
                             render_to_string(INVITATION_TEMPLATES[2], marked))
    subject, body, html = rendered[variant]
    marker = re.compile(f"\x1f{key}:({'|'.join(PER_GUARDIAN)})(?: and )?\x1f")
    values = {name: str(context[name]) for name in PER_GUARDIAN}
    escaped = {name: conditional_escape(value) for name, value in values.items()}
    return (_one_line(marker.sub(lambda m: values[m[1]], subject)), marker.sub(lambda m: values[m[1]], body),
            marker.sub(lambda m: escaped[m[1]], html))


def invitation_email(claimed: Claimed, connection=None) -> EmailMultiAlternatives:
    """The invitation, as an ordinary email for any backend; through Django's SMTP backend its bytes come
    from a frame serialised once per batch and session (`sessions.mailfast`): serialising each message
    in full, headers folded and boundaries searched, was most of a message's time on the send path."""
    subject, body, html = _invitation_render_shared(claimed, invitation_context(claimed))
    email = FramedEmail(
        subject=subject,
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[claimed.delivery.recipient],
        headers={"Message-ID": claimed.delivery.message_id, "Auto-Submitted": "auto-generated"},
        connection=connection,
        frames=claimed.shared,
    )
    email.attach_alternative(html, "text/html")
    email.attach("invitation.ics", _session_parts(claimed)["ics"], "text/calendar")
    return email


# ---------------------------------------------------------------------------------------------------
# Sending

# Rows are claimed together, each with the lease of one send (`_lease()`: two mail timeouts and a margin).
# So that no row's lease runs out while it waits its turn in the batch, the batch stops starting sends
# once this much of the lease's margin is spent, and gives the rest back unsent.
CLAIM_SLACK_SECONDS = 25


# What the mail server accepted is written to the database once per batch, at its end. Until then each
# acceptance is marked in the shared cache (Redis in production), so that a worker dying mid-batch costs at
# most the message in flight, not every message it had sent (promise 2); see `AcceptedMarks`.
ACCEPTED_MARK_KEPT = timedelta(days=2)


def accepted_mark_key(lease_token) -> str:
    return f"gatehouse:invitations:accepted:{lease_token}"


class AcceptedMarks:
    """A send task's progress through its batch, in the shared cache: the id of the last row the mail server
    accepted (rows are sent in id order), or 0 before the first. Written before the claim, so that for a
    batch whose lease expired a missing mark means the cache lost it, never that nothing was sent.

    The sweeper (`_sweep_expired_leases`) reads it for a batch whose worker died: rows up to the mark were
    accepted and are recorded sent without sending them again; the next row is the one that may have been in
    flight (a possible duplicate); the rest were never tried. Without a mark every row may have been
    accepted, and each is counted as a possible duplicate: nothing is lost, and every copy is counted.

    The cache is not the truth of anything: whenever writing a mark fails (the cache is down), the batch
    falls back to one UPDATE per accepted message (`_record_sent_one`) for the rest of its rows."""

    def __init__(self, lease_token: uuid.UUID) -> None:
        self.key = accepted_mark_key(lease_token)
        self.redis = None
        backend = caches["default"]
        if isinstance(backend, RedisCache):
            # Django's cache API makes a new Redis client object for every call, a third of a mark's time:
            # here one for the batch, from Django's own client (`get_client`, on its connection pool),
            # writing the key and value as `cache.set` does (an int is stored as itself), so that
            # `cache.get_many` reads the mark back.
            self.redis_key = backend.make_and_validate_key(self.key)
            self.redis = backend._cache.get_client(self.redis_key, write=True)
        self.working = self._write(0)

    def _write(self, delivery_id: int) -> bool:
        try:
            if self.redis is not None:
                self.redis.set(self.redis_key, delivery_id, ex=int(ACCEPTED_MARK_KEPT.total_seconds()))
            else:
                cache.set(self.key, delivery_id, timeout=ACCEPTED_MARK_KEPT.total_seconds())
        except Exception as exc:  # any cache backend's error: fall back to the database
            logger.warning("The shared cache refused the invitation progress mark (%s: %s); recording each "
                           "accepted message in the database instead", type(exc).__name__, exc)
            return False
        return True

    def accepted(self, delivery_id: int) -> bool:
        """Mark this row accepted; False if it must be recorded in the database now."""
        self.working = self.working and self._write(delivery_id)
        return self.working

    def forget(self) -> None:
        """The batch is recorded in the database: the mark has done its job."""
        try:
            cache.delete(self.key)
        except Exception:  # it expires anyway
            logger.warning("Could not delete the invitation progress mark %s; it expires by itself", self.key)


def _record_sent_one(claimed: Claimed, sent_at: datetime) -> bool:
    """The fallback when the cache cannot take a mark: this accepted message recorded at once. False if the
    row was already recorded sent."""
    return bool(_sent_rows_update([(claimed, sent_at)]))


def _sent_rows_update(accepted: Sequence[tuple[Claimed, datetime]]) -> list[int]:
    """Mark these rows sent, each with its moment and revision; returns the ids it changed (a row already
    recorded sent, by the sweeper from a mark, is left alone). Not conditional on the lease: the server
    accepted them, so they are sent, whatever the sweeper did meanwhile. PostgreSQL: one UPDATE … FROM
    (VALUES …) … RETURNING. Elsewhere: one SELECT and one `bulk_update`."""
    if not accepted:
        return []
    if db_connection.vendor != "postgresql":
        by_pk = {claimed.delivery.pk: (claimed, sent_at) for claimed, sent_at in accepted}
        rows = list(Delivery.objects.filter(pk__in=list(by_pk)).exclude(status=Status.SENT).only("pk"))
        for row in rows:
            claimed, sent_at = by_pk[row.pk]
            row.status, row.sent_at, row.sent_revision = Status.SENT, sent_at, claimed.delivery.revision
            row.message_id, row.reason = claimed.delivery.message_id, ""
            row.lease_until = row.lease_token = row.next_attempt_at = row.dispatched_at = None
        Delivery.objects.bulk_update(rows, ["status", "sent_at", "sent_revision", "message_id", "reason",
                                            "lease_until", "lease_token", "next_attempt_at", "dispatched_at"])
        return [row.pk for row in rows]
    meta, quote = Delivery._meta, db_connection.ops.quote_name
    column = {name: quote(meta.get_field(name).column) for name in (
        "id", "status", "sent_at", "sent_revision", "message_id", "reason", "lease_until", "lease_token",
        "next_attempt_at", "dispatched_at")}
    rows = ", ".join(["(%s, %s::timestamptz, %s, %s)"] * len(accepted))
    params: list = [Status.SENT, ""]
    for claimed, sent_at in accepted:
        params += [claimed.delivery.pk, sent_at, claimed.delivery.revision, claimed.delivery.message_id]
    params.append(Status.SENT)
    nulls = ", ".join(f"{column[name]} = NULL" for name in ("lease_until", "lease_token", "next_attempt_at",
                                                            "dispatched_at"))
    sql = (f"UPDATE {quote(meta.db_table)} AS d SET {column['status']} = %s, {column['reason']} = %s, "  # noqa: S608
           f"{column['sent_at']} = v.sent_at, {column['sent_revision']} = v.revision, "
           f"{column['message_id']} = v.message_id, {nulls} "
           f"FROM (VALUES {rows}) AS v (id, sent_at, revision, message_id) "
           f"WHERE d.{column['id']} = v.id AND d.{column['status']} <> %s RETURNING d.{column['id']}")
    with db_connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [pk for (pk,) in cursor.fetchall()]


def _record_sent_batch(accepted: Sequence[tuple[Claimed, datetime]], recorded: Sequence[Claimed]) -> None:
    """At the batch's end, in one transaction: the accepted rows not yet recorded marked sent, then the
    events of every invitation this batch sent and one audit entry per session, not per message: the audit
    chain is one lock for everyone, and each invitation's own history is in its DeliveryEvents. `recorded`:
    the rows already written one by one (`_record_sent_one`)."""
    if not accepted and not recorded:
        return
    with transaction.atomic():
        changed = set(_sent_rows_update(accepted))
        sent = [*recorded, *(claimed for claimed, _ in accepted if claimed.delivery.pk in changed)]
        if not sent:
            return
        by_session: dict[int, tuple[VideoSession, list[int]]] = {}
        for claimed in sent:
            by_session.setdefault(claimed.session.pk, (claimed.session, []))[1].append(claimed.delivery.pk)
        _events((claimed.delivery.pk, Status.SENT, "") for claimed in sent)
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
        _events((c.delivery.pk, c.previous_status, reason) for c in claimed)


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
    (`AcceptedMarks`) and recording them all sent in one transaction at the end. At-least-once (see the
    module docstring). Queries: a constant number per batch (and a few per failure); with the cache down,
    one more UPDATE per message sent.

    The end's record is written when the loop ends or raises an `Exception`. Anything else (a worker being
    stopped dead, which `tests/sessions/test_state_machine.py` plays with a BaseException) leaves the rows
    `sending` for the sweeper, which the marks tell what was accepted."""
    ids = list(dict.fromkeys(int(pk) for pk in delivery_ids))
    result = BatchResult()
    lease_token = uuid.uuid4()
    marks = AcceptedMarks(lease_token)
    with MailBatch(budget_seconds=min(_batch_budget_seconds(), CLAIM_SLACK_SECONDS)) as batch:
        claimed = deliveries_claim(ids, lease_token=lease_token)
        claimed_ids = {c.delivery.pk for c in claimed}
        result.skipped = [pk for pk in ids if pk not in claimed_ids]
        accepted: list[tuple[Claimed, datetime]] = []  # marked in the cache, recorded at the end
        recorded: list[Claimed] = []  # recorded one by one (the cache refused a mark)
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
                    if marks.accepted(item.delivery.pk):
                        accepted.append((item, timezone.now()))
                    elif _record_sent_one(item, timezone.now()):
                        recorded.append(item)
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
            count += _overtake(by_session[session.pk], session)
    return count


def _sweep_expired_leases(limit: int) -> int:
    """Take back rows whose worker presumably died mid-send, a claim (`lease_token`) at a time.

    A claim's rows are sent in id order, and each accepted message is marked in the shared cache
    (`AcceptedMarks`) until the batch's end writes them all. So of a claim's rows still `sending`: those up to
    its mark were accepted, and are recorded sent now, not sent again; the next may have reached the mail
    server: it is counted as a possible duplicate (promise 2) and its attempt stays spent; the others were
    never tried, and get their attempt back. Without a mark (the cache lost it) every row may have been
    accepted, and each is counted. Rows out of attempts are failed and alerted. Rows of a session that
    has started are left to `_sweep_overtaken`, after their accepted rows are recorded."""
    expired = (Delivery.objects.filter(status=Status.SENDING, lease_until__lt=Now())
               .values_list("lease_token", flat=True).distinct())
    tokens = list(expired.order_by("lease_token")[:limit])
    if not tokens:
        return 0
    has_token = Q(lease_token__in=[t for t in tokens if t is not None])
    if None in tokens:
        has_token |= Q(lease_token__isnull=True)
    with transaction.atomic():
        rows = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(has_token, status=Status.SENDING, lease_until__lt=Now())
            .annotate(db_now=Now())
            .order_by("pk")
            .values_list("pk", "attempts", "session_id", "lease_token", "session__starts_at", "db_now")
        )
        if not rows:
            return 0
        marks = cache_marks([token for token in {row[3] for row in rows} if token is not None])
        now = rows[0][5]
        accepted, maybe, untried = [], [], []
        by_claim: dict = defaultdict(list)
        for row in rows:
            by_claim[row[3]].append(row)
        for token, claim in by_claim.items():
            mark = marks.get(token)
            if mark is None:
                maybe += claim
                continue
            accepted += [row for row in claim if row[0] <= mark]
            rest = [row for row in claim if row[0] > mark]
            maybe += rest[:1]
            untried += rest[1:]
        if accepted:
            _sent_after_the_worker_died([row[0] for row in accepted])
        ahead = {row[0] for row in rows if row[4] > now}
        not_tried = "the worker stopped before trying it; queued again"
        reason = "the worker stopped while sending; the mail server may already have accepted it"
        if untried:
            Delivery.objects.filter(pk__in=[row[0] for row in untried]).update(
                status=Status.RETRY, attempts=F("attempts") - 1, lease_until=None, lease_token=None,
                next_attempt_at=None, dispatched_at=None, reason=not_tried,
            )
            _events((row[0], Status.RETRY, not_tried) for row in untried)
        again = [row[0] for row in maybe if row[1] < settings.EMAIL_MAX_ATTEMPTS or row[0] not in ahead]
        final = [(row[0], row[2]) for row in maybe if row[1] >= settings.EMAIL_MAX_ATTEMPTS and row[0] in ahead]
        if again:
            # A started session's rows become retries too, which `_sweep_overtaken` then fails and reports.
            Delivery.objects.filter(pk__in=again).update(
                status=Status.RETRY, possible_duplicate=F("possible_duplicate") + 1, lease_until=None,
                lease_token=None, next_attempt_at=None, dispatched_at=None, reason=reason,
            )
            _events((pk, Status.RETRY, reason) for pk in again)
        if final:
            Delivery.objects.filter(pk__in=[pk for pk, _ in final]).update(
                status=Status.FAILED, possible_duplicate=F("possible_duplicate") + 1, lease_until=None,
                lease_token=None, next_attempt_at=None, dispatched_at=None, reason=f"gave up: {reason}",
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
    if accepted:
        logger.info("Recorded %s invitation(s) sent from their progress marks after their worker stopped: %s",
                    len(accepted), ", ".join(str(row[0]) for row in accepted))
    return len(rows)


def cache_marks(tokens) -> dict:
    """lease token → the id of the last row its batch marked accepted (0: none yet), for the marks the
    cache still has; one round trip. A cache that does not answer has none."""
    if not tokens:
        return {}
    keys = {accepted_mark_key(token): token for token in tokens}
    try:
        found = cache.get_many(list(keys))
    except Exception as exc:
        logger.warning("Could not read invitation progress marks (%s: %s); counting every row of those "
                       "batches as a possible duplicate", type(exc).__name__, exc)
        return {}
    return {keys[key]: int(value) for key, value in found.items()}


def _sent_after_the_worker_died(delivery_ids: Sequence[int]) -> None:
    """Rows the mail server accepted (their batch's progress mark says so) whose worker died before writing
    them: recorded sent, with their event, and one audit entry per session."""
    rows = list(Delivery.objects.filter(pk__in=list(delivery_ids)).select_related("session"))
    now = timezone.now()
    for row in rows:
        # When the sweeper learnt of it: the moment of acceptance died with the worker, a lease ago at most.
        row.status, row.sent_at, row.sent_revision, row.reason = Status.SENT, now, row.revision, ""
        row.lease_until = row.lease_token = row.next_attempt_at = row.dispatched_at = None
    Delivery.objects.bulk_update(rows, ["status", "sent_at", "sent_revision", "reason", "lease_until",
                                        "lease_token", "next_attempt_at", "dispatched_at"])
    recovered = "sent; recorded from the progress mark after the worker stopped"
    _events((row.pk, Status.SENT, recovered) for row in rows)
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
