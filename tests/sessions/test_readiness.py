"""Readiness beside every lesson: the gate with its reason and who can fix it, the children who may attend
(the host's roster, counted the same way) and the invitations — on the sessions list, with "blocked only"."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.models import Guardian
from consent.services import consent_give, consent_refuse
from riskassess.services import assessment_flag_for_review
from sessions.gate import gate_for, gates_for_sessions
from sessions.host import session_roster
from sessions.models import Delivery, VideoSession
from sessions.readiness import sessions_readiness
from tests.consent.consent_setup import guardian_of, publish, pupil_at
from tests.factories import GroupFactory, SchoolFactory
from tests.sessions.sessions_setup import scheduled_session, session_row, video_purpose

pytestmark = pytest.mark.django_db


def _class_with_answers(school, answers: list[str]):
    """A class whose children's parents answered as listed: "given", "refused", "none" (no answer),
    "split" (one parent gave, the other refused), "no_email" (gave, but no address to invite them at)."""
    notice = publish(video_purpose(school.organisation))
    group = GroupFactory(school=school)
    for answer in answers:
        pupil = pupil_at(school)
        group.pupils.add(pupil)
        if answer == "none":
            guardian_of(pupil)
        elif answer == "no_email":
            guardian = guardian_of(pupil)
            consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
            Guardian.objects.filter(pk=guardian.pk).update(email="")
        else:
            if answer in ("given", "split"):
                consent_give(guardian=guardian_of(pupil), pupil=pupil, notice=notice, attestation=True)
            if answer in ("refused", "split"):
                consent_refuse(guardian=guardian_of(pupil), pupil=pupil, notice=notice, attestation=True)
    return group


# Examples share the test's database: each builds its own class and lesson, and only that lesson is counted.
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answers=st.lists(st.sampled_from(["given", "refused", "none", "split", "no_email"]),
                        min_size=0, max_size=6))
def test_children_who_may_attend_is_the_roster_the_host_sees(personas, answers):
    group = _class_with_answers(personas.school, answers)
    session = scheduled_session(personas, groups=[group])
    readiness = sessions_readiness([VideoSession.objects.select_related("school__organisation", "host", "platform")
                                    .get(pk=session.pk)])[0]
    roster = session_roster(session)
    assert readiness.coverage.may_attend == len(roster.admitted)
    assert readiness.coverage.children == len(roster.children)
    assert readiness.coverage.may_attend == answers.count("given")


def test_the_bulk_gate_agrees_with_the_gate_of_each_session(personas):
    ready = scheduled_session(personas, title="Ready")
    other = SchoolFactory(organisation=personas.organisation)
    stranger = session_row(other, personas.teacher, title="Host not on this school's staff")
    sessions = list(VideoSession.objects.select_related("school", "host", "platform").filter(
        pk__in=[ready.pk, stranger.pk]))
    bulk = gates_for_sessions(sessions)
    for session in sessions:
        assert bulk[session.pk] == gate_for(session)
    assert bulk[ready.pk].ok and not bulk[stranger.pk].ok


def test_readiness_costs_the_same_queries_for_two_lessons_or_twenty(personas):
    group = _class_with_answers(personas.school, ["given", "none"])

    def count(n: int) -> int:
        for hour in range(n):
            session = session_row(personas.school, personas.teacher,
                                  starts_at=timezone.now() + dt.timedelta(hours=hour))
            session.groups.add(group)
        sessions = list(VideoSession.objects.select_related("school__organisation", "host", "platform"))
        with CaptureQueriesContext(connection) as context:
            sessions_readiness(sessions)
        return len(context.captured_queries)

    assert count(2) == count(18)


def test_the_list_shows_a_red_marker_with_the_reason_and_who_can_fix_it(personas, client_for):
    scheduled_session(personas, title="Blocked phonics")
    assessment = personas.school.risk_assessments.first() or personas.organisation.risk_assessments.first()
    assessment_flag_for_review(assessment=assessment, reason="Zoombombing in Year 5.", actor=personas.headteacher)
    page = client_for(personas.teacher).get(reverse("video_sessions:list")).content.decode()
    assert "Cannot go ahead yet" in page and "flagged for review after an incident" in page
    assert "Who can fix it: The headteacher approves the risk assessment." in page
    assert ">Scheduled<" not in page


def test_blocked_only_keeps_just_the_lessons_that_cannot_go_ahead(personas, client_for):
    scheduled_session(personas, title="Ready lesson")
    other = SchoolFactory(organisation=personas.organisation)
    session_row(personas.school, personas.dpo, title="Lesson with a host from outside")
    session_row(other, personas.teacher, title="Not ours")
    client = client_for(personas.headteacher)
    page = client.get(reverse("video_sessions:list") + "?blocked_only=on").content.decode()
    assert "Lesson with a host from outside" in page and "Ready lesson" not in page
    everything = client.get(reverse("video_sessions:list")).content.decode()
    assert "Ready lesson" in everything and "Lesson with a host from outside" in everything


def test_blocked_only_says_all_clear_when_every_lesson_may_go_ahead(personas, client_for):
    scheduled_session(personas, title="Ready lesson")
    page = client_for(personas.teacher).get(reverse("video_sessions:list") + "?blocked_only=on").content.decode()
    assert "All clear: every upcoming lesson may go ahead." in page


def test_the_list_shows_coverage_and_the_invitations_sent_and_failed(personas, client_for):
    group = _class_with_answers(personas.school, ["given", "given", "none"])
    session = scheduled_session(personas, title="Story", groups=[group])
    VideoSession.objects.filter(pk=session.pk).update(send_at=timezone.now() - dt.timedelta(minutes=1))
    guardians = list(group.pupils.values_list("guardians", flat=True))
    Delivery.objects.create(session=session, guardian_id=guardians[0], status=Delivery.Status.SENT)
    Delivery.objects.create(session=session, guardian_id=guardians[1], status=Delivery.Status.FAILED)
    page = client_for(personas.teacher).get(reverse("video_sessions:list")).content.decode()
    assert "2 of 3" in page
    assert "Sent to 1 of 2 parents, 1 failed" in page


def test_invitations_not_yet_due_say_so(personas, client_for):
    scheduled_session(personas, title="Tomorrow")
    page = client_for(personas.teacher).get(reverse("video_sessions:list")).content.decode()
    assert "Not yet due" in page


def test_invitations_due_but_none_made_give_the_true_reason_on_the_list_and_the_home_page(personas, client_for):
    consenting = _class_with_answers(personas.school, ["given", "given"])
    nobody = _class_with_answers(personas.school, ["none", "refused"])
    ready = scheduled_session(personas, title="Ready", groups=[consenting])
    no_consent = scheduled_session(personas, title="No consent", groups=[nobody])
    red = session_row(personas.school, personas.dpo, title="Red")  # the DPO is not the school's staff
    red.groups.add(consenting)
    VideoSession.objects.update(send_at=timezone.now() - dt.timedelta(minutes=1))
    sessions = VideoSession.objects.select_related("school__organisation", "host", "platform")
    labels = {r.session.pk: r.invitations_label for r in sessions_readiness(sessions)}
    assert labels == {ready.pk: "Being prepared: they go within a minute",
                      no_consent.pk: "None to send: no parent or carer has active consent",
                      red.pk: "None sent while the lesson cannot go ahead"}
    client = client_for(personas.headteacher)
    listed = client.get(reverse("video_sessions:list")).content.decode()
    home = client.get(reverse("schools:dashboard")).content.decode()
    for label in labels.values():
        assert label in listed and label.lower() in home
