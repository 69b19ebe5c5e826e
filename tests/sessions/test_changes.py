"""Scheduling, cancelling and changing a session: what happens to its invitations (sessions/changes.py)."""

import datetime as dt
import logging

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from kombu.exceptions import OperationalError

from consent.services import consent_withdraw
from outbox.models import OutboxMessage
from schools.models import AuditEntry
from sessions import changes
from sessions.dispatch import deliveries_plan, delivery_send_batch, session_url
from sessions.models import Delivery, DeliveryEvent, VideoSession
from sessions.services import session_cancel, session_update
from sessions.sweep import deliveries_sweep
from tests.factories import GroupFactory
from tests.sessions.sessions_setup import ZOOM_URL, scheduled_session, session_row

from .emails_dispatch import PASSWORD, consenting_family, current_notice, due_session

pytestmark = pytest.mark.django_db

Status = Delivery.Status
NEW_PASSWORD = "Hazel-Nut-5318"
NAMES = ("Ava", "Ben", "Cal", "Dan", "Eli", "Fay")


@pytest.fixture
def owls(personas):
    return GroupFactory(school=personas.school, name="Owls")


def families(personas, group, count: int):
    return [consenting_family(personas.school, group, first_names=(NAMES[i],))[0] for i in range(count)]


def invitations() -> list:
    """The invitations sent (the outbox's own emails also land in `mail.outbox` once their task runs)."""
    return [m for m in mail.outbox if any(a[0] == "invitation.ics" for a in m.attachments)]


def send_all(session) -> list:
    before = len(invitations())
    delivery_send_batch(Delivery.objects.filter(session=session).order_by("pk").values_list("pk", flat=True))
    return invitations()[before:]


def row(session, guardian) -> Delivery:
    return Delivery.objects.get(session=session, guardian=guardian)


def notices(template: str) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(template=template).order_by("pk"))


def assert_no_secrets_outside_invitations(*secrets: str):
    """Only invitations carry the link and the password: every outbox email (cancelled, moved, alerts) is clean."""
    for message in OutboxMessage.objects.all():
        for secret in (ZOOM_URL, PASSWORD, NEW_PASSWORD, *secrets):
            assert secret not in message.subject + message.body_text + message.body_html, message.template


def test_alert_emails_link_to_the_sessions_own_page(personas):
    session = session_row(personas.school, personas.teacher)
    assert session_url(session).endswith(f"/sessions/{session.pk}/")


# --- scheduling ----------------------------------------------------------------------------------------------


def test_a_session_already_due_is_planned_as_soon_as_it_is_scheduled(personas, owls,
                                                                     django_capture_on_commit_callbacks):
    families(personas, owls, 2)
    with django_capture_on_commit_callbacks(execute=True):
        session = due_session(personas, group=owls, minutes_ahead=15, lead_minutes=60)
    # The planner ran (eagerly, as the broker would), and its send tasks after it: both invitations are out.
    assert sorted(Delivery.objects.filter(session=session).values_list("status", flat=True)) == [Status.SENT] * 2
    assert len(invitations()) == 2


def test_a_session_not_yet_due_is_left_to_beat(personas, owls, django_capture_on_commit_callbacks, monkeypatch):
    families(personas, owls, 1)
    queued = []
    monkeypatch.setattr("sessions.tasks.deliveries_plan.delay", lambda: queued.append(1))
    with django_capture_on_commit_callbacks(execute=True):
        scheduled_session(personas, groups=[owls])
    assert queued == [] and not Delivery.objects.exists()


def test_a_broker_failure_after_scheduling_is_logged_and_scheduling_stands(personas, owls, caplog, monkeypatch,
                                                                          django_capture_on_commit_callbacks):
    families(personas, owls, 1)

    def down():
        raise OperationalError("Connection refused")

    monkeypatch.setattr("sessions.tasks.deliveries_plan.delay", down)
    with caplog.at_level(logging.WARNING, logger="sessions.changes"), \
            django_capture_on_commit_callbacks(execute=True):
        session = due_session(personas, group=owls, minutes_ahead=15, lead_minutes=60)
    assert VideoSession.objects.filter(pk=session.pk).exists()
    assert "beat runs it within a minute" in caplog.text
    # Beat's planner then does what the task would have done.
    assert deliveries_plan().created == 1


# --- cancelling ----------------------------------------------------------------------------------------------


def test_cancelling_cancels_what_is_unsent_and_tells_each_invited_guardian_once(personas, owls):
    guardians = families(personas, owls, 6)
    session = due_session(personas, group=owls, title="Owls phonics")
    deliveries_plan()
    statuses = [Status.PENDING, Status.RETRY, Status.SENDING, Status.SENT, Status.FAILED, Status.SKIPPED]
    for guardian, status in zip(guardians, statuses, strict=True):
        Delivery.objects.filter(session=session, guardian=guardian).update(
            status=status, recipient=guardian.email, sent_revision=1 if status == Status.SENT else None)
    events_before = DeliveryEvent.objects.count()

    session_cancel(session=session, actor=personas.teacher, reason="Mr Smith is off sick (internal)")

    after = {g.pk: row(session, g) for g in guardians}
    assert [after[g.pk].status for g in guardians] == [
        Status.CANCELLED, Status.CANCELLED, Status.SENDING, Status.SENT, Status.FAILED, Status.SKIPPED]
    for guardian in guardians[:2]:
        assert after[guardian.pk].reason == "the session was cancelled"
        assert after[guardian.pk].next_attempt_at is None and after[guardian.pk].dispatched_at is None
    assert DeliveryEvent.objects.count() == events_before + 2
    assert set(DeliveryEvent.objects.filter(status=Status.CANCELLED).values_list("delivery__guardian", flat=True)) \
        == {guardians[0].pk, guardians[1].pk}
    told = notices("session-cancelled")
    assert sorted(m.recipient for m in told) == sorted([guardians[2].email, guardians[3].email])
    local = timezone.localtime(session.starts_at, personas.school.tz)
    for message in told:
        text = message.body_text
        assert "The lesson has been cancelled" in text and "The lesson has been cancelled" in message.body_html
        assert personas.school.name in text and "Owls phonics" in text and "Owls phonics" in message.subject
        assert f"{local:%H:%M} (Europe/London, " in text
        assert "Mr Smith" not in text + message.body_html + message.subject
        assert "contact " + personas.school.name in text
    assert_no_secrets_outside_invitations()
    entry = AuditEntry.objects.filter(action="session.cancelled").get()
    assert entry.data["invitations_cancelled"] == 2 and entry.data["guardians_told"] == 2
    # The send task arriving late finds nothing to send.
    assert send_all(session) == []


def test_cancelling_tells_a_guardian_waiting_for_a_fresh_invitation_too(personas, owls):
    (guardian,) = families(personas, owls, 1)
    session = due_session(personas, group=owls)
    deliveries_plan()
    send_all(session)
    session_update(session=session, actor=personas.teacher, starts_at=session.starts_at + dt.timedelta(days=1))
    assert row(session, guardian).status == Status.PENDING
    session_cancel(session=session, actor=personas.teacher, reason="Trip")
    assert row(session, guardian).status == Status.CANCELLED
    assert [m.recipient for m in notices("session-cancelled")] == [guardian.email]


def test_a_cancelled_session_is_not_planned_and_tells_no_one_when_nobody_was_invited(personas, owls):
    families(personas, owls, 2)
    session = due_session(personas, group=owls)
    session_cancel(session=session, actor=personas.teacher, reason="Snow day")
    assert deliveries_plan().created == 0
    assert notices("session-cancelled") == []


# --- changing: re-sending ------------------------------------------------------------------------------------


def test_a_password_change_resends_only_to_those_already_sent_saying_it_replaces_the_first(
        personas, owls, django_capture_on_commit_callbacks):
    sent_to, failed = families(personas, owls, 2)
    session = due_session(personas, group=owls)
    deliveries_plan()
    first = send_all(session)
    assert [m.to for m in first] == [[sent_to.email], [failed.email]]
    assert "replaces" not in first[0].body and "Updated" not in first[0].subject
    Delivery.objects.filter(session=session, guardian=failed).update(status=Status.FAILED, reason="550")
    # A parent who consents after the first invitations went out: not yet invited.
    (late,) = [consenting_family(personas.school, owls, first_names=("Lou",))[0]]

    with django_capture_on_commit_callbacks(execute=True):
        session_update(session=session, actor=personas.teacher, password=NEW_PASSWORD)

    # Handed to the send task after commit (eager here): one fresh invitation, to the guardian already sent.
    again = invitations()[len(first):]
    assert [m.to for m in again] == [[sent_to.email]]
    message = again[0]
    assert message.subject.startswith("Updated invitation: ")
    assert "This invitation replaces the one we sent earlier: the password has changed." in message.body
    html = next(content for content, kind in message.alternatives if kind == "text/html")
    assert "replaces the one we sent earlier: the password has changed" in html
    assert NEW_PASSWORD in message.body and PASSWORD not in message.body
    resent = row(session, sent_to)
    assert (resent.status, resent.revision, resent.sent_revision) == (Status.SENT, 2, 2)
    assert row(session, failed).status == Status.FAILED
    # The parent not invited before gets the new password in a plain first invitation.
    deliveries_plan()
    later = send_all(session)
    assert [m.to for m in later] == [[late.email]]
    assert NEW_PASSWORD in later[0].body and "replaces" not in later[0].body
    entry = AuditEntry.objects.filter(action="session.updated").get()
    assert entry.data["invitations"]["resent"] == 1 and entry.data["changed"] == ["password"]
    assert NEW_PASSWORD not in str(entry.data)
    assert_no_secrets_outside_invitations()
    # Running the sweep now changes nothing: every row is of the current revision.
    assert changes.deliveries_stale_revisions().resent == 0


def test_a_link_and_meeting_id_change_says_both_changed(personas, owls, django_capture_on_commit_callbacks):
    families(personas, owls, 1)
    session = due_session(personas, group=owls)
    deliveries_plan()
    send_all(session)
    with django_capture_on_commit_callbacks(execute=True):
        session_update(session=session, actor=personas.teacher, meeting_url="https://us02web.zoom.us/j/89999999999",
                       meeting_id="899 9999 9999")
    message = invitations()[-1]
    assert "the meeting link and the meeting ID have changed" in message.body
    assert "https://us02web.zoom.us/j/89999999999" in message.body


def test_a_title_change_resends_nothing(personas, owls, django_capture_on_commit_callbacks):
    families(personas, owls, 1)
    session = due_session(personas, group=owls)
    deliveries_plan()
    send_all(session)
    with django_capture_on_commit_callbacks(execute=True):
        session_update(session=session, actor=personas.teacher, title="Owls: story time")
    assert len(invitations()) == 1 and Delivery.objects.get().status == Status.SENT


def test_a_guardian_who_withdrew_meanwhile_gets_no_resend(personas, owls, django_capture_on_commit_callbacks):
    (stays,), (leaves, (child,)) = families(personas, owls, 1), consenting_family(personas.school, owls,
                                                                                  first_names=("Gus",))
    session = due_session(personas, group=owls)
    deliveries_plan()
    assert len(send_all(session)) == 2
    consent_withdraw(guardian=leaves, pupil=child, notice=current_notice(personas.school))
    with django_capture_on_commit_callbacks(execute=True):
        session_update(session=session, actor=personas.teacher, password=NEW_PASSWORD)
    assert [m.to for m in invitations()[2:]] == [[stays.email]]
    gone = row(session, leaves)
    assert gone.status == Status.SKIPPED and gone.reason == "no active consent"


def test_moving_earlier_within_the_send_window_resends_now(personas, owls, django_capture_on_commit_callbacks):
    families(personas, owls, 1)
    session = due_session(personas, group=owls, minutes_ahead=40)
    deliveries_plan()
    send_all(session)
    new_start = session.starts_at - dt.timedelta(minutes=20)
    with django_capture_on_commit_callbacks(execute=True):
        session_update(session=session, actor=personas.teacher, starts_at=new_start)
    message = invitations()[-1]
    assert len(invitations()) == 2
    assert "replaces the one we sent earlier: the time has changed" in message.body
    assert f"{timezone.localtime(new_start, personas.school.tz):%H:%M} to " in message.body
    assert notices("session-moved") == []


# --- changing: moved beyond the send window ------------------------------------------------------------------


def test_moving_later_tells_the_invited_now_and_sends_a_fresh_invitation_at_the_new_lead_time(
        personas, owls, django_capture_on_commit_callbacks):
    invited, queued = families(personas, owls, 2)
    session = due_session(personas, group=owls, minutes_ahead=30, lead_minutes=60)
    old_start = session.starts_at
    deliveries_plan()
    # The other parent's invitation met a busy mail server and waits for its retry.
    Delivery.objects.filter(session=session, guardian=queued).update(
        status=Status.RETRY, attempts=1, next_attempt_at=timezone.now() + dt.timedelta(minutes=5))
    assert len(send_all(session)) == 1
    new_start = old_start + dt.timedelta(days=2)
    with django_capture_on_commit_callbacks(execute=True):
        session_update(session=session, actor=personas.teacher, starts_at=new_start)
    session.refresh_from_db()
    assert len(invitations()) == 1  # no invitation now: the send time is two days away
    (moved,) = notices("session-moved")
    assert moved.recipient == invited.email
    tz = personas.school.tz
    old_local, new_local = timezone.localtime(old_start, tz), timezone.localtime(new_start, tz)
    assert f"No longer: {old_local:%A %-d %B %Y}, {old_local:%H:%M}" in moved.body_text
    assert f"New time: {new_local:%A %-d %B %Y}, {new_local:%H:%M}" in moved.body_text
    assert f"<s>{old_local:%A %-d %B %Y}, {old_local:%H:%M}" in moved.body_html
    assert "fresh invitation with the link and password 60 minutes before" in moved.body_text
    assert_no_secrets_outside_invitations()
    waiting = row(session, invited)
    assert (waiting.status, waiting.revision, waiting.sent_revision) == (Status.PENDING, 2, 1)
    assert waiting.next_attempt_at == session.send_at and waiting.dispatched_at is None
    retry = row(session, queued)
    assert retry.status == Status.RETRY and retry.next_attempt_at == session.send_at
    # Nothing goes before the new send time, whatever runs.
    deliveries_plan()
    deliveries_sweep()
    assert send_all(session) == []
    # Two days pass (the dispatcher reads the database's clock, so the rows' times move instead).
    shift = session.send_at - timezone.now() + dt.timedelta(seconds=5)
    VideoSession.objects.filter(pk=session.pk).update(starts_at=F("starts_at") - shift, send_at=F("send_at") - shift)
    Delivery.objects.filter(session=session).update(next_attempt_at=F("next_attempt_at") - shift)
    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_sweep().dispatched == 2
    fresh = {m.to[0]: m for m in invitations()[1:]}
    assert set(fresh) == {invited.email, queued.email}
    assert "replaces the one we sent earlier: the time has changed" in fresh[invited.email].body
    assert "replaces" not in fresh[queued.email].body
    assert f"{timezone.localtime(new_start - shift, tz):%H:%M} to " in fresh[invited.email].body


def test_moving_a_waiting_session_back_into_the_window_sends_at_once(personas, owls,
                                                                    django_capture_on_commit_callbacks):
    (guardian,) = families(personas, owls, 1)
    session = due_session(personas, group=owls, minutes_ahead=30)
    deliveries_plan()
    send_all(session)
    with django_capture_on_commit_callbacks(execute=True):
        session_update(session=session, actor=personas.teacher, starts_at=session.starts_at + dt.timedelta(days=1))
    assert row(session, guardian).status == Status.PENDING and len(invitations()) == 1
    with django_capture_on_commit_callbacks(execute=True):
        session_update(session=session, actor=personas.teacher,
                       starts_at=timezone.now() + dt.timedelta(minutes=45))
    assert len(invitations()) == 2 and row(session, guardian).status == Status.SENT
    assert "replaces the one we sent earlier: the time has changed" in invitations()[-1].body
    assert len(notices("session-moved")) == 1  # told once, for the move out of the window


def test_a_move_before_a_fresh_invitation_went_out_is_told_and_later_changes_tell_nothing_more(personas, owls):
    (guardian,) = families(personas, owls, 1)
    session = due_session(personas, group=owls)
    old_start = session.starts_at
    deliveries_plan()
    send_all(session)
    # The password changes (a fresh invitation is queued, not yet sent), and then the session moves later.
    session_update(session=session, actor=personas.teacher, password=NEW_PASSWORD)
    assert row(session, guardian).status == Status.PENDING
    session_update(session=session, actor=personas.teacher, starts_at=old_start + dt.timedelta(days=1))
    (moved,) = notices("session-moved")
    old_local = timezone.localtime(old_start, personas.school.tz)
    assert moved.recipient == guardian.email and f"No longer: {old_local:%A %-d %B %Y}, {old_local:%H:%M}" \
        in moved.body_text
    session.refresh_from_db()
    assert row(session, guardian).next_attempt_at == session.send_at
    # Another change that does not move it tells nothing more; the fresh invitation will carry it.
    session_update(session=session, actor=personas.teacher, password="Third-Pass-2290")
    assert len(notices("session-moved")) == 1
    assert_no_secrets_outside_invitations("Third-Pass-2290")


def test_a_session_moved_into_its_window_is_planned_at_once(personas, owls, django_capture_on_commit_callbacks):
    families(personas, owls, 1)
    current_notice(personas.school)
    session = scheduled_session(personas, groups=[owls])
    with django_capture_on_commit_callbacks(execute=True):
        session_update(session=session, actor=personas.teacher, starts_at=timezone.now() + dt.timedelta(minutes=30))
    assert Delivery.objects.get(session=session).status == Status.SENT and len(invitations()) == 1


def test_a_guardian_who_withdrew_is_not_told_of_a_move(personas, owls):
    guardian, (child,) = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    send_all(session)
    consent_withdraw(guardian=guardian, pupil=child, notice=current_notice(personas.school))
    session_update(session=session, actor=personas.teacher, starts_at=session.starts_at + dt.timedelta(days=1))
    assert notices("session-moved") == []


# --- the sweep: a send in flight during the change -----------------------------------------------------------


def _in_flight_then_recorded_with_the_old_revision(session, guardian):
    """The worker claimed the row before the change and records it sent afterwards (revision 1)."""
    Delivery.objects.filter(session=session, guardian=guardian).update(status=Status.SENT, sent_revision=1,
                                                                        revision=1, sent_at=timezone.now())


def test_the_sweep_resends_what_was_in_flight_during_a_password_change(personas, owls,
                                                                      django_capture_on_commit_callbacks):
    (guardian,) = families(personas, owls, 1)
    session = due_session(personas, group=owls)
    deliveries_plan()
    Delivery.objects.filter(session=session).update(status=Status.SENDING, attempts=1)
    session_update(session=session, actor=personas.teacher, password=NEW_PASSWORD)
    assert row(session, guardian).status == Status.SENDING  # left to its worker
    _in_flight_then_recorded_with_the_old_revision(session, guardian)
    with django_capture_on_commit_callbacks(execute=True):
        result = changes.deliveries_stale_revisions()
    assert result.resent == 1
    assert [m.to for m in invitations()] == [[guardian.email]]
    assert NEW_PASSWORD in invitations()[0].body and "the password has changed" in invitations()[0].body
    assert (row(session, guardian).status, row(session, guardian).sent_revision) == (Status.SENT, 2)
    assert changes.deliveries_stale_revisions().resent == 0
    assert AuditEntry.objects.filter(action="session.invitations_revised").count() == 1


def test_the_sweep_tells_of_a_move_what_was_in_flight_and_waits_for_the_new_send_time(personas, owls):
    (guardian,) = families(personas, owls, 1)
    session = due_session(personas, group=owls)
    old_start = session.starts_at
    deliveries_plan()
    Delivery.objects.filter(session=session).update(status=Status.SENDING, attempts=1)
    session_update(session=session, actor=personas.teacher, starts_at=old_start + dt.timedelta(days=3))
    assert notices("session-moved") == []  # nobody had been sent anything yet
    _in_flight_then_recorded_with_the_old_revision(session, guardian)
    result = changes.deliveries_stale_revisions()
    session.refresh_from_db()
    assert (result.resent, result.waiting, result.moved_told) == (0, 1, 1)
    (moved,) = notices("session-moved")
    old_local = timezone.localtime(old_start, personas.school.tz)
    assert f"No longer: {old_local:%A %-d %B %Y}, {old_local:%H:%M}" in moved.body_text
    waiting = row(session, guardian)
    assert (waiting.status, waiting.revision, waiting.next_attempt_at) == (Status.PENDING, 2, session.send_at)
    assert changes.deliveries_stale_revisions().waiting == 0


def test_the_sweep_leaves_started_and_cancelled_sessions_alone(personas, owls):
    (guardian,) = families(personas, owls, 1)
    session = due_session(personas, group=owls)
    deliveries_plan()
    send_all(session)
    # Changed (revision 2) and then started, by the database's clock: nothing is sent again.
    started = timezone.now() - dt.timedelta(minutes=1)
    VideoSession.objects.filter(pk=session.pk).update(revision=2, starts_at=started, send_at=started)
    assert changes.deliveries_stale_revisions().resent == 0
    VideoSession.objects.filter(pk=session.pk).update(status=VideoSession.Status.CANCELLED,
                                                      starts_at=session.starts_at)
    assert changes.deliveries_stale_revisions().resent == 0
    assert row(session, guardian).status == Status.SENT and len(invitations()) == 1


def test_changes_after_the_start_are_refused_and_resend_nothing(personas, owls):
    from django.core.exceptions import ValidationError

    families(personas, owls, 1)
    session = due_session(personas, group=owls)
    deliveries_plan()
    send_all(session)
    with time_machine.travel(session.starts_at + dt.timedelta(minutes=1), tick=False), \
            pytest.raises(ValidationError):
        session_update(session=session, actor=personas.teacher, password=NEW_PASSWORD)
    assert Delivery.objects.get().status == Status.SENT and len(invitations()) == 1


@pytest.mark.parametrize("move", [False, True])
def test_the_sweep_runs_the_same_number_of_queries_for_two_rows_as_for_six(personas, owls, move):
    counts = []
    for size in (2, 6):
        group = GroupFactory(school=personas.school)
        families(personas, group, size)
        session = due_session(personas, group=group)
        deliveries_plan()
        Delivery.objects.filter(session=session).update(status=Status.SENDING, attempts=1)
        if move:
            session_update(session=session, actor=personas.teacher, starts_at=session.starts_at + dt.timedelta(days=1))
        else:
            session_update(session=session, actor=personas.teacher, password=NEW_PASSWORD)
        Delivery.objects.filter(session=session).update(status=Status.SENT, sent_revision=1, revision=1)
        with CaptureQueriesContext(connection) as queries:
            result = changes.deliveries_stale_revisions()
        assert (result.waiting if move else result.resent) == size
        # Told of the move: a consent link and an outbox row per guardian, the rest per batch.
        counts.append(len(queries) - (2 * size if move else 0))
    assert counts[0] == counts[1]


def test_a_longer_lead_time_brings_waiting_invitations_forward(personas, owls, django_capture_on_commit_callbacks):
    (guardian,) = families(personas, owls, 1)
    session = due_session(personas, group=owls, minutes_ahead=30, lead_minutes=60)
    deliveries_plan()
    # Lead time cut to 10 minutes: the row waits for the new send time, 20 minutes away.
    session_update(session=session, actor=personas.teacher, lead_minutes=10)
    session.refresh_from_db()
    assert row(session, guardian).next_attempt_at == session.send_at and send_all(session) == []
    with django_capture_on_commit_callbacks(execute=True):
        session_update(session=session, actor=personas.teacher, lead_minutes=45)
    assert row(session, guardian).status == Status.SENT and len(invitations()) == 1
    assert "replaces" not in invitations()[0].body


def test_the_per_minute_sweep_task_runs_the_stale_revision_step(personas, owls):
    from sessions import tasks

    (guardian,) = families(personas, owls, 1)
    session = due_session(personas, group=owls)
    deliveries_plan()
    Delivery.objects.filter(session=session).update(status=Status.SENDING, attempts=1)
    session_update(session=session, actor=personas.teacher, password=NEW_PASSWORD)
    _in_flight_then_recorded_with_the_old_revision(session, guardian)
    result = tasks.deliveries_sweep.delay().get()
    assert result["resent"] == 1 and row(session, guardian).status in (Status.PENDING, Status.SENT)
    assert row(session, guardian).revision == 2
