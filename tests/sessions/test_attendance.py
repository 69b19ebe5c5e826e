"""Attendance that fits the lesson: the children invited first with "Mark the rest present", the rest of the group
folded away and answered only for a child who joined anyway; names nobody can mistake on the roster and the
attendance form."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from consent.services import consent_give, consent_refuse
from schools.models import AuditEntry
from sessions.host import attendance_sheet
from sessions.models import Attendance, Delivery, VideoSession
from tests.consent.consent_setup import guardian_of, pupil_at
from tests.factories import GroupFactory

from .emails_dispatch import current_notice
from .sessions_setup import session_row

pytestmark = pytest.mark.django_db


def _url(name: str, session: VideoSession) -> str:
    return reverse(f"video_sessions:{name}", kwargs={"pk": session.pk})


def _child(personas, group, first: str, last: str = "", *, consent: str = "", **fields):
    """A pupil of `group` with one guardian; `consent` "given" or "refused" (else none asked)."""
    values = {"first_name": first, **({"last_name": last} if last else {}), **fields}
    pupil = pupil_at(personas.school, **values)
    group.pupils.add(pupil)
    guardian = guardian_of(pupil)
    notice = current_notice(personas.school)
    if consent == "given":
        consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
    elif consent == "refused":
        consent_refuse(guardian=guardian, pupil=pupil, notice=notice)
    return pupil


def _invite(session, pupil) -> Delivery:
    """An invitation sent to the pupil's guardian, naming them."""
    return Delivery.objects.create(session=session, guardian=pupil.guardians.get(), status=Delivery.Status.SENT,
                                   pupil_ids=[pupil.pk], sent_at=timezone.now(), sent_revision=1)


def _started(personas, group) -> VideoSession:
    session = session_row(personas.school, personas.teacher, starts_at=timezone.now() - dt.timedelta(minutes=35))
    session.groups.add(group)
    return session


@pytest.fixture
def class_of_36(personas):
    """A class of 36: Ava and Ben invited (their parents consented and were sent the link); 34 without consent."""
    group = GroupFactory(school=personas.school, name="Oak class")
    ava = _child(personas, group, "Ava", "Adams", consent="given")
    ben = _child(personas, group, "Ben", "Brown", consent="given")
    rest = [_child(personas, group, f"Pupil{n:02d}", "Smith") for n in range(34)]
    session = _started(personas, group)
    _invite(session, ava)
    _invite(session, ben)
    return session, ava, ben, rest


def _section(page: str, start: str, end: str | None = None) -> str:
    return page[page.index(start):page.index(end) if end else None]


# --- The lesson's children first ----------------------------------------------------------------------------

def test_attendance_for_2_invited_of_a_36_child_class_is_saved_with_the_2_answered(personas, client_for, class_of_36):
    session, ava, ben, _ = class_of_36
    client = client_for(personas.teacher)
    page = client.get(_url("attendance", session)).content.decode()
    invited = _section(page, 'class="table align-middle attendance-table attendance-expected', "</table>")
    assert invited.count('class="attendance-row') == 2 and "Ava" in invited and "Ben" in invited
    assert "Invited <span" in page and ">Mark the rest present</button>" in page
    assert '<details class="attendance-others mb-4">' in page  # folded away, not open
    assert page.count('class="attendance-row') == 36

    response = client.post(_url("attendance", session), {f"present_{ava.pk}": "yes", f"adult_{ava.pk}": "yes",
                                                          f"present_{ben.pk}": "no"})
    assert response.status_code == 302
    saved = {a.pupil_id: (a.present, a.adult_present) for a in Attendance.objects.filter(session=session)}
    assert saved == {ava.pk: (True, True), ben.pk: (False, None)}
    entry = AuditEntry.objects.get(action="session.attendance_recorded")
    assert entry.data["children"] == 2 and entry.data["present"] == 1


def test_mark_the_rest_present_without_javascript_fills_only_the_unanswered_and_saves_nothing_yet(
        personas, client_for, class_of_36):
    session, ava, ben, rest = class_of_36
    client = client_for(personas.teacher)
    response = client.post(_url("attendance", session), {"all_present": "1", f"present_{ben.pk}": "no",
                                                          f"adult_{ava.pk}": "yes"})
    page = response.content.decode()
    assert response.status_code == 200 and not Attendance.objects.exists()
    assert "1 child not yet answered is marked present. Change anyone who was absent, then save." in page
    assert f'name="present_{ava.pk}" value="yes" id="id_present_{ava.pk}_0" checked' in page
    assert f'name="present_{ben.pk}" value="no" id="id_present_{ben.pk}_1" checked' in page  # Absent: kept
    assert f'name="present_{ben.pk}" value="yes" id="id_present_{ben.pk}_0">' in page
    assert f'name="adult_{ava.pk}" value="yes" id="id_adult_{ava.pk}_0" checked' in page  # kept
    assert "have no answer" not in page
    assert f'name="present_{rest[0].pk}" value="yes" id="id_present_{rest[0].pk}_0">' in page  # not invited: untouched

    # The page now holds the answers: one more tap saves them.
    assert client.post(_url("attendance", session), {f"present_{ava.pk}": "yes", f"adult_{ava.pk}": "yes",
                                                      f"present_{ben.pk}": "no"}).status_code == 302
    saved = {a.pupil_id: a.present for a in Attendance.objects.filter(session=session)}
    assert saved == {ava.pk: True, ben.pk: False}


def test_a_child_who_was_not_invited_can_still_be_marked_and_is_flagged(personas, client_for, class_of_36):
    session, ava, ben, rest = class_of_36
    response = client_for(personas.teacher).post(_url("attendance", session), {
        f"present_{ava.pk}": "yes", f"present_{ben.pk}": "yes", f"present_{rest[3].pk}": "yes"}, follow=True)
    assert "Marked present without consent: Pupil03" in response.content.decode()
    assert set(Attendance.objects.filter(present=True).values_list("pupil_id", flat=True)) == {
        ava.pk, ben.pk, rest[3].pk}
    # Recorded once, the other children's list opens on the next visit, so the answer is not hidden.
    page = client_for(personas.teacher).get(_url("attendance", session)).content.decode()
    assert '<details class="attendance-others mb-4" open>' in page


def test_an_invited_child_left_unanswered_keeps_every_typed_answer(personas, client_for, class_of_36):
    session, ava, _, rest = class_of_36
    response = client_for(personas.teacher).post(_url("attendance", session), {
        f"present_{ava.pk}": "no", f"adult_{ava.pk}": "no", f"present_{rest[5].pk}": "yes",
        f"adult_{rest[5].pk}": "yes"})
    page = response.content.decode()
    assert response.status_code == 200 and not Attendance.objects.exists()
    assert "Say whether Ben was present." in page and "Your other answers are kept." in page
    assert f'name="present_{ava.pk}" value="no" id="id_present_{ava.pk}_1" checked' in page
    assert f'name="adult_{ava.pk}" value="no" id="id_adult_{ava.pk}_1" checked' in page
    assert f'name="present_{rest[5].pk}" value="yes" id="id_present_{rest[5].pk}_0" checked' in page
    assert f'name="adult_{rest[5].pk}" value="yes" id="id_adult_{rest[5].pk}_0" checked' in page
    assert '<details class="attendance-others mb-4" open>' in page


def test_a_repeated_submission_records_once(personas, client_for, class_of_36):
    session, ava, ben, _ = class_of_36
    client = client_for(personas.teacher)
    answers = {f"present_{ava.pk}": "yes", f"present_{ben.pk}": "no"}
    assert client.post(_url("attendance", session), answers).status_code == 302
    recorded_at = Attendance.objects.get(pupil=ava).recorded_at
    again = client.post(_url("attendance", session), answers, follow=True)
    assert "was already saved as it is: nothing changed" in again.content.decode()
    assert AuditEntry.objects.filter(action="session.attendance_recorded").count() == 1
    assert Attendance.objects.count() == 2 and Attendance.objects.get(pupil=ava).recorded_at == recorded_at


def test_a_child_invited_whose_parent_withdrew_is_still_asked_about(personas, client_for):
    group = GroupFactory(school=personas.school)
    ava = _child(personas, group, "Ava", consent="refused")  # the link went out before the refusal
    ben = _child(personas, group, "Ben", consent="given")  # may be admitted; the invitation failed
    cal = _child(personas, group, "Cal")
    session = _started(personas, group)
    _invite(session, ava)
    sheet = attendance_sheet(session)
    assert [c.pk for c in sheet.expected] == [ava.pk, ben.pk] and [c.pk for c in sheet.others] == [cal.pk]
    page = client_for(personas.teacher).get(_url("attendance", session)).content.decode()
    invited = _section(page, "attendance-expected", "</table>")
    assert "No consent now" in invited and "No invitation went out" in invited


def test_mark_the_rest_present_with_everyone_answered_changes_nothing(personas, client_for, class_of_36):
    session, ava, ben, _ = class_of_36
    page = client_for(personas.teacher).post(_url("attendance", session), {
        "all_present": "1", f"present_{ava.pk}": "no", f"present_{ben.pk}": "no"}).content.decode()
    assert "Every invited child already has an answer: nothing was changed." in page
    for child in (ava, ben):
        assert f'name="present_{child.pk}" value="no" id="id_present_{child.pk}_1" checked' in page


def test_with_nobody_invited_the_page_says_so_and_a_joiner_can_be_recorded(personas, client_for):
    group = GroupFactory(school=personas.school)
    cal = _child(personas, group, "Cal")
    session = _started(personas, group)
    client = client_for(personas.teacher)
    page = client.get(_url("attendance", session)).content.decode()
    assert "Nobody was invited" in page and "Mark the rest present" not in page
    assert "Nothing to save: answer for at least one child." in client.post(_url("attendance", session),
                                                                           {}).content.decode()
    assert client.post(_url("attendance", session), {f"present_{cal.pk}": "yes"}).status_code == 302
    assert Attendance.objects.get().present


# --- Names nobody can mistake -------------------------------------------------------------------------------

def test_duplicate_looking_names_are_told_apart_on_the_roster_and_the_attendance_form(personas, client_for):
    group = GroupFactory(school=personas.school)
    corrigan = _child(personas, group, "Aoife", "Corrigan", consent="given")
    cowan = _child(personas, group, "Aoife", "Cowan")
    _child(personas, group, "Ben", "Corrigan", consent="given")
    session = _started(personas, group)
    _invite(session, corrigan)
    client = client_for(personas.teacher)

    roster = client.get(_url("roster", session)).content.decode()
    assert "<li>Aoife Cor.</li>" in _section(roster, "roster-admitted-list", "refused-heading")
    assert "<li>Aoife Cow.</li>" in _section(roster, "roster-refused-list")
    assert "<li>Ben</li>" in roster
    assert "More than one child is called Aoife" in roster

    attendance = client.get(_url("attendance", session)).content.decode()
    assert "Say whether" not in attendance
    assert "Was Aoife Cor. present?" in attendance and "Was Aoife Cow. present?" in attendance
    response = client.post(_url("attendance", session), {f"present_{cowan.pk}": "no"})
    assert "Say whether Aoife Cor. was present." in response.content.decode()


def test_identical_full_names_add_the_year_group_or_else_the_mis_id(personas, client_for):
    group = GroupFactory(school=personas.school)
    _child(personas, group, "Aoife", "Corrigan", consent="given", year_group="4")
    _child(personas, group, "Aoife", "Corrigan", year_group="Year 5")
    session = _started(personas, group)
    client = client_for(personas.teacher)
    roster = client.get(_url("roster", session)).content.decode()
    assert "<li>Aoife Corrigan (Year 4)</li>" in roster and "<li>Aoife Corrigan (Year 5)</li>" in roster

    twins = GroupFactory(school=personas.school)
    _child(personas, twins, "Sam", "Lee", year_group="Year 4", mis_id="A100")
    _child(personas, twins, "Sam", "Lee", year_group="Year 4", mis_id="A101")
    other = _started(personas, twins)
    attendance = client.get(_url("attendance", other)).content.decode()
    assert "Sam Lee (MIS id A100)" in attendance and "Sam Lee (MIS id A101)" in attendance
