"""Reminders of further actions and reviews: once per item, stage and date, with time moved forward."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError

from outbox.models import OutboxMessage
from riskassess.models import Assessment, Hazard, Reminder
from riskassess.reminders import action_mark_done, reminders_send
from riskassess.services import assessment_create_from_template, version_approve, version_submit
from riskassess.tasks import risk_reminders
from schools.models import AuditEntry
from tests.riskassess.matrix_reviews import approved_assessment

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NONE = {"action_due_soon": 0, "action_overdue": 0, "review_due_soon": 0, "review_overdue": 0}


def at(day: str, hour: int = 9) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def run(day: str, hour: int = 9) -> dict[str, int]:
    with time_machine.travel(at(day, hour), tick=False):
        return reminders_send(now=at(day, hour))


@pytest.fixture
def action(personas):
    """An approved assessment whose first row's further action is owned by the teacher, due 20 June 2026."""
    with time_machine.travel(at("2026-06-01"), tick=False):
        version = approved_assessment(personas.school, personas.headteacher, owner=personas.teacher,
                                      due_on=dt.date(2026, 6, 20), review_on=dt.date(2027, 6, 1))
    return version.hazards.order_by("position", "id").first()


def _emails(template: str):
    return list(OutboxMessage.objects.filter(template=template).order_by("pk"))


def test_an_action_is_reminded_once_due_soon_and_once_overdue_however_often_the_task_runs(action, personas):
    assert run("2026-06-12") == NONE  # 8 days ahead: not yet
    assert run("2026-06-13")["action_due_soon"] == 1  # within 7 days
    assert run("2026-06-13", 15) == NONE
    assert run("2026-06-19") == NONE
    assert run("2026-06-20") == NONE  # due today: neither soon-again nor overdue
    assert run("2026-06-21")["action_overdue"] == 1
    assert run("2026-06-22") == NONE
    assert run("2026-09-01") == NONE
    emails = _emails("risk-action-reminder")
    assert [e.recipient for e in emails] == [personas.teacher.email] * 2
    assert set(Reminder.objects.values_list("stage", "due_on")) == {
        ("action_due_soon", dt.date(2026, 6, 20)), ("action_overdue", dt.date(2026, 6, 20))}


def test_a_run_that_missed_the_week_before_sends_only_the_overdue_reminder(action):
    assert run("2026-07-01") == {**NONE, "action_overdue": 1}
    assert run("2026-07-02") == NONE


def test_a_moved_due_date_is_reminded_again(action):
    assert run("2026-06-21")["action_overdue"] == 1
    Hazard.objects.filter(pk=action.pk).update(action_due_on=dt.date(2026, 7, 1))
    assert run("2026-06-26")["action_due_soon"] == 1
    assert run("2026-07-02")["action_overdue"] == 1
    assert run("2026-07-03") == NONE
    assert Reminder.objects.filter(hazard=action).count() == 3


def test_a_done_action_is_not_reminded(action, personas):
    with time_machine.travel(at("2026-06-10"), tick=False):
        action_mark_done(hazard=action, actor=personas.teacher)
    assert run("2026-06-15") == NONE
    assert run("2026-06-25") == NONE
    assert not _emails("risk-action-reminder")


def test_actions_of_drafts_and_without_owner_or_email_are_not_reminded(personas):
    with time_machine.travel(at("2026-06-01"), tick=False):
        approved_assessment(personas.school, personas.headteacher)  # no further action owner
        draft = assessment_create_from_template(school=personas.school, actor=personas.headteacher,
                                                assessor_name="M Kelly", assessed_on=dt.date(2026, 6, 1))
        Hazard.objects.filter(version__assessment=draft).update(
            further_action="Something", action_owner=personas.teacher, action_due_on=dt.date(2026, 6, 2))
        no_email = approved_assessment(personas.school, personas.headteacher, owner=personas.office,
                                       due_on=dt.date(2026, 6, 2))
    personas.office.email = ""
    personas.office.save(update_fields=["email"])
    assert no_email.status == "approved"
    assert run("2026-06-10") == NONE


def test_the_due_date_is_compared_in_the_schools_time_zone(action, personas):
    personas.school.time_zone = "Pacific/Auckland"
    personas.school.save(update_fields=["time_zone"])
    # 20 June 13:00 UTC is already 21 June in Auckland: overdue there, though not yet in London.
    assert run("2026-06-20", 13)["action_overdue"] == 1
    assert dt.datetime(2026, 6, 20, 13, tzinfo=UTC).astimezone(ZoneInfo("Pacific/Auckland")).day == 21


def test_a_reminder_already_recorded_by_a_concurrent_run_is_skipped_without_an_email(action):
    Reminder.objects.create(stage="action_due_soon", hazard=action, due_on=action.action_due_on)
    assert run("2026-06-15") == NONE
    assert not _emails("risk-action-reminder")


def test_the_action_email_names_the_action_and_links_to_the_actions_page(action, personas, settings):
    run("2026-06-21")
    email = _emails("risk-action-reminder")[0]
    assert "was due on 20 June 2026" in email.body_text
    assert "Check the waiting room settings" in email.body_text
    assert f"{settings.SITE_URL}/risks/actions/" in email.body_text
    assert f"{settings.SITE_URL}/risks/actions/" in email.body_html
    assert email.subject.startswith("Overdue risk action")


def test_reviews_are_reminded_to_the_headteacher_once_soon_and_once_overdue(personas):
    with time_machine.travel(at("2026-06-01"), tick=False):
        version = approved_assessment(personas.school, personas.headteacher, review_on=dt.date(2026, 9, 1))
    assert run("2026-07-31") == NONE  # 32 days ahead
    assert run("2026-08-03")["review_due_soon"] == 1
    assert run("2026-08-20") == NONE
    assert run("2026-09-02")["review_overdue"] == 1
    assert run("2026-10-02") == NONE
    emails = _emails("risk-review-reminder")
    assert [e.recipient for e in emails] == [personas.headteacher.email] * 2
    assert "is due for review on 1 September 2026" in emails[0].body_text
    assert "was due for review on 1 September 2026" in emails[1].body_text
    assert "/risks/reviews/" in emails[1].body_html
    assert Reminder.objects.filter(version=version).count() == 2


def test_an_organisation_wide_review_goes_to_the_organisation_admins(personas):
    with time_machine.travel(at("2026-06-01"), tick=False):
        assessment = assessment_create_from_template(
            school=None, organisation=personas.organisation, actor=personas.org_admin, assessor_name="Trust",
            assessed_on=dt.date(2026, 6, 1), review_on=dt.date(2026, 6, 20))
        version = assessment.versions.get()
        version_submit(version=version, actor=personas.org_admin)
        version_approve(version=version, actor=personas.org_admin)
    assert run("2026-06-10")["review_due_soon"] == 1
    assert [e.recipient for e in _emails("risk-review-reminder")] == [personas.org_admin.email]


def test_superseded_versions_are_not_reminded(personas):
    with time_machine.travel(at("2026-06-01"), tick=False):
        version = approved_assessment(personas.school, personas.headteacher, review_on=dt.date(2026, 6, 5))
    version.status = "superseded"
    version.save(update_fields=["status"])
    assert run("2026-06-10") == NONE


def test_each_run_that_sends_is_audited_once_with_its_counts(action, personas):
    with time_machine.travel(at("2026-06-01"), tick=False):
        approved_assessment(personas.school, personas.headteacher, review_on=dt.date(2026, 6, 20))
    run("2026-06-15")
    entries = AuditEntry.objects.filter(action="risk.reminder_sent")
    assert entries.count() == 1
    assert entries.get().data == {**NONE, "action_due_soon": 1, "review_due_soon": 1}
    run("2026-06-16")
    assert entries.count() == 1  # nothing sent, nothing to audit


def test_the_beat_task_runs_the_reminders(action):
    with time_machine.travel(at("2026-06-15"), tick=False):
        assert risk_reminders() == {**NONE, "action_due_soon": 1}


def test_marking_done_is_for_the_owner_or_the_headteacher_and_audited(action, personas):
    with pytest.raises(PermissionDenied):
        action_mark_done(hazard=action, actor=personas.office)
    with time_machine.travel(at("2026-06-10"), tick=False):
        done = action_mark_done(hazard=action, actor=personas.headteacher)
    assert done.action_done_on == dt.date(2026, 6, 10)
    with pytest.raises(ValidationError):
        action_mark_done(hazard=action, actor=personas.teacher)
    entry = AuditEntry.objects.get(action="risk.action_done")
    assert entry.data["hazard_id"] == action.pk
    # Only the done date changed: the approved snapshot still verifies.
    assert done.version.hash_verifies()
    assert Assessment.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_send_each_reminder_once(personas, monkeypatch):
    import threading

    from django.db import connection

    from outbox import services

    monkeypatch.setattr(services, "_send_after_commit", lambda pk: None)  # only the rows matter
    with time_machine.travel(at("2026-06-01"), tick=False):
        for _ in range(5):
            approved_assessment(personas.school, personas.headteacher, owner=personas.teacher,
                                due_on=dt.date(2026, 6, 5), review_on=dt.date(2026, 6, 3))
    barrier = threading.Barrier(2)
    results: list[dict] = []

    def run_once():
        try:
            barrier.wait(timeout=10)
            results.append(reminders_send(now=at("2026-06-10")))
        finally:
            connection.close()

    threads = [threading.Thread(target=run_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 2
    assert sum(r["action_overdue"] for r in results) == 5
    assert sum(r["review_overdue"] for r in results) == 5
    assert OutboxMessage.objects.filter(template="risk-action-reminder").count() == 5
    assert OutboxMessage.objects.filter(template="risk-review-reminder").count() == 5


def test_finding_the_review_recipients_takes_one_query_however_many_assessments_are_due(
        personas):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from schools.models import Role
    from tests.factories import MembershipFactory, SchoolFactory, UserFactory

    def membership_queries(day: str) -> int:
        with CaptureQueriesContext(connection) as context, time_machine.travel(at(day), tick=False):
            reminders_send(now=at(day))
        return sum('"schools_membership"' in query["sql"] for query in context.captured_queries)

    with time_machine.travel(at("2026-06-01"), tick=False):
        approved_assessment(personas.school, personas.headteacher, review_on=dt.date(2026, 6, 20))
    assert membership_queries("2026-06-10") == 1
    with time_machine.travel(at("2026-06-01"), tick=False):
        for _ in range(3):
            school = SchoolFactory(organisation=personas.organisation)
            head = UserFactory()
            MembershipFactory(user=head, role=Role.HEADTEACHER, school=school, organisation=personas.organisation)
            approved_assessment(school, personas.org_admin, review_on=dt.date(2026, 6, 25))
    Reminder.objects.all().delete()
    assert membership_queries("2026-06-10") == 1
    assert len(_emails("risk-review-reminder")) == 5  # one per headteacher, the first school's twice now


def _revise_and_approve(action, personas, due_on=None):
    """A new version of the action's assessment, approved: its rows are copies, with new ids."""
    from riskassess.services import hazard_save, version_revise

    with time_machine.travel(at("2026-06-21", 10), tick=False):
        draft = version_revise(assessment=action.version.assessment, actor=personas.headteacher)
        if due_on is not None:
            row = draft.hazards.get(row_key=action.row_key)
            hazard_save(version=draft, actor=personas.headteacher, row=row, action_due_on=due_on)
        type(draft).objects.filter(pk=draft.pk).update(review_on=dt.date(2027, 6, 1))
        draft.refresh_from_db()
        version_submit(version=draft, actor=personas.headteacher)
        approved = version_approve(version=draft, actor=personas.headteacher)
    copy = approved.hazards.get(row_key=action.row_key)
    assert copy.pk != action.pk
    return copy


def test_an_action_reminded_before_a_re_approval_is_not_reminded_again_for_the_same_due_date(action, personas):
    assert run("2026-06-21")["action_overdue"] == 1
    _revise_and_approve(action, personas)
    assert run("2026-06-22") == NONE
    assert len(_emails("risk-action-reminder")) == 1


def test_an_action_whose_due_date_moved_in_the_new_version_is_reminded_again(action, personas):
    assert run("2026-06-21")["action_overdue"] == 1
    copy = _revise_and_approve(action, personas, due_on=dt.date(2026, 6, 22))
    assert run("2026-06-23")["action_overdue"] == 1
    assert Reminder.objects.filter(hazard=copy, due_on=dt.date(2026, 6, 22)).count() == 1
