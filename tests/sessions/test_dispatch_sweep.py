"""The sweeper: lost tasks, due retries, expired leases, what the start overtook, and the alert when
invitations are still unsent shortly before the start (promise 3)."""

import datetime as dt

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from outbox.models import OutboxMessage
from sessions import dispatch
from sessions.dispatch import deliveries_plan, deliveries_sweep, delivery_claim
from sessions.models import Delivery, SessionAlert, VideoSession
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


def test_unsent_invitations_ten_minutes_before_the_start_alert_the_host_once(personas, dispatched,
                                                                             django_capture_on_commit_callbacks):
    owls = GroupFactory(school=personas.school, name="Owls")
    consenting_family(personas.school, owls)
    session = due_session(personas, group=owls, minutes_ahead=8)
    deliveries_plan()
    assert _sweep(django_capture_on_commit_callbacks).alerted == 1
    assert _sweep(django_capture_on_commit_callbacks).alerted == 0
    alert = SessionAlert.objects.get(session=session)
    assert alert.kind == SessionAlert.Kind.UNSENT_NEAR_START and alert.delivery is None
    assert OutboxMessage.objects.filter(template="session-alert", recipient=personas.teacher.email).count() == 1


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
