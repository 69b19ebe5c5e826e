"""Invitations under faults (quality.md, "Faults"; figures "loss", "outages", "SMTP"), against a real
Celery worker process, a Redis of our own and a local mail server that misbehaves.

How time is shortened, and nothing else: the sweeper runs from the test every half second instead of
every minute from beat, and presumes a task lost after a few seconds instead of a minute; where a real
deployment would wait out a lease (2 × EMAIL_TIMEOUT + 30 s) or a retry's backoff (1, 2, 4 … minutes),
the test moves that one timestamp in the database back to now, which is what waiting would do: the rows
are the clock (design.md: long waits live in the database).
"""

import logging
import re
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import F, Sum
from django.utils import timezone

from outbox.models import OutboxMessage
from sessions.dispatch import deliveries_plan
from sessions.models import Delivery, SessionAlert

from .conftest import FAMILY_DOMAIN, drive, due_session_with_families, family_address, statuses, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.faults]

Status = Delivery.Status
CONCURRENCY = 2


def invitations_received(sink) -> dict[str, int]:
    """Messages per family address (the set-up also mails staff about the PIA; those are not counted)."""
    return {to: n for to, n in sink.per_recipient().items() if to.endswith("@" + FAMILY_DOMAIN)}


def expire_orphaned_leases(session) -> list[int]:
    """With every worker dead, each row still `sending` is orphaned: end its lease now, as waiting
    2 × EMAIL_TIMEOUT + 30 s would. Returns those rows."""
    orphaned = list(Delivery.objects.filter(session=session, status=Status.SENDING).values_list("pk", flat=True))
    # Moved back by the same amount, so the rows of one claim still share their `lease_until`.
    Delivery.objects.filter(pk__in=orphaned).update(lease_until=F("lease_until") - timedelta(hours=1))
    return orphaned


def claims_at_kill(session) -> dict:
    """recipient → claim (`lease_token`) of every row still `sending`: the rows the dead worker held."""
    return dict(Delivery.objects.filter(session=session, status=Status.SENDING).values_list("recipient",
                                                                                           "lease_token"))


def hurry_retries(session) -> None:
    """Let every retry fall due now (the backoff itself is checked from the rows before this runs)."""
    Delivery.objects.filter(session=session, status=Status.RETRY, next_attempt_at__gt=timezone.now()).update(
        next_attempt_at=timezone.now())


# ---------------------------------------------------------------------------------------------------
# A worker killed three times during 1,000 sends


def test_a_worker_killed_three_times_mid_batch_loses_nothing(personas, redis_server, smtp_sink, worker_factory,
                                                            fast_sweeper):
    count, kill_at = 1000, (150, 450, 750)
    session = due_session_with_families(personas, count)
    worker = worker_factory(broker_url=redis_server.url, smtp_port=smtp_sink.port, concurrency=CONCURRENCY)
    assert deliveries_plan().created == count

    orphaned: list[int] = []  # one entry per row per kill that found it `sending`
    claims = 0  # the batches the kills cut short
    accepted_unrecorded: list[tuple[str, int]] = []  # per kill: (recipient, copies then) of rows `sending`
    kills: list[dict] = []  # whose message the mail server already had
    started = time.monotonic()
    for threshold in kill_at:
        # Counted at the mail server: the database records a batch's messages at its end.
        assert drive(session, until=lambda t=threshold: sum(invitations_received(smtp_sink).values()) >= t,
                     seconds=90, every=0.02, sweep_every=0.5), f"stuck before the kill at {threshold}"
        # Kill in the worst window: the mail server has the next message but has not answered 250 yet.
        smtp_sink.hold()
        assert smtp_sink.holding.wait(10), "no message reached the mail server"
        worker.kill()  # SIGKILL to the whole process group, mid-batch
        smtp_sink.holding.clear()
        kills.append(statuses(session))
        held = claims_at_kill(session)
        claims += len(set(held.values()))
        copies = smtp_sink.per_recipient()
        accepted_unrecorded += [(to, copies[to]) for to in held if to in copies]
        orphaned += expire_orphaned_leases(session)
        worker.start()
    assert drive(session, until=lambda: statuses(session) == {Status.SENT: count}, seconds=120), statuses(session)
    elapsed = time.monotonic() - started

    # Every kill landed mid-run: invitations were still to be sent, and the worker was busy sending.
    for at_kill in kills:
        assert at_kill.get(Status.SENT, 0) < count and at_kill.get(Status.SENDING, 0) > 0, kills
    rows = Delivery.objects.filter(session=session)
    # 0 lost: every guardian received their invitation.
    received = invitations_received(smtp_sink)
    assert set(received) == {family_address(i) for i in range(count)}
    # A duplicate needs a kill between the mail server's accept and the progress mark of that message. Each
    # kill here was made to land in that window for one message (the server held its 250), so each caused
    # one duplicate; the other process may, by chance, have been in that window too (well under a
    # millisecond per message), so at most one more per kill. Of each cut-short batch the sweeper counts
    # the row after its mark as a possible duplicate (the only one that can have been accepted unmarked),
    # records the marked rows sent and gives the others their attempt back. So, per row: copies ≤ 1 +
    # possible_duplicate (no duplicate goes uncounted); in all: kills ≤ duplicates ≤ counted ≤ batches cut
    # short ≤ kills × processes, and each held message was sent again.
    duplicates = sum(n - 1 for n in received.values())
    counted = rows.aggregate(total=Sum("possible_duplicate"))["total"]
    per_row = dict(rows.values_list("recipient", "possible_duplicate"))
    assert all(received[to] <= 1 + per_row[to] for to in received), {
        to: (n, per_row[to]) for to, n in received.items() if n > 1 + per_row[to]}
    assert len(smtp_sink.held) == len(kill_at)
    assert all(received[to] >= 1 + n for to, n in Counter(smtp_sink.held).items())
    assert len(kill_at) <= duplicates <= counted <= claims <= len(kill_at) * CONCURRENCY
    # The messages the server had accepted when the worker died, still `sending` in the database: the marks
    # kept them from being sent again, but for the one in flight per batch (the held ones among them).
    sent_again = [to for to, then in accepted_unrecorded if received[to] > then]
    assert set(smtp_sink.held) <= set(sent_again) and len(sent_again) <= claims, (sent_again, smtp_sink.held)
    assert len(accepted_unrecorded) > len(sent_again), "the kills found no accepted rows to recover"
    # Bounded attempts: one per row, and one more for each kill that may have interrupted it mid-send.
    assert all(attempts == 1 + dup for attempts, dup in rows.values_list("attempts", "possible_duplicate"))
    # Everything sent in time: before the start less ten minutes.
    last_sent = max(rows.values_list("sent_at", flat=True))
    assert last_sent < session.starts_at - timedelta(minutes=10)
    print(f"\n1,000 invitations, {len(kill_at)} SIGKILLs (sent at each kill: "
          f"{[k.get(Status.SENT, 0) for k in kills]}): all sent in {elapsed:.1f} s; "
          f"{len(orphaned)} rows orphaned mid-send ({len(set(orphaned))} distinct) in {claims} batches, "
          f"{len(accepted_unrecorded)} of them already accepted by the mail server (all recorded from the "
          f"progress marks but {len(sent_again)}, sent again); {duplicates} duplicate message(s), {counted} "
          f"counted as possible duplicates")


def test_a_worker_and_redis_lost_together_mid_batch_duplicate_at_most_20_per_batch(
        personas, redis_server, smtp_sink, worker_factory, fast_sweeper):
    """The worker is killed mid-batch and Redis with it, the progress marks of the batch lost: what the
    database recorded every 20 accepted messages bounds the copies sent again to 20 for the batch, each of
    them counted; the rows it recorded are sent at the moment the mail server accepted them."""
    count = 400
    session = due_session_with_families(personas, count)
    worker = worker_factory(broker_url=redis_server.url, smtp_port=smtp_sink.port, concurrency=1)
    assert deliveries_plan().created == count
    # Well into the first batch of 200: the database records its end only, and its progress every 20.
    assert wait_for(lambda: sum(invitations_received(smtp_sink).values()) >= 130, 60, step=0.005), statuses(session)
    smtp_sink.hold()
    assert smtp_sink.holding.wait(10), "no message reached the mail server"
    worker.kill()
    redis_server.stop()  # the broker's queue and the cache's progress marks, gone with the worker
    killed_at = timezone.now()
    smtp_sink.holding.clear()
    held = claims_at_kill(session)
    claims = len(set(held.values()))
    copies = smtp_sink.per_recipient()
    accepted_unrecorded = [to for to in held if to in copies]
    recorded = set(Delivery.objects.filter(session=session, status=Status.SENDING, accepted_at__isnull=False)
                   .values_list("recipient", flat=True))
    redis_server.start()  # empty, as a Redis that lost its memory comes back
    expire_orphaned_leases(session)
    worker.start()
    assert drive(session, until=lambda: statuses(session) == {Status.SENT: count}, seconds=120), statuses(session)

    received = invitations_received(smtp_sink)
    assert set(received) == {family_address(i) for i in range(count)}  # nothing lost
    rows = Delivery.objects.filter(session=session)
    duplicates = sum(n - 1 for n in received.values())
    counted = rows.aggregate(total=Sum("possible_duplicate"))["total"]
    per_row = dict(rows.values_list("recipient", "possible_duplicate"))
    assert claims == 1 and len(accepted_unrecorded) > 100, (claims, len(accepted_unrecorded))
    assert 1 <= duplicates <= counted <= 20, (duplicates, counted)
    assert all(received[to] <= 1 + per_row[to] for to in received)  # every copy counted
    # What the database had recorded was not sent again, and is recorded sent when it was accepted.
    assert len(recorded) >= 100 and all(received[to] == 1 for to in recorded)
    sent_at = dict(rows.filter(recipient__in=recorded).values_list("recipient", "sent_at"))
    assert all(at < killed_at for at in sent_at.values())
    print(f"\nWorker and Redis lost together {len(accepted_unrecorded)} messages into a batch of 200: "
          f"{len(recorded)} recorded in the database were not sent again; {duplicates} duplicate(s), "
          f"{counted} counted")


# ---------------------------------------------------------------------------------------------------
# Redis stopped, and Redis flushed


def test_invitations_planned_while_redis_is_down_are_sent_once_it_is_back(personas, redis_server, smtp_sink,
                                                                         worker_factory, fast_sweeper, caplog):
    count = 60
    session = due_session_with_families(personas, count)
    worker = worker_factory(broker_url=redis_server.url, smtp_port=smtp_sink.port)
    redis_server.stop()

    with caplog.at_level(logging.WARNING, logger="sessions.dispatch"):
        planning = time.monotonic()
        assert deliveries_plan().created == count  # the planner commits its rows although the broker is gone
        planning = time.monotonic() - planning
        # The sweeper keeps trying while Redis is down, and says so rather than failing.
        drive(session, until=lambda: False, seconds=4)
    # One warning per hand-over of the 60 rows (two batches), by the planner and then the sweeper: each stops
    # at the first failure rather than waiting for a connection timeout per batch.
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Could not hand")]
    assert warnings and all(w.startswith("Could not hand 60 invitation(s)") for w in warnings), warnings
    assert statuses(session) == {Status.PENDING: count}
    assert invitations_received(smtp_sink) == {}

    redis_server.start()  # the same port: the worker reconnects by itself
    back = time.monotonic()
    assert drive(session, until=lambda: statuses(session) == {Status.SENT: count}, seconds=90), statuses(session)
    recovery = time.monotonic() - back
    assert worker.process.poll() is None  # the same worker rode out the outage
    assert "Cannot connect to redis" in worker.log() or "Connection to broker lost" in worker.log()
    assert invitations_received(smtp_sink) == {family_address(i): 1 for i in range(count)}
    assert recovery < 180  # quality.md: everything due sent within 3 minutes of recovery
    print(f"\nRedis down: planning {count} invitations took {planning:.1f} s; all sent {recovery:.1f} s after "
          "Redis came back")


def test_invitations_lost_in_a_flushed_redis_are_recovered_by_the_sweeper(personas, redis_server, smtp_sink,
                                                                         worker_factory, fast_sweeper):
    count = 300
    session = due_session_with_families(personas, count)
    worker_factory(broker_url=redis_server.url, smtp_port=smtp_sink.port, concurrency=1)
    assert deliveries_plan().created == count
    # Mid-way through the first batch (counted at the mail server: the batch is recorded at its end), while
    # the others wait in the queue.
    assert wait_for(lambda: sum(invitations_received(smtp_sink).values()) >= 20, 60, step=0.01), statuses(session)
    queued = redis_server.queued()
    redis_server.flushall()  # every queued task is gone, and kombu's exchange bindings with them
    at_flush = statuses(session)
    assert queued > 0 and at_flush.get(Status.PENDING, 0) > 0, (queued, at_flush)

    flushed = time.monotonic()
    assert drive(session, until=lambda: statuses(session) == {Status.SENT: count}, seconds=90), statuses(session)
    recovery = time.monotonic() - flushed
    assert invitations_received(smtp_sink) == {family_address(i): 1 for i in range(count)}
    assert not Delivery.objects.filter(session=session, possible_duplicate__gt=0).exists()
    print(f"\nRedis flushed with {queued} task(s) queued and {at_flush.get(Status.PENDING)} invitations unsent: "
          f"all sent {recovery:.1f} s later")


# ---------------------------------------------------------------------------------------------------
# The mail server: transient errors, a refused address, a black hole


def test_transient_smtp_errors_are_retried_with_backoff_until_sent(personas, redis_server, smtp_sink,
                                                                  worker_factory, fast_sweeper):
    count = 6
    # Five faults: even if every one of them hits the same row, it is sent on its sixth attempt (the limit).
    faults = ["421", "451", "disconnect", "451", "421"]
    smtp_sink.faults = list(faults)
    session = due_session_with_families(personas, count)
    worker_factory(broker_url=redis_server.url, smtp_port=smtp_sink.port)
    assert deliveries_plan().created == count

    delays: list[tuple[int, float]] = []  # (attempts, seconds to the next attempt) of every retry seen

    def note_backoff_then_hurry():
        for delivery in Delivery.objects.filter(session=session, status=Status.RETRY,
                                                next_attempt_at__gt=timezone.now()):
            since = delivery.events.filter(status=Status.RETRY).latest("at", "pk").at
            delays.append((delivery.attempts, (delivery.next_attempt_at - since).total_seconds()))
        hurry_retries(session)

    assert drive(session, until=lambda: statuses(session) == {Status.SENT: count}, seconds=60,
                 each=note_backoff_then_hurry), statuses(session)
    rows = Delivery.objects.filter(session=session)
    # Every fault cost exactly one attempt, and nothing else did: bounded attempts.
    assert [reply for _, reply in smtp_sink.answered].count("ok") == count
    assert rows.aggregate(total=Sum("attempts"))["total"] == count + len(faults)
    assert max(rows.values_list("attempts", flat=True)) <= settings.EMAIL_MAX_ATTEMPTS == 6
    # Exactly one message per guardian: a refused or interrupted DATA delivered nothing.
    assert invitations_received(smtp_sink) == {family_address(i): 1 for i in range(count)}
    # The backoff lives in the database: 1, 2, 4, 8 minutes after the 1st to 4th failures, then 15 minutes.
    assert len(delays) == len(faults), delays
    for attempts, seconds in delays:
        assert min(60 * 2 ** (attempts - 1), 15 * 60) - 1 <= seconds <= min(60 * 2 ** (attempts - 1), 15 * 60), delays
    reasons = {e.reason for r in rows for e in r.events.filter(status=Status.RETRY)}
    assert any("421" in r for r in reasons) and any("451" in r for r in reasons)
    assert any("disconnected" in r for r in reasons), reasons


def test_a_refused_address_fails_with_the_reason_and_the_host_is_alerted(personas, redis_server, smtp_sink,
                                                                        worker_factory, fast_sweeper):
    count = 4
    smtp_sink.refuse = {family_address(2)}
    session = due_session_with_families(personas, count)
    worker_factory(broker_url=redis_server.url, smtp_port=smtp_sink.port)
    assert deliveries_plan().created == count
    host = session.host

    def host_told() -> bool:  # the message at the mail server, and the worker's write that it was sent
        return OutboxMessage.objects.filter(recipient=host.email, template="session-alert",
                                            status=OutboxMessage.Status.SENT).exists()

    assert drive(session, until=lambda: statuses(session) == {Status.SENT: count - 1, Status.FAILED: 1}
                 and host_told(), seconds=45), (statuses(session), smtp_sink.per_recipient())
    refused = Delivery.objects.get(session=session, guardian__email=family_address(2))
    assert refused.status == Status.FAILED and refused.attempts == 1
    assert "550" in refused.reason
    alert = SessionAlert.objects.get(session=session, delivery=refused)
    assert alert.kind == SessionAlert.Kind.DELIVERY_FAILED and "550" in alert.message
    # The host is told by email, through the outbox, which the same worker sent to the mail server.
    assert OutboxMessage.objects.filter(recipient=host.email, template="session-alert",
                                        status=OutboxMessage.Status.SENT).count() == 1
    [told] = smtp_sink.to(host.email)
    assert " ".join(str(told["Subject"]).split()).startswith(f"An invitation could not be sent: {session.title}, ")
    assert invitations_received(smtp_sink) == {family_address(i): 1 for i in range(count) if i != 2}


def test_a_mail_server_that_never_answers_fails_the_invitations_without_a_task_over_its_limit(
        personas, redis_server, black_hole, worker_factory, fast_sweeper):
    count, max_attempts, time_limit = 2, 2, 30
    session = due_session_with_families(personas, count)
    worker = worker_factory(broker_url=redis_server.url, smtp_port=black_hole, extra_env={
        "EMAIL_MAX_ATTEMPTS": str(max_attempts), "CELERY_TASK_TIME_LIMIT": str(time_limit)})
    assert deliveries_plan().created == count

    def done() -> bool:
        return statuses(session) == {Status.FAILED: count}

    assert drive(session, until=done, seconds=60, each=lambda: hurry_retries(session)), statuses(session)
    rows = Delivery.objects.filter(session=session)
    for row in rows:
        assert row.attempts == max_attempts and row.lease_until is None
        # smtplib reports the greeting's read timing out as "Connection unexpectedly closed: timed out".
        assert row.reason.startswith(f"gave up after {max_attempts} attempts: ")
        assert {e.reason for e in row.events.filter(status__in=[Status.RETRY, Status.FAILED])} <= {
            "the mail server disconnected", f"gave up after {max_attempts} attempts: the mail server disconnected"}
    assert SessionAlert.objects.filter(session=session, kind=SessionAlert.Kind.DELIVERY_FAILED).count() == count
    assert OutboxMessage.objects.filter(recipient=session.host.email, template="session-alert").exists()
    # Each task gave up on the silent server after EMAIL_TIMEOUT, far inside its time limit.
    log = worker.log()
    runs = [float(s) for s in re.findall(r"sessions\.tasks\.deliveries_send\[[^\]]+\] succeeded in ([0-9.]+)s", log)]
    assert len(runs) >= count * max_attempts and max(runs) < time_limit - 20, runs
    print(f"\nBlack hole: {len(runs)} send tasks, the longest {max(runs):.1f} s (soft limit {time_limit - 20} s)")
    assert "TimeLimitExceeded" not in log and "Hard time limit" not in log
