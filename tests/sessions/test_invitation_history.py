"""The host's page tells each invitation's history in plain words, and where it stands now, never hiding that
a parent already holds an invitation (promise 10)."""

import datetime as dt

import pytest
from django.urls import reverse

from consent.services import consent_withdraw
from sessions.dispatch import deliveries_plan, delivery_send_batch
from sessions.history import invitation_stories
from sessions.models import Delivery, DeliveryEvent
from sessions.services import session_update
from tests.factories import GroupFactory

from .emails_dispatch import consenting_family, current_notice, due_session

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Hazel-Nut-5318"

Status = Delivery.Status


@pytest.fixture
def sent(personas):
    """One family invited to a due session: the session, the guardian, the child."""
    owls = GroupFactory(school=personas.school, name="Owls")
    guardian, (pupil,) = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    delivery_send_batch(Delivery.objects.values_list("pk", flat=True))
    return session, guardian, pupil


def _story(session):
    delivery = Delivery.objects.get(session=session)
    return invitation_stories([delivery])[delivery.pk]


def _page(client_for, personas, session) -> str:
    url = reverse("video_sessions:session", kwargs={"pk": session.pk})
    return client_for(personas.teacher).get(url).content.decode()


def test_the_history_shows_both_sends_of_an_invitation_sent_again_after_a_change(personas, sent, client_for):
    session, _, _ = sent
    session_update(session=session, actor=personas.teacher, password=NEW_PASSWORD)
    delivery_send_batch(Delivery.objects.values_list("pk", flat=True))
    story = _story(session)
    assert [step.text for step in story.steps] == [
        "Sent", "The lesson changed: the new details are to be sent", "Sent again with the new details"]
    assert story.state == "Sent (2 emails)" and story.times_sent == 2
    sends = list(DeliveryEvent.objects.filter(status=Status.SENT).values_list("at", flat=True))
    assert [step.at for step in story.steps if step.text.startswith("Sent")] == sends
    assert sends[-1] == Delivery.objects.get(session=session).sent_at  # when the mail server accepted it
    page = _page(client_for, personas, session)
    assert "Sent again with the new details" in page and "Sent (2 emails)" in page


def test_an_invitation_waiting_to_go_again_after_a_move_is_not_shown_as_merely_queued(personas, sent, client_for):
    session, _, _ = sent
    session_update(session=session, actor=personas.teacher, starts_at=session.starts_at + dt.timedelta(days=1))
    story = _story(session)
    assert story.state == "Sent earlier; the new details are still to be sent"
    assert [step.text for step in story.steps] == [
        "Sent", "The lesson moved: the new details will be sent at the new send time",
        "The parent was told the lesson moved, and not to use this invitation"]
    page = _page(client_for, personas, session)
    assert "Sent earlier; the new details are still to be sent" in page and "0 attempts" not in page


def test_an_invitation_cancelled_after_it_was_sent_says_the_parent_still_has_the_link(personas, sent, client_for):
    session, guardian, pupil = sent
    session_update(session=session, actor=personas.teacher, starts_at=session.starts_at + dt.timedelta(days=1))
    consent_withdraw(guardian=guardian, pupil=pupil, notice=current_notice(personas.school))
    story = _story(session)
    assert story.state == "Cancelled after it was sent: the parent still has the earlier email with the link"
    assert story.steps[0].text == "Sent" and story.steps[-1].text == "Cancelled: consent withdrawn"
    assert story.tone == "problem"
    assert "the parent still has the earlier email with the link" in _page(client_for, personas, session)


def test_an_invitation_cancelled_before_it_was_sent_says_so(personas):
    owls = GroupFactory(school=personas.school, name="Owls")
    guardian, (pupil,) = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    consent_withdraw(guardian=guardian, pupil=pupil, notice=current_notice(personas.school))
    story = _story(session)
    assert story.state == "Cancelled before it was sent" and story.times_sent == 0
    assert [step.text for step in story.steps] == ["Cancelled: consent withdrawn"]


def test_the_history_says_when_the_parent_was_told_the_lesson_cannot_go_ahead_or_is_cancelled(personas, sent):
    from sessions import gate_watch
    from sessions.services import session_cancel

    session, _guardian, _pupil = sent
    membership = personas.teacher.memberships.get(school=personas.school)
    membership.delete()  # the host leaves the school: the lesson cannot go ahead
    gate_watch.sessions_gate_watch()
    membership.save()
    session_cancel(session=session, actor=personas.headteacher, reason="Cannot run it")
    steps = [step.text for step in _story(session).steps]
    assert steps == ["Sent", "The parent was told the lesson cannot go ahead, and not to use this invitation",
                     "The parent was told the lesson is cancelled"]
