"""The sweeper: lost tasks, due retries, expired leases, what the start overtook, and the alert when
invitations are still unsent shortly before the start (promise 3)."""

import datetime as dt
from collections import Counter

import pytest
import time_machine
from django.core import mail
from django.core.cache import cache
from django.core.mail.backends import locmem
from django.db import transaction
from django.utils import timezone

from outbox.models import OutboxMessage
from sessions import dispatch
from sessions.dispatch import deliveries_plan, delivery_claim
from sessions.models import Delivery, DeliveryEvent, SessionAlert, VideoSession
from sessions.progress import Mark
from sessions.sweep import cache_marks, deliveries_sweep
from tests.factories import GroupFactory

from .emails_dispatch import consenting_family, due_session

pytestmark = pytest.mark.django_db

Status = Delivery.Status


@pytest.fixture
def dispatched(monkeypatch):
    """The ids the sweeper hands to the broker (after its commit)."""
    handed: list[int] = []
    monkeypatch.setattr(dispatch, "deliveries_dispatch", lambda ids: handed.extend(ids))
    return handed


@pytest.fixture
def planned(personas):
    owls = GroupFactory(school=personas.school, name="Owls")
    consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    return session, Delivery.objects.get(session=session)


def _sweep(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return deliveries_sweep()


def test_a_pending_invitation_whose_task_seems_lost_is_queued_again(planned, dispatched,
                                                                    django_capture_on_commit_callbacks):
    _, delivery = planned
    assert _sweep(django_capture_on_commit_callbacks).dispatched == 0  # just handed to the broker
    Delivery.objects.filter(pk=delivery.pk).update(dispatched_at=timezone.now() - dt.timedelta(minutes=2))
    assert _sweep(django_capture_on_commit_callbacks).dispatched == 1
    assert dispatched == [delivery.pk]
    assert _sweep(django_capture_on_commit_callbacks).dispatched == 0  # marked as handed again


def test_a_retry_is_queued_only_once_due(planned, dispatched, django_capture_on_commit_callbacks):
    _, delivery = planned
    Delivery.objects.filter(pk=delivery.pk).update(status=Status.RETRY, dispatched_at=None,
                                                   next_attempt_at=timezone.now() + dt.timedelta(minutes=2))
    assert _sweep(django_capture_on_commit_callbacks).dispatched == 0
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert _sweep(django_capture_on_commit_callbacks).dispatched == 1 and dispatched == [delivery.pk]


def test_an_expired_lease_is_retried_and_counted_as_a_possible_duplicate(planned, dispatched,
                                                                         django_capture_on_commit_callbacks):
    _, delivery = planned
    assert delivery_claim(delivery.pk) is not None  # the worker then dies before recording anything
    Delivery.objects.filter(pk=delivery.pk).update(lease_until=timezone.now() - dt.timedelta(seconds=1))
    result = _sweep(django_capture_on_commit_callbacks)
    delivery.refresh_from_db()
    assert result.lease_expired == 1 and result.dispatched == 1
    assert delivery.status == Status.RETRY and delivery.possible_duplicate == 1
    assert dispatched == [delivery.pk]


def test_a_lease_still_running_is_left_alone(planned, dispatched, django_capture_on_commit_callbacks):
    _, delivery = planned
    delivery_claim(delivery.pk)
    assert _sweep(django_capture_on_commit_callbacks).lease_expired == 0
    delivery.refresh_from_db()
    assert delivery.status == Status.SENDING


def test_what_the_start_overtook_is_failed_with_one_alert_and_one_email(planned, dispatched,
                                                                         django_capture_on_commit_callbacks):
    session, delivery = planned
    VideoSession.objects.filter(pk=session.pk).update(starts_at=timezone.now() - dt.timedelta(seconds=5))
    result = _sweep(django_capture_on_commit_callbacks)
    delivery.refresh_from_db()
    assert result.overtaken == 1 and dispatched == []
    assert delivery.status == Status.FAILED and delivery.reason == "the session started before it could be sent"
    assert SessionAlert.objects.get().kind == SessionAlert.Kind.DELIVERY_FAILED
    assert OutboxMessage.objects.filter(template="session-alert").count() == 1
    _sweep(django_capture_on_commit_callbacks)
    assert SessionAlert.objects.count() == 1 and OutboxMessage.objects.filter(template="session-alert").count() == 1


def _due_since(minutes: int, ids) -> None:
    """These rows were planned (made pending) `minutes` ago."""
    then = timezone.now() - dt.timedelta(minutes=minutes)
    Delivery.objects.filter(pk__in=list(ids)).update(created_at=then)
    DeliveryEvent.objects.filter(delivery__in=list(ids), status=Status.PENDING).update(at=then)


def test_late_invitations_ten_minutes_before_the_start_alert_the_host_once_with_their_count(
        personas, dispatched, django_capture_on_commit_callbacks):
    owls = GroupFactory(school=personas.school, name="Owls")
    consenting_family(personas.school, owls)
    consenting_family(personas.school, owls)
    session = due_session(personas, group=owls, minutes_ahead=8)
    deliveries_plan()
    _due_since(6, Delivery.objects.values_list("pk", flat=True))
    assert _sweep(django_capture_on_commit_callbacks).alerted == 1
    assert _sweep(django_capture_on_commit_callbacks).alerted == 0
    alert = SessionAlert.objects.get(session=session)
    assert alert.kind == SessionAlert.Kind.UNSENT_NEAR_START and alert.delivery is None
    assert alert.message.startswith("2 invitation(s) not sent yet, more than 5 minutes after they were due")
    assert OutboxMessage.objects.filter(template="session-alert", recipient=personas.teacher.email).count() == 1


def test_no_unsent_alert_while_the_normal_send_is_in_progress(personas, dispatched,
                                                             django_capture_on_commit_callbacks):
    """The shortest lead time equals the alert's window: at the send time the invitations are unsent and the
    start is ten minutes away, yet nothing is late. Nor is a row being sent, whatever its age."""
    owls = GroupFactory(school=personas.school, name="Owls")
    for _ in range(3):
        consenting_family(personas.school, owls)
    session = due_session(personas, group=owls, minutes_ahead=10, lead_minutes=10)
    deliveries_plan()
    first, *rest = Delivery.objects.filter(session=session).order_by("pk").values_list("pk", flat=True)
    assert delivery_claim(first) is not None  # being sent, its lease running
    _due_since(6, [first])
    assert _sweep(django_capture_on_commit_callbacks).alerted == 0
    assert not SessionAlert.objects.exists()
    # Due and planned six minutes ago and still waiting: late, and only those are counted.
    VideoSession.objects.filter(pk=session.pk).update(send_at=timezone.now() - dt.timedelta(minutes=6))
    _due_since(6, rest)
    assert _sweep(django_capture_on_commit_callbacks).alerted == 1
    assert SessionAlert.objects.get().message.startswith("2 invitation(s) not sent yet")


def test_a_sent_session_raises_no_near_start_alert(personas, django_capture_on_commit_callbacks):
    owls = GroupFactory(school=personas.school, name="Owls")
    consenting_family(personas.school, owls)
    due_session(personas, group=owls, minutes_ahead=8)
    deliveries_plan()
    dispatch.delivery_send_batch(Delivery.objects.values_list("pk", flat=True))
    assert len(mail.outbox) == 1
    assert _sweep(django_capture_on_commit_callbacks).alerted == 0


def test_planning_hands_new_invitations_to_the_send_task_after_commit(personas, django_capture_on_commit_callbacks):
    owls = GroupFactory(school=personas.school, name="Owls")
    consenting_family(personas.school, owls)
    due_session(personas, group=owls)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        deliveries_plan()
        assert mail.outbox == []  # nothing leaves while the transaction is open
    # Celery runs eagerly in the tests: the send task ran after the commit.
    assert len(mail.outbox) == 1 and Delivery.objects.get().status == Status.SENT


# ---------------------------------------------------------------------------------------------------
# A worker that died mid-batch: what its progress mark tells the sweeper


class WorkerKilled(BaseException):
    """A worker stopped dead: not an Exception, so nothing in the send task catches it or records after it."""


class DiesAfterAccepting(locmem.EmailBackend):
    """Accepts messages, and stops the worker dead right after accepting the `accepting`th."""

    accepting = 3

    def send_messages(self, messages):
        sent = super().send_messages(messages)
        if len(mail.outbox) == self.accepting:
            raise WorkerKilled("SIGKILL")
        return sent


def _six_planned(personas) -> tuple[VideoSession, list[int]]:
    """A due session of six consenting families, planned: the session and its delivery ids in order."""
    owls = GroupFactory(school=personas.school, name="Owls")
    for _ in range(6):
        consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    return session, list(Delivery.objects.filter(session=session).order_by("pk").values_list("pk", flat=True))


@pytest.fixture
def batch_of_six(personas, settings):
    session, ids = _six_planned(personas)
    settings.EMAIL_BACKEND = f"{__name__}.DiesAfterAccepting"
    with pytest.raises(WorkerKilled):
        dispatch.delivery_send_batch(ids)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert len(mail.outbox) == 3
    assert set(Delivery.objects.filter(pk__in=ids).values_list("status", flat=True)) == {Status.SENDING}
    return session, ids


def _expire_leases(ids):
    Delivery.objects.filter(pk__in=ids).update(lease_until=timezone.now() - dt.timedelta(seconds=1))


def test_a_dead_workers_marked_messages_are_recorded_sent_and_not_sent_again(
        batch_of_six, dispatched, django_capture_on_commit_callbacks):
    """The server accepted three; the mark names the second (the worker died before marking the third)."""
    _, ids = batch_of_six
    _expire_leases(ids)
    result = _sweep(django_capture_on_commit_callbacks)
    rows = {d.pk: d for d in Delivery.objects.filter(pk__in=ids)}
    assert result.lease_expired == 6
    assert [rows[pk].status for pk in ids] == [Status.SENT] * 2 + [Status.RETRY] * 4
    assert [rows[pk].possible_duplicate for pk in ids] == [0, 0, 1, 0, 0, 0]
    # The one in flight keeps its attempt spent; the three never tried get theirs back.
    assert [rows[pk].attempts for pk in ids] == [1, 1, 1, 0, 0, 0]
    assert all(rows[pk].sent_revision == 1 and rows[pk].lease_token is None for pk in ids[:2])
    assert DeliveryEvent.objects.filter(delivery__in=ids[:2], status=Status.SENT,
                                        reason__startswith="sent; recorded from the progress mark").count() == 2
    assert sorted(dispatched) == ids[2:]

    # Sent again: the in-flight one and the untried, once each, never the two recorded.
    dispatch.delivery_send_batch(dispatched)
    assert [m.to[0] for m in mail.outbox[3:]] == [rows[pk].recipient or Delivery.objects.get(pk=pk).recipient
                                                   for pk in ids[2:]]
    assert set(Delivery.objects.filter(pk__in=ids).values_list("status", flat=True)) == {Status.SENT}


def test_a_recovered_rows_sent_time_is_when_the_mail_server_accepted_it(
        batch_of_six, dispatched, django_capture_on_commit_callbacks):
    _, ids = batch_of_six
    token = Delivery.objects.get(pk=ids[0]).lease_token
    mark = cache_marks([token])[token]
    assert sorted(mark.accepted_at) == ids[:2]
    accepted_at = mark.accepted_at
    _expire_leases(ids)
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=3)):
        _sweep(django_capture_on_commit_callbacks)
    rows = {d.pk: d for d in Delivery.objects.filter(pk__in=ids[:2])}
    assert {pk: rows[pk].sent_at for pk in ids[:2]} == accepted_at
    assert all(rows[pk].sent_at < timezone.now() for pk in ids[:2])
    # And their history says so: the event "sent" bears the moment of acceptance, not the sweeper's.
    assert dict(DeliveryEvent.objects.filter(delivery__in=ids[:2], status=Status.SENT)
                .values_list("delivery", "at")) == accepted_at


def test_without_its_mark_every_row_of_a_dead_workers_batch_counts_as_a_possible_duplicate(
        batch_of_six, dispatched, django_capture_on_commit_callbacks):
    """The cache lost the mark: any row may have been accepted, so each is sent again and counted."""
    _, ids = batch_of_six
    token = Delivery.objects.get(pk=ids[0]).lease_token
    cache.delete(dispatch.accepted_mark_key(token))
    _expire_leases(ids)
    _sweep(django_capture_on_commit_callbacks)
    rows = Delivery.objects.filter(pk__in=ids)
    assert set(rows.values_list("status", "possible_duplicate", "attempts")) == {(Status.RETRY, 1, 1)}
    assert sorted(dispatched) == ids


def test_a_dead_workers_batch_for_a_session_that_has_started(batch_of_six, dispatched,
                                                             django_capture_on_commit_callbacks):
    """What was accepted is recorded sent; the rest is failed as overtaken, an alert each, one email."""
    session, ids = batch_of_six
    _expire_leases(ids)
    VideoSession.objects.filter(pk=session.pk).update(starts_at=timezone.now() - dt.timedelta(seconds=5))
    result = _sweep(django_capture_on_commit_callbacks)
    rows = {d.pk: d for d in Delivery.objects.filter(pk__in=ids)}
    assert [rows[pk].status for pk in ids] == [Status.SENT] * 2 + [Status.FAILED] * 4
    assert rows[ids[2]].possible_duplicate == 1
    assert result.overtaken == 4 and dispatched == []
    assert SessionAlert.objects.filter(kind=SessionAlert.Kind.DELIVERY_FAILED).count() == 4
    assert OutboxMessage.objects.filter(template="session-alert").count() == 1


def test_a_dead_worker_and_a_lost_mark_cost_at_most_the_rows_past_the_databases_record(
        personas, settings, monkeypatch, dispatched, django_capture_on_commit_callbacks):
    """The worker died after the mail server accepted 45 of 70 and the cache lost its mark: the database has
    the first 40 (a record every 20), which are recorded sent at their moments; of the rest only the next 20
    can have been accepted (5 were), each counted as a possible duplicate; the last 10 were never tried."""
    owls = GroupFactory(school=personas.school, name="Owls")
    for _ in range(70):
        consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    ids = list(Delivery.objects.filter(session=session).order_by("pk").values_list("pk", flat=True))
    settings.EMAIL_BACKEND = f"{__name__}.DiesAfterAccepting"
    monkeypatch.setattr(DiesAfterAccepting, "accepting", 45)
    with pytest.raises(WorkerKilled):
        dispatch.delivery_send_batch(ids)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    recorded = dict(Delivery.objects.filter(pk__in=ids, accepted_at__isnull=False).values_list("pk", "accepted_at"))
    assert sorted(recorded) == ids[:40]
    cache.delete(dispatch.accepted_mark_key(Delivery.objects.get(pk=ids[0]).lease_token))
    _expire_leases(ids)
    _sweep(django_capture_on_commit_callbacks)
    rows = {d.pk: d for d in Delivery.objects.filter(pk__in=ids)}
    assert [rows[pk].status for pk in ids] == [Status.SENT] * 40 + [Status.RETRY] * 30
    assert {pk: rows[pk].sent_at for pk in ids[:40]} == recorded
    assert [rows[pk].possible_duplicate for pk in ids] == [0] * 40 + [1] * 20 + [0] * 10
    assert [rows[pk].attempts for pk in ids[60:]] == [0] * 10
    assert sorted(dispatched) == ids[40:]
    # Sent again: 5 of the 20 counted had reached the parents, so 5 duplicates; nobody is missed.
    dispatch.delivery_send_batch(dispatched)
    received = Counter(m.to[0] for m in mail.outbox)
    assert sum(n - 1 for n in received.values()) == 5 and len(received) == 70


def test_rows_of_two_dead_batches_are_judged_each_by_its_own_mark(
        personas, settings, monkeypatch, dispatched, django_capture_on_commit_callbacks):
    """Two workers died at once, their leases ending at the same moment: each batch has its own mark."""
    _, ids = _six_planned(personas)
    settings.EMAIL_BACKEND = f"{__name__}.DiesAfterAccepting"
    for batch, accepting in ((ids[:3], 2), (ids[3:], 4)):  # the second dies after its second message
        monkeypatch.setattr(DiesAfterAccepting, "accepting", accepting)
        with pytest.raises(WorkerKilled):
            dispatch.delivery_send_batch(batch)
    Delivery.objects.filter(pk__in=ids).update(lease_until=timezone.now() - dt.timedelta(seconds=1))
    _sweep(django_capture_on_commit_callbacks)
    rows = {d.pk: d for d in Delivery.objects.filter(pk__in=ids)}
    assert [rows[pk].status for pk in ids] == [Status.SENT, Status.RETRY, Status.RETRY] * 2
    assert [rows[pk].possible_duplicate for pk in ids] == [0, 1, 0] * 2


@pytest.mark.broker
def test_on_redis_the_marks_are_written_by_one_client_and_read_back_by_the_cache(personas, settings):
    """With Redis as the cache, a batch writes its marks through one client of Django's pool; the
    sweeper reads them with `cache.get_many`, which must see exactly what `cache.set` would have left."""
    from tests.conftest import redis_url

    base = redis_url().rsplit("/", 1)[0]
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"{base}/9", "KEY_PREFIX": "marks-test"}}
    token = dispatch.uuid.uuid4()
    marks = dispatch.AcceptedMarks(token)
    assert marks.redis is not None
    assert cache_marks([token]) == {token: Mark()}
    at = timezone.now()
    assert marks.accepted(4321, at)
    assert cache_marks([token]) == {token: Mark(last_id=4321, accepted_at={4321: at})}
    assert marks.redis.ttl(cache.make_and_validate_key(dispatch.accepted_mark_key(token))) > 24 * 3600
    marks.forget()
    assert cache_marks([token]) == {}
