"""Real row locks (PostgreSQL): cancelling and changing a session while its invitations are claimed, swept or
cancelled twice, and two gate watches at once (sessions/changes.py)."""

import datetime as dt
import threading
import time

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from outbox.models import OutboxMessage
from schools.models import Membership
from sessions import changes, dispatch, gate_watch
from sessions.dispatch import deliveries_plan
from sessions.models import Delivery, SessionAlert, VideoSession
from sessions.services import session_cancel, session_update
from tests.factories import GroupFactory

from .emails_dispatch import consenting_family, due_session
from .test_dispatch_concurrency import _run_in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

Status = Delivery.Status


@pytest.fixture
def handed():
    return []


@pytest.fixture(autouse=True)
def no_broker(monkeypatch, handed):
    """Each test plans itself; the ids handed to the send task are recorded, not sent."""
    monkeypatch.setattr("sessions.changes._plan_now", lambda: None)
    monkeypatch.setattr(dispatch, "deliveries_dispatch", lambda ids: None)
    monkeypatch.setattr(changes, "deliveries_dispatch", lambda ids: handed.append(list(ids)))


@pytest.fixture
def planned(personas):
    owls = GroupFactory(school=personas.school, name="Owls")
    guardian, _ = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    return session, guardian


def test_a_cancel_waits_for_a_claim_holding_the_row_and_then_tells_its_guardian(personas, planned):
    session, guardian = planned
    delivery = Delivery.objects.get(session=session)
    locked = threading.Event()

    def claim():
        # What a claim does: lock the row, check, mark it sending, commit (slowly here).
        with transaction.atomic():
            Delivery.objects.select_for_update().get(pk=delivery.pk)
            locked.set()
            time.sleep(0.5)
            Delivery.objects.filter(pk=delivery.pk).update(status=Status.SENDING, recipient=guardian.email)
        return "claimed"

    def cancel():
        assert locked.wait(timeout=10)
        return session_cancel(session=session, actor=personas.teacher, reason="Snow day")

    _run_in_threads(claim, cancel)
    delivery.refresh_from_db()
    assert delivery.status == Status.SENDING  # not cancelled under the claim's feet
    assert list(OutboxMessage.objects.filter(template="session-cancelled").values_list("recipient", flat=True)) \
        == [guardian.email]


def test_two_cancels_at_once_cancel_once_and_tell_once(personas, planned):
    session, guardian = planned
    Delivery.objects.filter(session=session).update(status=Status.SENT, sent_revision=1, recipient=guardian.email)
    outcomes = []

    def cancel():
        try:
            session_cancel(session=session, actor=personas.teacher, reason="Snow day")
            outcomes.append("cancelled")
        except ValidationError:
            outcomes.append("refused")
        return None

    _run_in_threads(cancel, cancel)
    assert sorted(outcomes) == ["cancelled", "refused"]
    assert OutboxMessage.objects.filter(template="session-cancelled").count() == 1


def test_a_change_and_the_sweep_at_once_hand_the_fresh_invitation_over_once(personas, planned, handed):
    session, _ = planned
    # Sent for revision 1 while the session was changed to revision 2 (a send in flight during a change).
    session_update(session=session, actor=personas.teacher, password="First-Change-4411")
    Delivery.objects.filter(session=session).update(status=Status.SENT, sent_revision=1, revision=1)

    def change():
        return session_update(session=VideoSession.objects.get(pk=session.pk), actor=personas.teacher,
                              password="Second-Change-8822")

    _run_in_threads(change, changes.deliveries_stale_revisions)
    delivery = Delivery.objects.get(session=session)
    assert delivery.status == Status.PENDING and delivery.sent_revision == 1
    assert handed == [[delivery.pk]]  # once, by whichever took the row first


def test_a_move_and_the_sweep_at_once_tell_of_the_move_once_without_deadlock(personas, planned, handed):
    """The sweep, holding the row, writes an outbox email (which references the school) while the change holds
    the session: the change must lock the session row alone, not its school, or the two would deadlock."""
    session, guardian = planned
    session_update(session=session, actor=personas.teacher, password="First-Change-4411")
    Delivery.objects.filter(session=session).update(status=Status.SENT, sent_revision=1, revision=1)
    later = session.starts_at + dt.timedelta(days=2)

    def move():
        return session_update(session=VideoSession.objects.get(pk=session.pk), actor=personas.teacher,
                              starts_at=later)

    _run_in_threads(move, changes.deliveries_stale_revisions)
    delivery = Delivery.objects.get(session=session)
    session.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at) == (Status.PENDING, session.send_at)
    # Whichever took the row first (the sweep may hand it over for revision 2 just before the move), the
    # guardian is told of the move once, and nothing is sent before the new send time (the claim refuses it).
    assert handed in ([], [[delivery.pk]])
    assert list(OutboxMessage.objects.filter(template="session-moved").values_list("recipient", flat=True)) \
        == [guardian.email]


def test_two_gate_watches_at_once_tell_once(personas, planned):
    session, _ = planned
    Membership.objects.filter(user=personas.teacher, school=personas.school).delete()
    results = _run_in_threads(gate_watch.sessions_gate_watch, gate_watch.sessions_gate_watch)
    assert sum(r.alerted for r in results) == 1
    assert SessionAlert.objects.filter(session=session, kind=SessionAlert.Kind.GATE_RED).count() == 1
    assert OutboxMessage.objects.filter(template="session-gate-red").count() == 2  # the host and the headteacher
