"""Parents already invited are told when a lesson cannot go ahead as their invitation said: cancelled, moved,
or its gate red after the invitations went (sessions.guardian_notices, sessions.gate_watch); a lesson still
red at its start is recorded as not having gone ahead and its host told. Each invited guardian hears once;
the withdrawn and the never-invited hear nothing."""

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from consent.services import consent_withdraw
from outbox.models import OutboxMessage
from schools.models import AuditEntry, Membership, Role
from sessions import gate_watch
from sessions.dispatch import deliveries_plan, delivery_send_batch
from sessions.models import Delivery, SessionAlert, VideoSession
from sessions.services import session_cancel, session_update
from tests.factories import GroupFactory
from tests.sessions.sessions_setup import ZOOM_URL

from .emails_dispatch import PASSWORD, consenting_family, current_notice, due_session

pytestmark = pytest.mark.django_db

Status = Delivery.Status


@pytest.fixture
def lesson(personas):
    """A lesson in 30 minutes whose invitations went to three families; a fourth family of the group never
    consented (never invited); then the second family withdrew (invited, then withdrawn)."""
    group = GroupFactory(school=personas.school, name="Owls")
    invited = [consenting_family(personas.school, group, first_names=(name,)) for name in ("Ava", "Ben", "Cal")]
    session = due_session(personas, group=group, title="Owls phonics")
    deliveries_plan()
    delivery_send_batch(Delivery.objects.filter(session=session).values_list("pk", flat=True))
    assert set(Delivery.objects.filter(session=session).values_list("status", flat=True)) == {Status.SENT}
    never = consenting_family(personas.school, GroupFactory(school=personas.school), first_names=("Dan",))
    group.pupils.add(*never[1])
    consent_withdraw(guardian=never[0], pupil=never[1][0], notice=current_notice(personas.school))
    withdrawn, child = invited[1][0], invited[1][1][0]
    consent_withdraw(guardian=withdrawn, pupil=child, notice=current_notice(personas.school))
    return session, [invited[0][0], invited[2][0]], withdrawn, never[0]


def emails(template: str) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(template=template).order_by("pk"))


def host_leaves(personas):
    Membership.objects.filter(user=personas.teacher, school=personas.school).delete()


def host_returns(personas):
    Membership.objects.create(user=personas.teacher, school=personas.school, organisation=personas.organisation,
                              role=Role.TEACHER)


def start_has_come(session, minutes: int = 2):
    """The lesson started `minutes` ago (by the database's clock, which the watch reads)."""
    VideoSession.objects.filter(pk=session.pk).update(starts_at=timezone.now() - dt.timedelta(minutes=minutes))


def assert_told_once(template: str, guardians, *, says: str):
    told = emails(template)
    assert sorted(m.recipient for m in told) == sorted(g.email for g in guardians)
    for message in told:
        assert says in message.body_text and says in message.body_html
        for secret in (ZOOM_URL, PASSWORD):
            assert secret not in message.subject + message.body_text + message.body_html


def test_a_cancelled_lesson_tells_each_invited_guardian_once_and_no_one_else(personas, lesson):
    session, told, _withdrawn, _never = lesson
    session_cancel(session=session, actor=personas.teacher, reason="Teacher off sick")
    assert_told_once("session-cancelled", told, says="Please do not join the meeting at that time")


def test_a_moved_lesson_tells_each_invited_guardian_once_and_no_one_else(personas, lesson):
    session, told, _withdrawn, _never = lesson
    session_update(session=session, actor=personas.teacher, starts_at=session.starts_at + dt.timedelta(days=2))
    assert_told_once("session-moved", told, says="Please do not use the earlier invitation")


def test_a_lesson_turned_red_after_its_invitations_went_tells_each_invited_guardian_once(personas, lesson):
    session, told, _withdrawn, _never = lesson
    host_leaves(personas)
    first = gate_watch.sessions_gate_watch()
    second = gate_watch.sessions_gate_watch()
    assert (first.parents_told, second.parents_told) == (2, 0)
    assert_told_once("session-not-going-ahead", told, says="Please do not use the link or the password")
    message = emails("session-not-going-ahead")[0]
    assert message.subject.startswith("Not going ahead: Owls phonics")
    assert "cannot go ahead as planned" in message.body_text
    session.refresh_from_db()
    assert session.parents_told_off_at is not None and session.status == VideoSession.Status.SCHEDULED
    entry = AuditEntry.objects.get(action="session.parents_told_off")
    assert entry.data == {"guardians_told": 2, "did_not_go_ahead": False}
    # The staff's email says the parents were told, not that no invitation went.
    with time_machine.travel(timezone.now() + gate_watch.COALESCE_FOR + dt.timedelta(seconds=1)):
        gate_watch.sessions_gate_watch()
    (to_host,) = [m for m in emails("session-gate-red") if m.recipient == personas.teacher.email]
    assert "Invitations had already gone to parents: they have been told not to use them" in to_host.body_text


def test_a_lesson_red_before_its_invitations_went_tells_no_parent(personas):
    group = GroupFactory(school=personas.school)
    consenting_family(personas.school, group)
    due_session(personas, group=group)
    host_leaves(personas)
    assert gate_watch.sessions_gate_watch().parents_told == 0
    deliveries_plan()  # the planner plans nothing while the gate is red
    assert emails("session-not-going-ahead") == [] and not Delivery.objects.filter(status=Status.SENT).exists()


def test_a_lesson_green_again_sends_the_told_parents_a_fresh_invitation(personas, lesson,
                                                                         django_capture_on_commit_callbacks):
    session, told, withdrawn, _never = lesson
    host_leaves(personas)
    gate_watch.sessions_gate_watch()
    host_returns(personas)
    before = len(mail.outbox)
    with django_capture_on_commit_callbacks(execute=True):  # the fresh invitations are handed to the send task
        result = gate_watch.sessions_gate_watch()
    assert result.resumed == 1
    session.refresh_from_db()
    assert session.revision == 2 and session.parents_told_off_at is None
    fresh = [m for m in mail.outbox[before:] if any(a[0] == "invitation.ics" for a in m.attachments)]
    assert sorted(m.to[0] for m in fresh) == sorted(g.email for g in told)
    assert all("This invitation replaces the one we sent earlier" in m.body for m in fresh)
    withdrawn_row = Delivery.objects.get(session=session, guardian=withdrawn)
    assert withdrawn_row.status == Status.SKIPPED and withdrawn_row.sent_revision == 1  # the claim refused it


def test_a_lesson_still_red_at_its_start_did_not_go_ahead_and_its_host_is_told(personas, lesson):
    session, _told, _withdrawn, _never = lesson
    host_leaves(personas)
    gate_watch.sessions_gate_watch()
    start_has_come(session)
    result = gate_watch.sessions_gate_watch()
    assert result.not_held == 1
    session.refresh_from_db()
    assert session.status == VideoSession.Status.NOT_HELD
    assert session.get_status_display() == "Did not go ahead"
    alert = SessionAlert.objects.get(kind=SessionAlert.Kind.NOT_HELD)
    assert alert.session == session and "did not go ahead" in alert.message
    (to_host,) = [m for m in emails("session-alert") if "did not go ahead" in m.body_text]
    assert to_host.recipient == personas.teacher.email
    # The parents were told when it turned red: not again.
    assert len(emails("session-not-going-ahead")) == 2
    assert gate_watch.sessions_gate_watch().not_held == 0


def test_parents_not_told_yet_hear_it_did_not_go_ahead(personas, lesson):
    session, told, _withdrawn, _never = lesson
    host_leaves(personas)
    VideoSession.objects.filter(pk=session.pk).update(gate_red_since=timezone.now())  # marked red just now
    start_has_come(session, minutes=1)
    assert gate_watch.sessions_gate_watch().not_held == 1
    assert_told_once("session-not-going-ahead", told, says="did not go ahead")


def test_a_lesson_green_again_by_its_start_goes_ahead(personas, lesson):
    session, _told, _withdrawn, _never = lesson
    host_leaves(personas)
    gate_watch.sessions_gate_watch()
    host_returns(personas)
    start_has_come(session, minutes=1)
    assert gate_watch.sessions_gate_watch().not_held == 0
    session.refresh_from_db()
    assert session.status == VideoSession.Status.SCHEDULED and session.gate_red_since is None


def test_the_lesson_page_says_the_parents_were_told_and_then_that_it_did_not_go_ahead(personas, lesson, client_for):
    session, _told, _withdrawn, _never = lesson
    host_leaves(personas)
    gate_watch.sessions_gate_watch()
    client = client_for(personas.headteacher)
    page = client.get(f"/sessions/{session.pk}/").content.decode()
    assert "that this lesson cannot go ahead as planned and not to use their invitation" in page
    start_has_come(session)
    gate_watch.sessions_gate_watch()
    page = client.get(f"/sessions/{session.pk}/").content.decode()
    assert "Did not go ahead" in page and "This lesson did not go ahead" in page
    response = client.get(f"/sessions/{session.pk}/attendance/", follow=True)
    assert "The lesson did not go ahead: there is no attendance to record" in response.content.decode()


def test_green_again_after_the_parents_were_told_the_page_says_they_get_a_fresh_invitation_within_5_minutes(
        personas, lesson, client_for):
    from django.urls import reverse

    session, _told, _withdrawn, _never = lesson
    host_leaves(personas)
    gate_watch.sessions_gate_watch()
    host_returns(personas)  # before the watch's next run
    page = client_for(personas.teacher).get(reverse("video_sessions:session", kwargs={"pk": session.pk})
                                            ).content.decode()
    assert "may not go ahead" not in page and "If the checks pass again" not in page
    assert ("Every check passes again: a check had failed since" in page
            and "get a fresh invitation at the next check, within 5 minutes" in page)
    assert gate_watch.sessions_gate_watch().told_green == 2  # its staff had been told at once (within 30 minutes)
    for message in emails("session-gate-green"):
        assert "are sent a fresh one now" in message.body_text and "are sent a fresh one now" in message.body_html
