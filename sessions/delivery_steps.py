"""The steps every module that moves invitations shares (the planner and send task in `sessions.dispatch`,
the sweeper, the changes of a session, withdrawals): recording a delivery's events, alerting the host,
failing what the start overtook, and handing work to the broker.

The broker hand-off names the tasks rather than importing `sessions.tasks`, which imports the services
that use it: `sessions.apps` registers the tasks at start-up, and `sessions.tasks` takes its names from
here.
"""

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from celery import current_app
from django.conf import settings
from django.db import connection as db_connection
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from outbox.services import email_queue
from schools.audit import audit_log

from .models import Delivery, DeliveryEvent, SessionAlert, VideoSession

logger = logging.getLogger(__name__)

Status = Delivery.Status

SEND_TASK = "sessions.tasks.deliveries_send"
PLAN_TASK = "sessions.tasks.deliveries_plan"

# Invitations per send task: one claim, one connection. Larger than the outbox's batches, the claim's
# fixed queries (the gate, the registry) being spread over more messages; the batch's time budget
# (`dispatch.CLAIM_SLACK_SECONDS`) still gives back what it has no time to send, whatever the size.
SEND_BATCH_SIZE = 200

OVERTAKEN_REASON = "the session started before it could be sent"


# ---------------------------------------------------------------------------------------------------
# Events


def delivery_events_record(deliveries: Iterable[tuple[int, str, str]],
                           moments: Mapping[int, datetime] | None = None) -> None:
    """One `DeliveryEvent` per (delivery id, status, reason), in one query, all at the same moment, or each at
    its own when `moments` (delivery id → when) names it (an invitation sent: when the mail server accepted
    it). On PostgreSQL an INSERT … SELECT FROM UNNEST of the columns: building a model instance per event
    cost more than the database's work."""
    rows = [(pk, status, reason[:300]) for pk, status, reason in deliveries]
    if not rows:
        return
    now, moments = timezone.now(), moments or {}
    if db_connection.vendor != "postgresql":
        DeliveryEvent.objects.bulk_create([DeliveryEvent(delivery_id=pk, status=status, reason=reason,
                                                         at=moments.get(pk) or now)
                                           for pk, status, reason in rows])
        return
    meta, quote = DeliveryEvent._meta, db_connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in ("delivery", "status", "reason", "at"))
    pks, statuses, reasons = (list(column) for column in zip(*rows, strict=True))
    with db_connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({columns}) "  # noqa: S608 (names from the model)
            "SELECT d, s, r, COALESCE(a, %s) "
            "FROM UNNEST(%s::bigint[], %s::varchar[], %s::varchar[], %s::timestamptz[]) AS e (d, s, r, a)",
            [now, pks, statuses, reasons, [moments.get(pk) for pk in pks]],
        )


# ---------------------------------------------------------------------------------------------------
# Alerts to the host


def session_path(session: VideoSession) -> str:
    """The session's page for the host, or the dashboard if the sessions pages are not mounted."""
    try:
        return reverse("video_sessions:session", kwargs={"pk": session.pk})
    except NoReverseMatch:
        return reverse("schools:dashboard")


def session_url(session: VideoSession) -> str:
    return settings.SITE_URL + session_path(session)


def session_alert_raise(*, session: VideoSession, kind: str, message: str, delivery_ids: Sequence[int] = ()) -> int:
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
# What the start overtook


def deliveries_overtake(delivery_ids: Sequence[int], session: VideoSession) -> int:
    """Mark failed what the start time overtook, with one alert each (and one email to the host)."""
    updated = Delivery.objects.filter(pk__in=list(delivery_ids)).exclude(status__in=Delivery.FINAL).update(
        status=Status.FAILED, reason=OVERTAKEN_REASON, lease_until=None, next_attempt_at=None, dispatched_at=None,
    )
    if updated:
        delivery_events_record((pk, Status.FAILED, OVERTAKEN_REASON) for pk in delivery_ids)
        session_alert_raise(session=session, kind=SessionAlert.Kind.DELIVERY_FAILED, delivery_ids=delivery_ids,
                            message=f"An invitation could not be sent: {OVERTAKEN_REASON}.")
    return updated


# ---------------------------------------------------------------------------------------------------
# The broker hand-off


def _task(name: str):
    return current_app.tasks[name]


def deliveries_dispatch(delivery_ids: Sequence[int]) -> None:
    """Hand ids to the broker in batches. After commit only; if the broker is down, the sweeper catches up."""
    from kombu.exceptions import OperationalError

    for start in range(0, len(delivery_ids), SEND_BATCH_SIZE):
        batch = list(delivery_ids[start : start + SEND_BATCH_SIZE])
        try:
            _task(SEND_TASK).delay(batch)
        except (OperationalError, OSError):
            # Stop at the first failure: each try against a broker that is down costs a connection timeout,
            # and the rows are in the database, where the sweeper finds them once the broker is back.
            logger.warning("Could not hand %s invitation(s) to the broker (first batch: %s); the sweeper will "
                           "send them", len(delivery_ids) - start, batch, exc_info=True)
            return


def deliveries_plan_queue() -> None:
    """Queue the planner now. Raises the broker's error (`kombu.exceptions.OperationalError`, `OSError`)."""
    _task(PLAN_TASK).delay()
