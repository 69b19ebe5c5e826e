"""Day boundaries: the "reviews due" and "actions overdue" pages count days in each assessment's own time zone
(its school's; the organisation's for an organisation-wide one), as the reminders do, not the server's."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from riskassess.models import Hazard
from riskassess.reminders import assessment_today, reminders_send
from riskassess.services import assessment_create_from_template, version_approve, version_submit
from schools.models import School
from tests.riskassess.matrix_reviews import approved_assessment

pytestmark = pytest.mark.django_db

# 20:30 in London on Sunday 6 December 2026 is already 05:30 on Monday 7 December in Tokyo.
EVENING_IN_LONDON = dt.datetime(2026, 12, 6, 20, 30, tzinfo=ZoneInfo("UTC"))
SUNDAY, MONDAY = dt.date(2026, 12, 6), dt.date(2026, 12, 7)


@pytest.fixture
def tokyo_school(personas):
    School.objects.filter(pk=personas.school.pk).update(time_zone="Asia/Tokyo")
    personas.school.refresh_from_db()
    return personas.school


def _organisation_wide(personas, **dates):
    assessment = assessment_create_from_template(school=None, organisation=personas.organisation,
                                                 actor=personas.org_admin, assessor_name="Trust board",
                                                 assessed_on=dt.date(2026, 11, 1), **dates)
    version = assessment.versions.get()
    version_submit(version=version, actor=personas.org_admin)
    return version_approve(version=version, actor=personas.org_admin)


def _with_action(version, owner, due_on):
    row = version.hazards.order_by("position", "id").first()
    Hazard.objects.filter(pk=row.pk).update(further_action="Check the settings", action_owner=owner,
                                            action_due_on=due_on)
    return row


def test_the_assessments_day_is_its_schools_and_the_organisations_for_an_organisation_wide_one(
        tokyo_school, personas):
    with time_machine.travel(EVENING_IN_LONDON, tick=False):
        school_version = approved_assessment(tokyo_school, personas.headteacher)
        wide = _organisation_wide(personas)
    assert assessment_today(school_version.assessment, EVENING_IN_LONDON) == MONDAY
    assert assessment_today(wide.assessment, EVENING_IN_LONDON) == SUNDAY


def test_an_action_due_on_sunday_is_late_in_tokyo_on_a_london_sunday_evening(tokyo_school, personas, client_for):
    with time_machine.travel(EVENING_IN_LONDON, tick=False):
        tokyo = _with_action(approved_assessment(tokyo_school, personas.headteacher), personas.teacher, SUNDAY)
        london = _with_action(_organisation_wide(personas), personas.teacher, SUNDAY)
        response = client_for(personas.headteacher).get(reverse("riskassess:actions-overdue"))
    assert [h.pk for h in response.context["rows"]] == [tokyo.pk]
    assert [h.pk for h in response.context["soon"]] == [london.pk]
    page = response.content.decode()
    assert "1 day late" in page and "Due today" in page


def test_the_actions_page_agrees_with_the_reminders_either_side_of_tokyos_midnight(tokyo_school, personas,
                                                                                     client_for):
    before_midnight = dt.datetime(2026, 12, 6, 14, 59, tzinfo=ZoneInfo("UTC"))  # 23:59 in Tokyo
    after_midnight = before_midnight + dt.timedelta(minutes=2)  # 00:01 on Monday in Tokyo
    with time_machine.travel(before_midnight, tick=False):
        row = _with_action(approved_assessment(tokyo_school, personas.headteacher), personas.teacher, SUNDAY)
        client = client_for(personas.teacher)
        assert not client.get(reverse("riskassess:actions-overdue")).context["rows"]
        assert reminders_send(now=before_midnight)["action_overdue"] == 0
    with time_machine.travel(after_midnight, tick=False):
        assert [h.pk for h in client.get(reverse("riskassess:actions-overdue")).context["rows"]] == [row.pk]
        assert reminders_send(now=after_midnight)["action_overdue"] == 1


def test_reviews_due_count_days_in_each_assessments_time_zone(tokyo_school, personas, client_for):
    with time_machine.travel(EVENING_IN_LONDON, tick=False):
        overdue_in_tokyo = approved_assessment(tokyo_school, personas.headteacher, review_on=SUNDAY).assessment
        # Thirty days from Monday in Tokyo: within the window there, a day beyond it in London.
        edge_in_tokyo = approved_assessment(tokyo_school, personas.headteacher,
                                            review_on=MONDAY + dt.timedelta(days=30)).assessment
        today_in_london = _organisation_wide(personas, review_on=SUNDAY).assessment
        _organisation_wide(personas, review_on=MONDAY + dt.timedelta(days=30))  # 31 days away in London
        response = client_for(personas.org_admin).get(reverse("riskassess:reviews-due"))
    rows = {a.pk: a for a in response.context["rows"]}
    assert set(rows) == {overdue_in_tokyo.pk, edge_in_tokyo.pk, today_in_london.pk}
    assert rows[overdue_in_tokyo.pk].overdue and rows[overdue_in_tokyo.pk].days == -1
    assert not rows[today_in_london.pk].overdue and rows[today_in_london.pk].days == 0
    assert rows[edge_in_tokyo.pk].days == 30
    page = response.content.decode()
    assert "Overdue by 1 day" in page and "Due today" in page and "Due in 30 days" in page


def test_approval_revision_register_and_page_count_days_in_the_schools_time_zone(personas, client_for):
    from riskassess.editing import assessment_start
    from riskassess.services import version_revise, version_submit

    personas.school.time_zone = "Pacific/Auckland"  # 13 hours ahead of UTC in December
    personas.school.save()
    evening = dt.datetime(2026, 12, 6, 20, 30, tzinfo=dt.UTC)  # 7 December, 09:30 in Auckland
    with time_machine.travel(evening, tick=False):
        assessment = assessment_start(school=personas.school, actor=personas.headteacher, assessor_name="M",
                                      assessed_on=dt.date(2026, 12, 1), review_interval_months=12)
        version = assessment.versions.get()
        version_submit(version=version, actor=personas.headteacher)
        approved = version_approve(version=version, actor=personas.headteacher)
        assert approved.review_on == dt.date(2027, 12, 7)
        draft = version_revise(assessment=assessment, actor=personas.headteacher)
        assert draft.assessed_on == dt.date(2026, 12, 7)
        page = client_for(personas.teacher).get(reverse("riskassess:version", kwargs={"pk": approved.pk}))
        assert "7 December 2026, 09:30" in page.content.decode()
    # The register's overdue flag: on 7 December 2027 at 12:30 UTC it is already the 8th in Auckland.
    with time_machine.travel(dt.datetime(2027, 12, 7, 12, 30, tzinfo=dt.UTC), tick=False):
        register = client_for(personas.teacher).get(reverse("riskassess:assessments"))
        [row] = register.context["rows"]
        assert row["overdue"]
