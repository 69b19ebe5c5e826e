"""Real row locks (PostgreSQL): withdrawals against claims, the same send task three times at once, and
two planners at once (design.md promises 1 and 2; quality.md, "Concurrency on real PostgreSQL")."""

import threading

import pytest
from django.core import mail
from django.db import connection, transaction

from consent.services import consent_withdraw
from sessions import dispatch
from sessions.dispatch import deliveries_plan, delivery_send_batch
from sessions.models import Delivery, DeliveryEvent
from tests.factories import GroupFactory

from .emails_dispatch import consenting_family, current_notice, due_session

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

Status = Delivery.Status


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Planning would hand new rows to the (eager) send task at commit, and scheduling a session already due
    would run the planner at commit: here each test plans and sends itself."""
    monkeypatch.setattr(dispatch, "deliveries_dispatch", lambda ids: None)
    monkeypatch.setattr("sessions.changes._plan_now", lambda: None)


@pytest.fixture
def family(personas):
    owls = GroupFactory(school=personas.school, name="Owls")
    guardian, (pupil,) = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    return owls, guardian, pupil, session


def _invitations() -> list:
    """Invitations in the test mailbox (in these transactional tests the outbox's emails go out at once too)."""
    return [m for m in mail.outbox if any(a[0] == "invitation.ics" for a in m.attachments)]


def _run_in_threads(*targets, timeout: float = 20) -> list:
    barrier, results, errors = threading.Barrier(len(targets)), [], []

    def wrap(target):
        def run():
            try:
                barrier.wait(timeout=10)
                results.append(target())
            except Exception as exc:  # surfaced below: a thread's failure must fail the test
                errors.append(exc)
            finally:
                connection.close()
        return threading.Thread(target=run)

    threads = [wrap(target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread is still waiting on a lock"
    assert not errors, errors
    return results


def test_a_withdrawal_committed_before_the_claim_means_no_send(family):
    _, guardian, pupil, session = family
    deliveries_plan()
    delivery = Delivery.objects.get(session=session)
    consent_withdraw(guardian=guardian, pupil=pupil, notice=current_notice(session.school))
    (result,) = _run_in_threads(lambda: delivery_send_batch([delivery.pk]))
    assert result.sent == [] and _invitations() == []
    delivery.refresh_from_db()
    assert delivery.status == Status.CANCELLED


def test_a_withdrawal_holding_the_consent_lock_while_a_claim_starts_means_no_send(family):
    """The withdrawal's transaction is open (consent row FOR UPDATE, delivery cancelled but uncommitted)
    when the send task comes: the task skips the locked row and nothing is sent."""
    _, guardian, pupil, session = family
    deliveries_plan()
    delivery = Delivery.objects.get(session=session)
    withdrawn, sent_results = threading.Event(), []

    def withdraw():
        with transaction.atomic():
            consent_withdraw(guardian=guardian, pupil=pupil, notice=current_notice(session.school))
            withdrawn.set()
            # Hold the locks while the send task runs.
            threading.Event().wait(1.0)

    def send():
        assert withdrawn.wait(timeout=10)
        sent_results.append(delivery_send_batch([delivery.pk]))

    _run_in_threads(withdraw, send)
    assert sent_results[0].sent == [] and _invitations() == []
    delivery.refresh_from_db()
    assert delivery.status == Status.CANCELLED


def test_a_withdrawal_between_the_claims_row_lock_and_its_consent_check_is_seen_by_the_claim(family, monkeypatch):
    """The claim holds the delivery row; the withdrawal commits (it cannot take that row: SKIP LOCKED); the
    claim's FOR SHARE then reads the committed withdrawal and skips."""
    _, guardian, pupil, session = family
    deliveries_plan()
    delivery = Delivery.objects.get(session=session)
    row_locked, withdrawal_done = threading.Event(), threading.Event()
    lock_consent_rows = dispatch._lock_consent_rows

    def paused_lock(pupil_ids, purpose_id):
        row_locked.set()
        assert withdrawal_done.wait(timeout=10)
        lock_consent_rows(pupil_ids, purpose_id)

    monkeypatch.setattr(dispatch, "_lock_consent_rows", paused_lock)

    def withdraw():
        assert row_locked.wait(timeout=10)
        consent_withdraw(guardian=guardian, pupil=pupil, notice=current_notice(session.school))
        withdrawal_done.set()

    results = _run_in_threads(lambda: delivery_send_batch([delivery.pk]), withdraw)
    send_result = next(r for r in results if r is not None)
    assert send_result.sent == [] and _invitations() == []
    delivery.refresh_from_db()
    assert delivery.status == Status.SKIPPED and delivery.reason == "no active consent"


def test_the_same_send_task_three_times_at_once_sends_exactly_one_message(family):
    *_, session = family
    deliveries_plan()
    delivery = Delivery.objects.get(session=session)
    results = _run_in_threads(*[lambda: delivery_send_batch([delivery.pk])] * 3)
    assert sum(len(r.sent) for r in results) == 1 and len(_invitations()) == 1
    delivery.refresh_from_db()
    assert delivery.status == Status.SENT and delivery.attempts == 1


def test_two_planners_at_once_create_one_delivery_per_guardian(personas, family):
    owls, *_ = family
    for _ in range(4):
        consenting_family(personas.school, owls)
    results = _run_in_threads(deliveries_plan, deliveries_plan)
    assert sum(r.created for r in results) == 5
    assert Delivery.objects.count() == 5
    assert Delivery.objects.values("guardian").distinct().count() == 5
    assert DeliveryEvent.objects.count() == 5


def _decide_during_a_claim(delivery, decide, monkeypatch) -> bool:
    """Send `delivery`, and run `decide` (a consent decision) once the claim has re-checked consent under its
    locks but not yet committed. Returns whether the decision had to wait for the claim (it must)."""
    checked, release, decided = threading.Event(), threading.Event(), threading.Event()
    issue = dispatch._withdraw_links

    def paused_issue(deliveries):
        checked.set()  # consent re-checked under the locks; the claim's transaction is still open
        assert release.wait(timeout=10)
        return issue(deliveries)

    monkeypatch.setattr(dispatch, "_withdraw_links", paused_issue)

    def decision():
        assert checked.wait(timeout=10)
        decide()
        decided.set()

    def watch_then_release():
        assert checked.wait(timeout=10)
        waited = not decided.wait(timeout=1.0)
        release.set()
        return waited

    results = _run_in_threads(lambda: delivery_send_batch([delivery.pk]), decision, watch_then_release)
    return True in results


def test_a_withdrawal_during_a_claim_waits_for_it_then_alerts_the_host(family, monkeypatch):
    """The claim has checked consent (holding the consent row FOR SHARE) when the parent withdraws: the
    withdrawal waits for the claim to commit, then finds the invitation being sent and alerts the host."""
    from sessions.models import SessionAlert

    _, guardian, pupil, session = family
    deliveries_plan()
    delivery = Delivery.objects.get(session=session)
    waited = _decide_during_a_claim(delivery, lambda: consent_withdraw(
        guardian=guardian, pupil=pupil, notice=current_notice(session.school)), monkeypatch)
    assert waited, "the withdrawal did not wait for the claim's FOR SHARE lock"
    assert len(_invitations()) == 1
    delivery.refresh_from_db()
    assert delivery.status == Status.SENT
    assert SessionAlert.objects.get(delivery=delivery).kind == SessionAlert.Kind.WITHDRAWN_AFTER_SEND


def test_a_co_guardians_first_refusal_during_a_claim_waits_for_it_then_alerts_the_host(family, monkeypatch):
    """The other parent has never answered, so there is no consent row of theirs to lock. Their refusal (a
    "no" wins) still waits for the claim, on the child's row, then finds the invitation sent and alerts."""
    from consent.services import consent_refuse
    from sessions.models import SessionAlert
    from tests.consent.consent_setup import guardian_of

    _, _, pupil, session = family
    other_parent = guardian_of(pupil)
    deliveries_plan()
    delivery = Delivery.objects.get(session=session)
    waited = _decide_during_a_claim(delivery, lambda: consent_refuse(
        guardian=other_parent, pupil=pupil, notice=current_notice(session.school), attestation=True), monkeypatch)
    assert waited, "the first refusal did not wait for the claim's lock on the child's row"
    assert len(_invitations()) == 1
    delivery.refresh_from_db()
    assert delivery.status == Status.SENT
    alert = SessionAlert.objects.get(delivery=delivery)
    assert alert.kind == SessionAlert.Kind.WITHDRAWN_AFTER_SEND and "consent refused" in alert.message
