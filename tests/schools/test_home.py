"""The home page: each role sees what is ready, what is blocked and what needs them — and nobody else's.

Each kind of item is made through the real services (or written as the worker would leave it), then every
persona's home page is read: the item shows for exactly the people who should see it, the empty state
("All clear: …") shows when there is none, and the query count does not grow with schools or lessons.
"""

import datetime as dt
import html

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from consent.models import RightsRequest
from pia import services as pia_services
from riskassess.services import assessment_flag_for_review
from schools.models import Role
from sessions.host import incident_report
from sessions.models import Delivery, Incident
from tests.conftest import sign_in
from tests.consent.consent_setup import guardian_of, publish, pupil_at
from tests.factories import GroupFactory, MembershipFactory, SchoolFactory, TOTPDeviceFactory, UserFactory
from tests.pia.pia_setup import draft_pia
from tests.sessions.sessions_setup import scheduled_session, session_row, video_purpose

pytestmark = pytest.mark.django_db

EVERYONE = ("headteacher", "teacher", "office", "dpo", "siro", "org_admin", "other_teacher", "other_headteacher")


def home(client, user) -> str:
    sign_in(client, user)
    response = client.get(reverse("schools:dashboard"))
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def who_sees(client, personas, text: str) -> set[str]:
    seen = set()
    for name in EVERYONE:
        client.logout()
        if text in home(client, getattr(personas, name)):
            seen.add(name)
    return seen


# --- Empty states ---------------------------------------------------------------------------------------------


def test_a_headteacher_with_nothing_going_on_sees_what_all_clear_means(client, personas):
    body = home(client, personas.headteacher)
    assert "Nothing is waiting for you" in body
    assert "No lessons are scheduled in the next 14 days." in body
    assert "All clear: no parent's request is open." in body
    assert "All clear: every email went out." in body
    assert "All clear: no incident in the last 14 days." in body
    assert "All clear: nothing is due for review" in body


def test_a_teacher_office_and_dpo_each_see_their_own_empty_states(client, personas):
    assert "You have no lessons in the next 14 days." in home(client, personas.teacher)
    client.logout()
    office = home(client, personas.office)
    assert "None: no uploaded file waits to be confirmed." in office
    assert "All clear: every parent with parental responsibility has answered." in office
    client.logout()
    dpo = home(client, personas.dpo)
    assert "PIAs in sign-off" in dpo and "All clear: no request is due within a week or late." in dpo
    assert "Laxey Test School" in dpo  # the per-school row


# --- Lessons and their readiness -------------------------------------------------------------------------------


def _consenting_family(school, group, notice):
    from consent.services import consent_give

    pupil = pupil_at(school, first_name="Aoife")
    group.pupils.add(pupil)
    guardian = guardian_of(pupil)
    consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
    return pupil


def test_a_lesson_shows_its_gate_coverage_and_invitations_to_its_head_and_host(client, personas):
    group = GroupFactory(school=personas.school, name="Year 3")
    notice = publish(video_purpose(personas.organisation))
    _consenting_family(personas.school, group, notice)
    group.pupils.add(pupil_at(personas.school), pupil_at(personas.school))  # two without an answer
    session = scheduled_session(personas, title="Year 3 phonics", groups=[group])
    body = home(client, personas.headteacher)
    assert "Year 3 phonics" in body and "Ready" in body
    assert "1 of 3" in body  # children who may attend
    assert "invitations go" in body
    client.logout()
    assert "Year 3 phonics" in home(client, personas.teacher)  # the host's "Your lessons"
    assert session.pk


def test_a_red_gate_shows_its_reason_and_who_can_fix_it_to_the_right_people_only(client, personas):
    session = scheduled_session(personas, title="Blocked lesson")
    assessment = session.school.risk_assessments.first() or session.school.organisation.risk_assessments.first()
    assessment_flag_for_review(assessment=assessment, reason="An uninvited adult joined.", actor=personas.teacher)
    body = home(client, personas.headteacher)
    assert "Cannot go ahead yet" in body and "flagged for review after an incident" in body
    # The head reviews it (the flag names no school: the assessment's approvers do) and is told so; the host
    # (teacher) is told who can; the organisation roles see the per-school row; never the other school.
    assert "You can review it: open the risk assessment" in body
    assert who_sees(client, personas, "You can review it") == {"headteacher"}
    assert who_sees(client, personas, "Who can fix it: The headteacher approves") == {"teacher"}
    client.logout()
    dpo = home(client, personas.dpo)
    assert '<span class="badge text-bg-danger">1</span>' in dpo  # one blocked lesson in Laxey's row


def test_a_failed_invitation_shows_to_the_head_and_office_of_its_school_only(client, personas):
    session = session_row(personas.school, personas.teacher, title="Maths")
    guardian = guardian_of(pupil_at(personas.school))
    Delivery.objects.create(session=session, guardian=guardian, status=Delivery.Status.FAILED,
                            reason="550 mailbox unavailable")
    assert who_sees(client, personas, "1</span> invitation could not be sent") == {"headteacher", "office"}


def test_an_overdue_parents_request_shows_days_late_where_it_is_answered(client, personas):
    guardian = guardian_of(pupil_at(personas.school))
    RightsRequest.objects.create(school=personas.school, guardian=guardian, guardian_label="Sinéad Corrigan",
                                 kind=RightsRequest.Kind.ACCESS, due_on=timezone.localdate() - dt.timedelta(days=3))
    seen = who_sees(client, personas, "Sinéad Corrigan")
    assert seen == {"headteacher", "office", "dpo", "org_admin"}
    client.logout()
    assert "3 days late" in home(client, personas.headteacher)


def test_an_incident_shows_to_the_school_and_the_organisation_and_to_its_reporter(client, personas):
    session = scheduled_session(personas, title="Story time")
    Incident.objects.create(session=session, kind=Incident.Kind.UNINVITED, description="Someone joined.",
                            reported_by=personas.teacher)
    seen = who_sees(client, personas, "Uninvited participant")
    assert seen == {"headteacher", "teacher", "dpo", "siro", "org_admin"}


def test_an_incident_report_flags_the_assessment_and_puts_a_review_on_the_heads_list(client, personas):
    session = scheduled_session(personas, title="Story time")
    session.starts_at = timezone.now() - dt.timedelta(minutes=5)
    session.save(update_fields=["starts_at"])
    incident_report(session=session, actor=personas.teacher, kind=Incident.Kind.UNINVITED,
                    description="An adult we did not know joined.", ended_early=True)
    sign_in(client, personas.headteacher)
    todos = client.get(reverse("schools:dashboard")).context["home"].needs_you
    assert [todo.kind for todo in todos] == ["review"]


# --- Needs you ------------------------------------------------------------------------------------------------


def test_a_pia_waiting_for_each_step_is_on_exactly_that_persons_list(client, personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school, title="Teams")
    pia_services.version_submit(version=version, actor=personas.office)

    def holders(kind: str) -> set[str]:
        found = set()
        for name in EVERYONE:
            client.logout()
            sign_in(client, getattr(personas, name))
            home_ = client.get(reverse("schools:dashboard")).context["home"]
            if any(todo.kind == kind and "Teams" in todo.title for todo in home_.needs_you):
                found.add(name)
        return found

    assert holders("advise") == {"dpo"}
    pia_services.version_advise(version=version, actor=personas.dpo, advice="Go ahead.", step_comments={})
    assert holders("decide") == {"headteacher"}
    pia_services.version_decide(version=version, actor=personas.headteacher, accept=True, reasons="")
    assert holders("sign") == {"siro"}
    pia_services.version_sign(version=version, actor=personas.siro)
    assert holders("sign") == set()


def test_the_navigation_bar_counts_what_needs_you_on_every_page(client, personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school, title="Teams")
    pia_services.version_submit(version=version, actor=personas.office)
    sign_in(client, personas.dpo)
    body = client.get(reverse("video_sessions:list")).content.decode()
    assert '1<span class="visually-hidden"> item needs you</span>' in body


def test_needs_you_lists_the_oldest_first(client, personas):
    guardian = guardian_of(pupil_at(personas.school))
    now = timezone.now()
    for days, label in ((2, "Newer"), (9, "Older")):
        RightsRequest.objects.create(school=personas.school, guardian=guardian, guardian_label=label,
                                     kind=RightsRequest.Kind.DELETION, received_at=now - dt.timedelta(days=days),
                                     due_on=timezone.localdate() + dt.timedelta(days=20))
    sign_in(client, personas.office)
    todos = client.get(reverse("schools:dashboard")).context["home"].needs_you
    assert [todo.since for todo in todos] == sorted(todo.since for todo in todos)
    assert len(todos) == 2


def test_attendance_not_yet_recorded_is_on_the_hosts_list(client, personas):
    session_row(personas.school, personas.teacher, title="Yesterday's lesson",
                starts_at=timezone.now() - dt.timedelta(days=1))
    body = home(client, personas.teacher)
    assert "Record attendance for “Yesterday's lesson”" in body


# --- Office ---------------------------------------------------------------------------------------------------


def test_the_office_sees_parents_not_yet_asked_with_a_way_to_ask_them(client, personas):
    publish(video_purpose(personas.organisation))
    guardian_of(pupil_at(personas.school))
    guardian_of(pupil_at(personas.school))
    body = home(client, personas.office)
    assert "2 not yet asked" in body
    assert reverse("consent:requests", args=[personas.school.pk]) in body


# --- Cost -----------------------------------------------------------------------------------------------------


def _queries(client, user) -> int:
    sign_in(client, user)
    with CaptureQueriesContext(connection) as context:
        assert client.get(reverse("schools:dashboard")).status_code == 200
    return len(context.captured_queries)


SCHOOL_ROLES = {"headteacher": Role.HEADTEACHER, "teacher": Role.TEACHER, "office": Role.OFFICE}


@pytest.mark.parametrize("persona", ["headteacher", "teacher", "office", "dpo", "siro", "org_admin"])
def test_each_home_page_costs_the_same_queries_for_one_school_or_six_and_ten_lessons_or_a_hundred(
        client, personas, persona):
    user = getattr(personas, persona)
    notice = publish(video_purpose(personas.organisation))
    group = GroupFactory(school=personas.school)
    _consenting_family(personas.school, group, notice)
    for hour in range(10):
        session = session_row(personas.school, personas.teacher,
                              starts_at=timezone.now() + dt.timedelta(hours=hour + 2))
        session.groups.add(group)
    first = _queries(client, user)
    # Five more schools where the person holds the same role, with a class, consent and 18 lessons each.
    for _ in range(5):
        school = SchoolFactory(organisation=personas.organisation)
        if persona in SCHOOL_ROLES:
            MembershipFactory(user=user, role=SCHOOL_ROLES[persona], school=school, organisation=personas.organisation)
        other_group = GroupFactory(school=school)
        _consenting_family(school, other_group, notice)
        for hour in range(18):
            session = session_row(school, personas.teacher, starts_at=timezone.now() + dt.timedelta(hours=hour + 2))
            session.groups.add(other_group)
    client.logout()
    assert _queries(client, user) == first


def test_another_organisations_dpo_sees_nothing_of_this_one(client, personas):
    session = scheduled_session(personas, title="Laxey lesson")
    Incident.objects.create(session=session, kind=Incident.Kind.SAFEGUARDING, description="A concern.",
                            reported_by=personas.teacher)
    other_dpo = UserFactory()
    MembershipFactory(user=other_dpo, role=Role.DPO, school=None, organisation=personas.other_school.organisation)
    TOTPDeviceFactory(user=other_dpo)
    body = home(client, other_dpo)
    assert "Laxey" not in body and "Safeguarding concern" not in body


def test_the_badge_count_agrees_with_the_list_for_every_kind(personas):
    from schools.home import needs_you, needs_you_count
    from schools.scope import build_scope
    from tests.riskassess.matrix_reviews import overdue_action

    version = draft_pia(personas.organisation, personas.office, school=personas.school, title="Teams")
    pia_services.version_submit(version=version, actor=personas.office)
    pia_services.version_advise(version=version, actor=personas.dpo, advice="Go ahead.", step_comments={})
    guardian = guardian_of(pupil_at(personas.school))
    RightsRequest.objects.create(school=personas.school, guardian=guardian, guardian_label="A parent",
                                 kind=RightsRequest.Kind.ACCESS, due_on=timezone.localdate())
    hazard = overdue_action(personas)
    session_row(personas.school, personas.headteacher, title="Yesterday",
                starts_at=timezone.now() - dt.timedelta(days=1))
    for user in (personas.headteacher, hazard.action_owner, personas.office, personas.dpo, personas.teacher):
        scope = build_scope(user)
        assert needs_you_count(user, scope) == len(needs_you(user, scope))
    kinds = {todo.kind for todo in needs_you(personas.headteacher, build_scope(personas.headteacher))}
    assert kinds == {"decide", "answer", "attendance", "action"}


def test_each_class_figure_links_to_the_pupil_list_showing_exactly_those_children(client, personas):
    from consent.services import consent_refuse

    notice = publish(video_purpose(personas.organisation))
    owls = GroupFactory(school=personas.school, name="Owls")
    _consenting_family(personas.school, owls, notice)
    refusing = pupil_at(personas.school)
    owls.pupils.add(refusing)
    consent_refuse(guardian=guardian_of(refusing), pupil=refusing, notice=notice, attestation=True)
    for _ in range(2):
        silent = pupil_at(personas.school)
        owls.pupils.add(silent)
        guardian_of(silent)
    sign_in(client, personas.headteacher)
    (row,) = client.get(reverse("schools:dashboard")).context["home"].head["coverage"]
    assert (row["total"], row["consented"], row["refused"], row["no_answer"]) == (4, 1, 1, 2)
    listed = client.get(row["url"] + "&status=none").context["page"].paginator.count
    assert listed == row["no_answer"]
    assert client.get(row["url"]).context["page"].paginator.count == row["total"]
