"""The paginated staff pages cost the same queries however big the school (quality.md, "pages at scale"):
the pupil list, the sessions list and the audit page, each with a few rows and with more than a page."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from consent.services import consent_give, consent_refuse
from schools.audit import audit_log
from tests.conftest import sign_in
from tests.consent.consent_setup import guardian_of, publish, pupil_at
from tests.factories import GroupFactory
from tests.sessions.sessions_setup import session_row, video_purpose

pytestmark = pytest.mark.django_db


def _queries(client, url: str) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as context:
        response = client.get(url)
    assert response.status_code == 200
    return len(context.captured_queries), response


def _pupils(school, groups, notice, count: int, start: int) -> None:
    for n in range(start, start + count):
        pupil = pupil_at(school, mis_id=f"P{n:04d}")
        for group in groups:
            group.pupils.add(pupil)
        guardian = guardian_of(pupil)
        if n % 3 == 0:
            consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
        elif n % 3 == 1:
            consent_refuse(guardian=guardian, pupil=pupil, notice=notice)


def test_the_pupil_list_costs_the_same_queries_for_three_pupils_or_a_hundred_and_shows_one_page(client, personas):
    notice = publish(video_purpose(personas.organisation))
    groups = [GroupFactory(school=personas.school, name=name) for name in ("Whole school", "Year 3", "Owls")]
    url = reverse("consent:pupils", args=[personas.school.pk])
    _pupils(personas.school, groups, notice, 3, 0)
    sign_in(client, personas.headteacher)
    few, _ = _queries(client, url)
    _pupils(personas.school, groups, notice, 97, 3)
    many, response = _queries(client, url)
    assert many == few
    assert len(response.context["rows"]) == 50
    assert response.context["page"].paginator.count == 100
    assert [row["total"] for row in response.context["groups"]] == [100, 100, 100]


def test_the_sessions_list_costs_the_same_queries_for_two_lessons_or_forty(client, personas):
    group = GroupFactory(school=personas.school)

    def lessons(count: int, start: int) -> None:
        for hour in range(start, start + count):
            session = session_row(personas.school, personas.teacher,
                                  starts_at=timezone.now() + dt.timedelta(hours=hour + 2))
            session.groups.add(group)

    lessons(2, 0)
    sign_in(client, personas.headteacher)
    few, _ = _queries(client, reverse("video_sessions:list"))
    lessons(38, 2)
    many, response = _queries(client, reverse("video_sessions:list"))
    assert many == few
    assert len(response.context["rows"]) == 25


def test_the_audit_page_costs_the_same_queries_for_five_entries_or_a_hundred_and_twenty(client, personas):
    def entries(count: int) -> None:
        for _ in range(count):
            audit_log(actor=personas.office, action="registry.exported", obj=personas.school)

    entries(5)
    sign_in(client, personas.headteacher)
    few, _ = _queries(client, reverse("schools:audit"))
    entries(115)
    many, response = _queries(client, reverse("schools:audit"))
    assert many == few
    assert len(response.context["rows"]) == 50
