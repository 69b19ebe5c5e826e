"""Consent coverage while scheduling: the figures the form shows are the roster the host later sees, a share
below the organisation's threshold must be confirmed (and posting the form directly cannot skip that), and the
hand-picked pupils' picker finds children by name or class with their consent in words."""

import datetime as dt
import html
import re

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from consent.models import Pupil
from consent.services import consent_give, consent_refuse, consent_withdraw
from schools.models import AuditEntry
from sessions.coverage import Standing, coverage_for, pupil_standings, session_coverage
from sessions.host import session_roster
from sessions.models import VideoSession
from sessions.picker import FOUND_MAX, picker_read
from tests.consent.consent_setup import guardian_of, publish, pupil_at
from tests.factories import GroupFactory, GuardianFactory

from .sessions_setup import ZOOM_URL, green_gate, scheduled_session, video_purpose

pytestmark = pytest.mark.django_db


def _form(personas, groups=(), pupils=(), **overrides) -> dict:
    day = timezone.localdate(timezone.now(), personas.school.tz) + dt.timedelta(days=2)
    data = {
        "title": "Owls story time", "platform": str(green_gate(personas).pk), "host": str(personas.teacher.pk),
        "groups": [str(g.pk) for g in groups], "pupils": [str(p.pk) for p in pupils], "meeting_url": ZOOM_URL,
        "meeting_id": "812 3456 7890", "password": "", "start_date": day.isoformat(), "start_time": "09:00",
        "duration_minutes": "30", "lead_minutes": "60", "repeat_weekly_until": "",
        "purpose": str(video_purpose(personas.organisation).pk),
    }
    data.update(overrides)
    return data


def _text(response) -> str:
    return html.unescape(response.content.decode())


def _url(name: str, personas, school=None) -> str:
    return reverse(f"video_sessions:{name}", kwargs={"school_pk": (school or personas.school).pk})


@pytest.fixture
def owls(personas):
    """Owls, a class with one child for each way of standing (and a leaver), under the current notice.

    Ava consented. Ben's parent has not answered. Cal's parent refused. Dot's mother consented and her father
    refused (a "no" wins). Eve's consent was given on the old notice and its renewal deadline has passed. Fin's
    mother consented but his stepfather, without parental responsibility, refused. Gil's parent withdrew. Hal's
    parent consented but has no email address. Kit has only a carer without parental responsibility, who cannot
    consent. Ivy has left the school."""
    school = personas.school
    green_gate(personas)
    purpose = video_purpose(personas.organisation)
    owls = GroupFactory(school=school, name="Owls")

    def child(name: str, surname: str):
        pupil = pupil_at(school, first_name=name, last_name=surname)
        owls.pupils.add(pupil)
        return pupil

    ten_days_ago = timezone.now() - dt.timedelta(days=10)
    with time_machine.travel(ten_days_ago, tick=False):
        old = publish(purpose)
        eve = child("Eve", "Lapsed")
        consent_give(guardian=guardian_of(eve), pupil=eve, notice=old, attestation=True)
        notice = publish(purpose, material_change=True,
                         renewal_deadline=timezone.localdate(ten_days_ago, school.tz) + dt.timedelta(days=2))
    ava, ben, cal, dot = child("Ava", "Given"), child("Ben", "Silent"), child("Cal", "Refused"), child("Dot", "Split")
    fin, gil, hal, kit = child("Fin", "Step"), child("Gil", "Withdrawn"), child("Hal", "Noemail"), child("Kit", "Carer")
    consent_give(guardian=guardian_of(ava), pupil=ava, notice=notice, attestation=True)
    guardian_of(ben)
    consent_refuse(guardian=guardian_of(cal), pupil=cal, notice=notice)
    mother, father = guardian_of(dot), guardian_of(dot)
    consent_give(guardian=mother, pupil=dot, notice=notice, attestation=True)
    consent_refuse(guardian=father, pupil=dot, notice=notice)
    consent_give(guardian=guardian_of(fin), pupil=fin, notice=notice, attestation=True)
    consent_refuse(guardian=guardian_of(fin, parental_responsibility=False), pupil=fin, notice=notice)
    gil_parent = guardian_of(gil)
    consent_give(guardian=gil_parent, pupil=gil, notice=notice, attestation=True)
    consent_withdraw(guardian=gil_parent, pupil=gil, notice=notice)
    consent_give(guardian=guardian_of(hal, guardian=GuardianFactory(school=school, email="")), pupil=hal,
                 notice=notice, attestation=True)
    guardian_of(kit, parental_responsibility=False)
    ivy = child("Ivy", "Left")
    ivy.left_on = timezone.localdate()
    ivy.save()
    owls.children = {p.first_name: p for p in (ava, ben, cal, dot, eve, fin, gil, hal, kit, ivy)}
    owls.notice = notice
    return owls


# --- the figures are the roster -------------------------------------------------------------------------------

def test_coverage_at_scheduling_is_the_roster_the_host_later_sees(personas, client_for, owls):
    client = client_for(personas.teacher)
    jo = pupil_at(personas.school, first_name="Jo", last_name="Picked")  # hand-picked, outside Owls, consented
    consent_give(guardian=guardian_of(jo), pupil=jo, notice=owls.notice, attestation=True)

    shown = client.get(_url("schedule-coverage", personas), {
        "groups": [owls.pk], "pupils": [jo.pk], "purpose": video_purpose(personas.organisation).pk}).json()
    assert (shown["total"], shown["may_attend"]) == (10, 2)  # Ava and Jo; Ivy has left
    assert (shown["no_answer"], shown["no_answer_parents"]) == (2, 1)  # Ben (his parent) and Kit (nobody to ask)
    assert (shown["refused_or_withdrawn"], shown["lapsed"], shown["no_email"]) == (4, 1, 1)  # Cal Dot Fin Gil; Eve; Hal

    response = client.post(_url("schedule", personas), _form(personas, [owls], [jo], confirm_coverage=shown["key"]))
    assert response.status_code == 302
    session = VideoSession.objects.get()
    roster = session_roster(session)
    assert len(roster.admitted) == shown["may_attend"] and len(roster.children) == shown["total"]
    assert {c.pk for c in roster.admitted} == {owls.children["Ava"].pk, jo.pk}
    later = session_coverage(session)
    assert later.as_data() == {key: shown[key] for key in later.as_data()}
    assert {pk for pk, s in later.standing.items() if s in (Standing.CONSENTED, Standing.RENEWAL_DUE)} == {
        c.pk for c in roster.admitted}


def test_each_child_is_given_the_reason_they_may_not_attend(personas, owls):
    kids = owls.children
    standing = pupil_standings(purpose=video_purpose(personas.organisation), pupil_ids=[p.pk for p in kids.values()])
    assert {name: standing.get(p.pk) for name, p in kids.items()} == {
        "Ava": Standing.CONSENTED, "Ben": Standing.NO_ANSWER, "Cal": Standing.REFUSED, "Dot": Standing.REFUSED,
        "Eve": Standing.LAPSED, "Fin": Standing.REFUSED, "Gil": Standing.WITHDRAWN, "Hal": Standing.NO_EMAIL,
        "Kit": Standing.NO_ANSWER, "Ivy": None,
    }


def test_a_consent_waiting_for_renewal_may_attend_and_says_so(personas):
    school, purpose = personas.school, video_purpose(personas.organisation)
    old = publish(purpose)
    pupil = pupil_at(school)
    consent_give(guardian=guardian_of(pupil), pupil=pupil, notice=old, attestation=True)
    publish(purpose, material_change=True, renewal_deadline=timezone.localdate() + dt.timedelta(days=20))
    coverage = coverage_for(school=school, purpose=purpose, pupil_ids=[pupil.pk])
    assert (coverage.may_attend, coverage.renewal_due, coverage.total) == (1, 1, 1)


def test_the_form_without_javascript_checks_coverage_and_keeps_what_was_typed(personas, client_for, owls):
    data = _form(personas, [owls], title="Owls phonics", check="1", meeting_url="", password="Owl-7731")
    response = client_for(personas.teacher).post(_url("schedule", personas), data)
    page = response.content.decode()
    assert response.status_code == 200 and not VideoSession.objects.exists()
    assert "1 of 9 children may attend (11\u00a0%)." in page
    assert 'value="Owls phonics"' in page and 'value="Owl-7731"' in page
    assert re.search(rf'name="groups" value="{owls.pk}"\s+id="id_groups_\d+"\s+checked', page)
    assert "This field is required" not in page  # still choosing: the empty meeting link is judged on submit
    assert response["Cache-Control"] == "no-store"


# --- the threshold ------------------------------------------------------------------------------------------

def test_a_direct_post_below_the_threshold_schedules_nothing_and_asks_for_confirmation(personas, client_for, owls):
    response = client_for(personas.teacher).post(_url("schedule", personas), _form(personas, [owls]))
    page = _text(response)
    assert response.status_code == 200
    assert "Only 1 of 9 children may attend (11\u00a0%), fewer than the federation's 50\u00a0%" in page
    assert "Schedule anyway: only 1 of 9 children may attend." in page
    assert not VideoSession.objects.exists()
    assert not AuditEntry.objects.filter(action__startswith="session.").exists()


@pytest.mark.parametrize("confirmation", ["on", "1-10", "2-9", "yes"])
def test_a_confirmation_of_other_figures_does_not_count(personas, client_for, owls, confirmation):
    response = client_for(personas.teacher).post(_url("schedule", personas),
                                                  _form(personas, [owls], confirm_coverage=confirmation))
    assert response.status_code == 200 and "Schedule anyway" in response.content.decode()
    assert not VideoSession.objects.exists()
    # Said at the top of the form too, linked to the tick box: on a phone it is a long scroll away.
    summary = response.content.decode().split('class="alert alert-danger form-error-summary"', 1)[1].split("</div>")[0]
    assert "Not saved yet: one thing needs your attention." in summary
    assert 'href="#id_confirm_coverage">Few children may attend</a>' in summary


def test_a_confirmed_shortfall_is_scheduled_audited_and_warned_on_the_session_page(personas, client_for, owls):
    client = client_for(personas.teacher)
    response = client.post(_url("schedule", personas), _form(personas, [owls], confirm_coverage="1-9"), follow=True)
    session = VideoSession.objects.get()
    entry = AuditEntry.objects.get(action="session.low_coverage_confirmed")
    assert entry.object_id == str(session.pk) and entry.actor_id == personas.teacher.pk
    assert (entry.data["coverage"]["may_attend"], entry.data["coverage"]["total"]) == (1, 9)
    assert AuditEntry.objects.get(action="session.scheduled").data["coverage"]["below_threshold"] is True
    warning = "Only 1 of 9 children may attend (11\u00a0%) — below the federation's 50\u00a0%."
    assert warning in _text(response)

    # The warning is computed when the page is read: Ben's parent answers, and it follows.
    ben = owls.children["Ben"]
    consent_give(guardian=ben.guardians.get(), pupil=ben, notice=owls.notice, attestation=True)
    page = _text(client.get(reverse("video_sessions:session", kwargs={"pk": session.pk})))
    assert "Only 2 of 9 children may attend (22\u00a0%)" in page


def test_coverage_at_or_above_the_threshold_needs_no_confirmation_and_leaves_no_warning(personas, client_for, owls):
    personas.organisation.coverage_warning_percent = 11
    personas.organisation.save()
    client = client_for(personas.teacher)
    response = client.post(_url("schedule", personas), _form(personas, [owls]), follow=True)
    assert VideoSession.objects.count() == 1
    assert "children may attend (11\u00a0%) —" not in response.content.decode()
    assert not AuditEntry.objects.filter(action="session.low_coverage_confirmed").exists()


def test_a_threshold_of_zero_never_asks(personas, client_for, owls):
    personas.organisation.coverage_warning_percent = 0
    personas.organisation.save()
    Pupil.objects.filter(pk=owls.children["Ava"].pk).update(left_on=timezone.localdate())  # nobody may attend
    client_for(personas.teacher).post(_url("schedule", personas), _form(personas, [owls]))
    assert VideoSession.objects.count() == 1


def test_a_session_without_children_is_scheduled_and_its_page_says_nobody_will_be_invited(personas, client_for):
    empty = GroupFactory(school=personas.school, name="New starters")
    client = client_for(personas.teacher)
    check = client.post(_url("schedule", personas), _form(personas, [empty], check="1")).content.decode()
    assert "No children are in the chosen groups or hand-picked yet: nobody would be invited." in check
    response = client.post(_url("schedule", personas), _form(personas, [empty]), follow=True)
    assert VideoSession.objects.count() == 1
    assert "No children are in this session's groups or hand-picked: nobody will be invited." in _text(response)


def test_editing_who_a_session_is_for_asks_again_but_a_new_title_does_not(personas, client_for, owls):
    session = scheduled_session(personas)  # an empty group: no children, no confirmation
    client = client_for(personas.teacher)
    url = reverse("video_sessions:edit", kwargs={"pk": session.pk})
    local = timezone.localtime(session.starts_at, personas.school.tz)
    data = _form(personas, [owls], start_date=local.date().isoformat(), start_time=local.strftime("%H:%M"))
    del data["purpose"], data["repeat_weekly_until"]
    response = client.post(url, data)
    assert response.status_code == 200 and "Save anyway: only 1 of 9 children may attend." in response.content.decode()
    assert list(session.groups.all()) != [owls]

    assert client.post(url, {**data, "confirm_coverage": "1-9"}).status_code == 302
    assert list(session.groups.all()) == [owls]
    assert AuditEntry.objects.filter(action="session.low_coverage_confirmed", object_id=str(session.pk)).count() == 1
    assert client.post(url, {**data, "title": "Owls phonics"}).status_code == 302  # same children: not asked again
    page = _text(client.get(url))
    assert "Only 1 of 9 children may attend" in page and 'name="confirm_coverage"' not in page
    shown = client.get(_url("schedule-coverage", personas), {"groups": [owls.pk], "verb": "Save", "ask": "0"}).json()
    assert "Only 1 of 9" in shown["html"] and 'name="confirm_coverage"' not in shown["html"]


# --- who may ask, and the picker ------------------------------------------------------------------------------

def test_the_coverage_endpoint_ignores_another_schools_groups_and_pupils(personas, client_for, owls):
    theirs = GroupFactory(school=personas.other_school, name="Their class")
    their_child = pupil_at(personas.other_school)
    theirs.pupils.add(their_child)
    shown = client_for(personas.teacher).get(_url("schedule-coverage", personas), {
        "groups": [owls.pk, theirs.pk], "pupils": [their_child.pk, "x1", ""]}).json()
    assert (shown["total"], shown["may_attend"]) == (9, 1)
    assert "Their class" not in shown["html"]


def test_the_office_gets_links_to_remind_the_parents_who_have_not_answered_and_a_teacher_is_told_who_can(
        personas, client_for, owls):
    office = client_for(personas.office).get(_url("schedule-coverage", personas), {"groups": [owls.pk]}).json()
    send_url = reverse("consent:requests-send", kwargs={"school_pk": personas.school.pk})
    assert f"{send_url}?group={owls.pk}" in office["html"]
    assert "Remind the 1 parent in Owls who has not answered" in office["html"]
    teacher = client_for(personas.teacher).get(_url("schedule-coverage", personas), {"groups": [owls.pk]}).json()
    assert send_url not in teacher["html"] and "The school office or the headteacher can remind" in teacher["html"]


def test_the_picker_finds_children_by_surname_or_class_with_their_consent_in_words(personas, client_for, owls):
    client = client_for(personas.teacher)
    found = client.get(_url("schedule-pupils", personas), {"q": "lapsed"}).json()
    assert found["found"] == 1 and "Eve Lapsed" in found["html"] and "Consent lapsed" in found["html"]
    by_class = client.get(_url("schedule-pupils", personas), {
        "q": "owl", "chosen": [owls.children["Ava"].pk]}).json()
    assert by_class["found"] == 8  # the current Owls but Ava, who is already chosen
    assert "Ben Silent" in by_class["html"] and "No answer" in by_class["html"] and "Ava Given" not in by_class["html"]


def test_the_picker_without_javascript_finds_and_keeps_the_chosen_pupils(personas, client_for, owls):
    ava = owls.children["Ava"]
    data = _form(personas, [], [ava], find="1", pupil_search="Refused")
    page = client_for(personas.teacher).post(_url("schedule", personas), data).content.decode()
    assert f'value="{ava.pk}" id="id_pupils_{ava.pk}" checked' in page
    cal = owls.children["Cal"]
    assert f'value="{cal.pk}" id="id_pupils_{cal.pk}">' in page and "Cal Refused" in page
    assert "1 found for “Refused”." in page


def test_a_large_school_lists_a_bounded_search_not_every_pupil(personas):
    group = GroupFactory(school=personas.school, name="Year 6")
    pupils = [pupil_at(personas.school, first_name="Sam", last_name=f"Quayle{n:03d}") for n in range(FOUND_MAX + 25)]
    group.pupils.add(*pupils)
    purpose = video_purpose(personas.organisation)
    assert picker_read(school=personas.school, purpose=purpose, chosen_ids=[pupils[0].pk]).found == []
    picker = picker_read(school=personas.school, purpose=purpose, chosen_ids=[pupils[0].pk], query="quayle")
    assert [row.pk for row in picker.chosen] == [pupils[0].pk]
    assert len(picker.found) == FOUND_MAX and picker.more == 24


# --- a constant number of queries -----------------------------------------------------------------------------

def _class_of(personas, size: int, name: str):
    group = GroupFactory(school=personas.school, name=name)
    notice = video_purpose(personas.organisation).current_notice() or publish(video_purpose(personas.organisation))
    for n in range(size):
        pupil = pupil_at(personas.school, first_name=f"Kid{n}", last_name=name)
        group.pupils.add(pupil)
        parent = guardian_of(pupil)
        if n % 2:
            consent_give(guardian=parent, pupil=pupil, notice=notice, attestation=True)
    return group


def _queries(run) -> int:
    with CaptureQueriesContext(connection) as captured:
        run()
    return len(captured)


def test_coverage_and_the_picker_cost_the_same_queries_for_5_or_50_children(personas):
    purpose = video_purpose(personas.organisation)
    school = personas.school
    counts = {}
    for size in (5, 50):
        group = _class_of(personas, size, f"Class of {size}")
        chosen = list(group.pupils.values_list("pk", flat=True)[:3])
        session = scheduled_session(personas, groups=[group])
        counts[size] = (
            _queries(lambda g=group: coverage_for(school=school, purpose=purpose, group_ids=[g.pk])),
            _queries(lambda g=group, c=chosen: picker_read(school=school, purpose=purpose, query=g.name, chosen_ids=c)),
            _queries(lambda s=session: session_coverage(s)),
        )
    assert counts[5] == counts[50]
    assert counts[5][0] <= 7
