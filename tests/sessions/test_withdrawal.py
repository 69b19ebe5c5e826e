"""Withdrawing cancels what is not sent yet; what was sent is told to the host and to the parent (promise 5)."""

import datetime as dt

import pytest
from django.core import mail
from django.urls import reverse

from consent.links import guardian_link_issue
from consent.services import consent_give, consent_refuse, consent_withdraw
from outbox.models import OutboxMessage
from sessions.dispatch import deliveries_plan, delivery_send_batch
from sessions.models import Delivery, DeliveryEvent, SessionAlert
from sessions.services import session_update
from tests.consent.consent_setup import guardian_of
from tests.factories import GroupFactory

from .emails_dispatch import consenting_family, current_notice, due_session

pytestmark = pytest.mark.django_db

Status = Delivery.Status


@pytest.fixture
def owls(personas):
    return GroupFactory(school=personas.school, name="Owls")


def test_withdrawn_consent_cancels_pending_invitation(personas, owls):
    guardian, (pupil,) = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    consent_withdraw(guardian=guardian, pupil=pupil, notice=current_notice(personas.school))
    delivery = Delivery.objects.get(session=session)
    assert delivery.status == Status.CANCELLED and delivery.reason == "consent withdrawn"
    assert DeliveryEvent.objects.filter(delivery=delivery, status=Status.CANCELLED).count() == 1
    assert delivery_send_batch([delivery.pk]).skipped == [delivery.pk] and mail.outbox == []
    assert not SessionAlert.objects.exists()


def test_withdrawing_for_one_of_two_children_keeps_the_invitation_for_the_other(personas, owls):
    guardian, (ava, ben) = consenting_family(personas.school, owls, children=2)
    due_session(personas, group=owls)
    deliveries_plan()
    consent_withdraw(guardian=guardian, pupil=ava, notice=current_notice(personas.school))
    delivery = Delivery.objects.get()
    assert delivery.status == Status.PENDING and delivery.pupil_ids == [ben.pk]
    delivery_send_batch([delivery.pk])
    (sent,) = mail.outbox
    assert "Ben is invited" in sent.body and "Ava" not in sent.body


def test_a_refusal_by_the_other_parent_cancels_the_invitation_naming_the_child(personas, owls):
    guardian, (pupil,) = consenting_family(personas.school, owls)
    other = guardian_of(pupil)
    due_session(personas, group=owls)
    deliveries_plan()
    consent_refuse(guardian=other, pupil=pupil, notice=current_notice(personas.school))
    delivery = Delivery.objects.get(guardian=guardian)
    assert delivery.status == Status.CANCELLED and delivery.reason == "consent refused"


def test_withdrawing_after_the_invitation_was_sent_alerts_the_host_once(personas, owls):
    guardian, (pupil,) = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    delivery_send_batch(Delivery.objects.values_list("pk", flat=True))
    notice = current_notice(personas.school)
    consent_withdraw(guardian=guardian, pupil=pupil, notice=notice)
    alert = SessionAlert.objects.get(session=session)
    assert alert.kind == SessionAlert.Kind.WITHDRAWN_AFTER_SEND and alert.delivery.guardian_id == guardian.pk
    assert "Do not admit Ava" in alert.message and "consent withdrawn" in alert.message
    host_email = OutboxMessage.objects.get(template="session-alert")
    assert host_email.recipient == personas.teacher.email and session.title in host_email.body_text
    # Giving and withdrawing again does not alert twice about the same invitation.
    consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
    consent_withdraw(guardian=guardian, pupil=pupil, notice=notice)
    assert SessionAlert.objects.count() == 1 and OutboxMessage.objects.filter(template="session-alert").count() == 1
    assert Delivery.objects.get().status == Status.SENT


def test_the_parents_withdrawal_page_says_an_invitation_was_already_sent(personas, owls, client):
    guardian, (pupil,) = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls, title="Owls story time")
    deliveries_plan()
    delivery_send_batch(Delivery.objects.values_list("pk", flat=True))
    token = guardian_link_issue(guardian=guardian, purpose=session.purpose).rsplit("/p/", 1)[1].strip("/")
    response = client.post(reverse("parent:page", kwargs={"token": token}),
                           {"pupil": pupil.pk, "decision": "withdraw"}, follow=True)
    page = response.content.decode()
    assert response.status_code == 200
    assert "already sent" in page and "Owls story time" in page and "the teacher has been told" in page


def test_the_withdrawal_page_says_nothing_of_invitations_when_none_was_sent(personas, owls, client):
    guardian, (pupil,) = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    token = guardian_link_issue(guardian=guardian, purpose=session.purpose).rsplit("/p/", 1)[1].strip("/")
    response = client.post(reverse("parent:page", kwargs={"token": token}),
                           {"pupil": pupil.pk, "decision": "withdraw"}, follow=True)
    assert response.status_code == 200 and "already sent" not in response.content.decode()
    assert Delivery.objects.get().status == Status.CANCELLED


def _invitations_to(address: str) -> list:
    return [m for m in mail.outbox if m.to == [address] and any(a[0] == "invitation.ics" for a in m.attachments)]


def test_a_parent_who_withdraws_then_consents_again_before_the_lesson_is_invited(personas, owls):
    guardian, (pupil,) = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    notice = current_notice(personas.school)
    deliveries_plan()
    consent_withdraw(guardian=guardian, pupil=pupil, notice=notice)
    delivery = Delivery.objects.get(session=session)
    assert delivery.status == Status.CANCELLED
    consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
    assert deliveries_plan().created == 1  # the same row, planned again: still one per (session, guardian)
    delivery.refresh_from_db()
    assert delivery.status == Status.PENDING and delivery.pupil_ids == [pupil.pk] and delivery.attempts == 0
    assert list(DeliveryEvent.objects.filter(delivery=delivery).values_list("status", flat=True)) == [
        Status.PENDING, Status.CANCELLED, Status.PENDING]
    assert delivery_send_batch([delivery.pk]).sent == [delivery.pk]
    assert len(_invitations_to(guardian.email)) == 1
    # Planning again changes nothing: a sent row is never planned twice.
    assert deliveries_plan().created == 0 and len(_invitations_to(guardian.email)) == 1


def test_a_refused_parent_stays_uninvited_however_often_the_planner_runs(personas, owls):
    guardian, (pupil,) = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    consent_refuse(guardian=guardian, pupil=pupil, notice=current_notice(personas.school))
    for _ in range(3):
        assert deliveries_plan().created == 0
    assert Delivery.objects.get(session=session).status == Status.CANCELLED
    assert _invitations_to(guardian.email) == []


def test_an_invitation_skipped_while_the_gate_was_red_goes_once_it_is_green(personas, owls, monkeypatch):
    from sessions import dispatch

    guardian, _ = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    delivery = Delivery.objects.get(session=session)
    monkeypatch.setattr(dispatch, "session_gate_reasons", lambda s: ("The platform's PIA is out of date.",))
    assert delivery_send_batch([delivery.pk]).skipped == [delivery.pk]
    assert deliveries_plan().created == 0  # still red: nothing planned again
    delivery.refresh_from_db()
    assert delivery.status == Status.SKIPPED and "may not go ahead" in delivery.reason
    monkeypatch.undo()
    assert deliveries_plan().created == 1
    assert delivery_send_batch([delivery.pk]).sent == [delivery.pk]
    assert len(_invitations_to(guardian.email)) == 1


# --- After the lesson moved: the first invitation is still in the inbox ------------------------------------------


def _sent_then_moved(personas, owls, children: int = 1):
    """A family invited, then the lesson moved a day later: their row is pending again for the new send time,
    while the first invitation, with the link and the unchanged password, is in their inbox."""
    guardian, pupils = consenting_family(personas.school, owls, children=children)
    session = due_session(personas, group=owls, title="Owls story time")
    deliveries_plan()
    delivery_send_batch(Delivery.objects.values_list("pk", flat=True))
    session_update(session=session, actor=personas.teacher, starts_at=session.starts_at + dt.timedelta(days=1))
    delivery = Delivery.objects.get(session=session)
    assert delivery.status == Status.PENDING and delivery.sent_revision == 1
    return guardian, pupils, session, delivery


def test_withdrawing_after_the_lesson_moved_alerts_the_host_and_tells_the_parent(personas, owls, client):
    guardian, (pupil,), session, delivery = _sent_then_moved(personas, owls)
    token = guardian_link_issue(guardian=guardian, purpose=session.purpose).rsplit("/p/", 1)[1].strip("/")
    response = client.post(reverse("parent:page", kwargs={"token": token}),
                           {"pupil": pupil.pk, "decision": "withdraw"}, follow=True)
    delivery.refresh_from_db()
    assert delivery.status == Status.CANCELLED and delivery.reason == "consent withdrawn"
    # The host: alerted and emailed, although the row was not `sent` any more.
    alert = SessionAlert.objects.get(session=session)
    assert alert.kind == SessionAlert.Kind.WITHDRAWN_AFTER_SEND and alert.delivery == delivery
    assert "already sent" in alert.message and "Do not admit Ava" in alert.message
    assert OutboxMessage.objects.get(template="session-alert").recipient == personas.teacher.email
    # The parent: told on the confirmation page that the invitation they hold must not be used.
    page = response.content.decode()
    assert "already sent" in page and "Owls story time" in page and "Please do not use it" in page
    assert "the teacher has been told" in page


def test_withdrawing_one_of_two_children_after_the_lesson_moved_tells_of_the_invitation_naming_them(
        personas, owls, client):
    guardian, (ava, ben), session, delivery = _sent_then_moved(personas, owls, children=2)
    token = guardian_link_issue(guardian=guardian, purpose=session.purpose).rsplit("/p/", 1)[1].strip("/")
    response = client.post(reverse("parent:page", kwargs={"token": token}),
                           {"pupil": ava.pk, "decision": "withdraw"}, follow=True)
    delivery.refresh_from_db()
    # The fresh invitation will name Ben only; the first one named both, and is still in the inbox.
    assert delivery.status == Status.PENDING and delivery.pupil_ids == [ben.pk]
    assert sorted(delivery.sent_pupil_ids) == sorted([ava.pk, ben.pk])
    assert "Do not admit Ava" in SessionAlert.objects.get(session=session).message
    assert "already sent" in response.content.decode()


def test_withdrawing_before_any_invitation_went_for_a_moved_lesson_alerts_nobody(personas, owls):
    guardian, (pupil,) = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    session_update(session=session, actor=personas.teacher, starts_at=session.starts_at + dt.timedelta(days=1))
    consent_withdraw(guardian=guardian, pupil=pupil, notice=current_notice(personas.school))
    assert Delivery.objects.get().status == Status.CANCELLED
    assert not SessionAlert.objects.exists()
