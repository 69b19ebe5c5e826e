"""The action plan of signed PIAs: reminders once per action and stage (time moved forward), marking done, and
the action plans page."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from outbox.models import OutboxMessage
from pia.models import Action, ActionReminder, PiaVersion
from pia.reminders import action_mark_done, reminders_send
from pia.tasks import pia_reminders
from schools.models import AuditEntry
from tests.pia.matrix_outputs import signed_pia
from tests.pia.pia_setup import draft_pia

pytestmark = pytest.mark.django_db

NONE = {"due_soon": 0, "overdue": 0}
DUE = dt.date(2026, 6, 20)


def at(day: str, hour: int = 9) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=dt.UTC)


def run(day: str, hour: int = 9) -> dict[str, int]:
    with time_machine.travel(at(day, hour), tick=False):
        return reminders_send(now=at(day, hour))


def _signed(personas, **kwargs) -> PiaVersion:
    with time_machine.travel(at("2026-06-01"), tick=False):
        return signed_pia(personas, responsible=personas.teacher, due_on=DUE, **kwargs)


@pytest.fixture
def action(personas) -> Action:
    """The one action of a signed PIA, due 20 June 2026, the teacher responsible for it."""
    return _signed(personas).actions.get()


def _emails():
    return list(OutboxMessage.objects.filter(template="pia-action-reminder").order_by("pk"))


def test_an_action_is_reminded_once_due_soon_and_once_overdue_however_often_the_task_runs(action, personas):
    assert run("2026-06-12") == NONE  # 8 days ahead: not yet
    assert run("2026-06-13") == {**NONE, "due_soon": 1}  # within 7 days
    assert run("2026-06-13", 15) == NONE
    assert run("2026-06-19") == NONE
    assert run("2026-06-20") == NONE  # due today: neither soon again nor overdue
    assert run("2026-06-21") == {**NONE, "overdue": 1}
    assert run("2026-06-22") == NONE
    assert run("2026-09-01") == NONE
    assert [e.recipient for e in _emails()] == [personas.teacher.email] * 2
    assert set(ActionReminder.objects.values_list("stage", "due_on")) == {("due_soon", DUE), ("overdue", DUE)}
    entries = AuditEntry.objects.filter(action="pia.reminder_sent").order_by("seq")
    assert [e.data for e in entries] == [{"due_soon": 1, "overdue": 0}, {"due_soon": 0, "overdue": 1}]


def test_a_run_that_missed_the_week_before_sends_only_the_overdue_reminder(action):
    assert run("2026-07-01") == {**NONE, "overdue": 1}
    assert run("2026-07-02") == NONE


def test_a_done_action_gets_no_reminder(action, personas):
    with time_machine.travel(at("2026-06-10"), tick=False):
        action_mark_done(action=action, actor=personas.teacher)
    assert run("2026-06-15") == NONE
    assert run("2026-06-25") == NONE
    assert not _emails()


def test_a_superseded_versions_actions_get_none_and_the_new_signed_versions_do(personas):
    from pia import services

    first = _signed(personas)
    with time_machine.travel(at("2026-06-02"), tick=False):
        second = services.version_revise(pia=first.pia, actor=personas.office)
        services.version_submit(version=second, actor=personas.office)
        services.version_advise(version=second, actor=personas.dpo, advice="Still fine.")
        services.version_decide(version=second, actor=personas.headteacher, accept=True)
        services.version_sign(version=second, actor=personas.siro)
    first.refresh_from_db()
    assert first.status == PiaVersion.Status.SUPERSEDED
    assert run("2026-06-21") == {**NONE, "overdue": 1}
    assert list(ActionReminder.objects.values_list("action__version", flat=True)) == [second.pk]


def _sign(personas, version: PiaVersion) -> PiaVersion:
    from pia import services

    services.version_submit(version=version, actor=personas.office)
    services.version_advise(version=version, actor=personas.dpo, advice="Fine.")
    services.version_decide(version=version, actor=personas.headteacher, accept=True)
    return services.version_sign(version=version, actor=personas.siro)


def test_drafts_and_actions_without_a_responsible_person_or_a_date_get_none(personas):
    with time_machine.travel(at("2026-06-01"), tick=False):
        draft = draft_pia(personas.organisation, personas.office, school=personas.school, title="Teams")
        Action.objects.filter(version=draft).update(responsible_user=personas.teacher, due_on=DUE)
        signed_pia(personas, title="Jitsi", due_on=DUE)  # nobody named to remind
        undated = draft_pia(personas.organisation, personas.office, school=personas.school, title="Webex")
        Action.objects.filter(version=undated).update(responsible_user=personas.teacher, due_on=None,
                                                      due_note="On release")
        _sign(personas, undated)
    for day in ("2026-06-15", "2026-06-21", "2026-12-01"):
        assert run(day) == NONE
    assert not ActionReminder.objects.exists() and not _emails()


def test_days_are_counted_in_the_schools_time_zone(personas):
    personas.school.time_zone = "Pacific/Auckland"
    personas.school.save()
    _signed(personas)
    # 11:30 UTC on 20 June is 23:30 in Auckland (UTC+12 in winter): due today, "soon"; at 12:30 UTC it is
    # already 21 June there, overdue, while it is still 20 June in London.
    assert run("2026-06-20", 11) == {**NONE, "due_soon": 1}
    assert run("2026-06-20", 12) == {**NONE, "overdue": 1}


def test_the_task_sends_the_reminders(action):
    with time_machine.travel(at("2026-06-21"), tick=False):
        assert pia_reminders() == {**NONE, "overdue": 1}


def test_the_reminder_email_names_the_action_and_links_to_the_action_plans(personas):
    with time_machine.travel(at("2026-06-01"), tick=False):
        draft = draft_pia(personas.organisation, personas.office, school=personas.school, title="Zoom <Pro>")
        Action.objects.filter(version=draft).update(action='Update the "privacy" notice <now>', due_on=DUE,
                                                    responsible_user=personas.teacher)
        _sign(personas, draft)
    run("2026-06-15")
    email = _emails()[0]
    assert email.subject == "PIA action due 20 June: Zoom <Pro> (Laxey Test School)"
    assert 'Action: Update the "privacy" notice <now>' in email.body_text
    assert "is due on 20 June 2026" in email.body_text
    assert "Update the &quot;privacy&quot; notice &lt;now&gt;" in email.body_html
    assert "<now>" not in email.body_html
    link = reverse("pia:actions")
    assert link in email.body_text and link in email.body_html


# --- Marking done ----------------------------------------------------------------------------------------


def test_the_responsible_person_or_an_author_marks_an_action_done_once(action, personas):
    with pytest.raises(PermissionDenied):
        action_mark_done(action=action, actor=personas.dpo)
    with pytest.raises(PermissionDenied):
        action_mark_done(action=action, actor=personas.org_admin)
    completion = action_mark_done(action=action, actor=personas.teacher)
    assert completion.done_by == personas.teacher
    with pytest.raises(ValidationError, match="already marked done"):
        action_mark_done(action=action, actor=personas.office)
    entry = AuditEntry.objects.get(action="pia.action_done")
    assert entry.data["action_id"] == action.pk and entry.actor_id == personas.teacher.pk
    assert action.version.hash_verifies()  # the signed version did not change


def test_an_author_may_mark_an_action_done_that_is_not_theirs(action, personas):
    action_mark_done(action=action, actor=personas.office)
    assert Action.objects.get(pk=action.pk).completion.done_by == personas.office


def test_a_drafts_action_is_not_marked_done_here(personas):
    draft = draft_pia(personas.organisation, personas.office, school=personas.school)
    with pytest.raises(ValidationError, match="current signed version"):
        action_mark_done(action=draft.actions.get(), actor=personas.office)


def test_the_action_plans_page_shows_the_state_of_each_action(action, personas, client_for):
    with time_machine.travel(at("2026-06-15"), tick=False):
        client = client_for(personas.teacher)
        page = client.get(reverse("pia:actions")).content.decode()
        assert "Update the privacy notice" in page and "In 5 days" in page
        assert reverse("pia:action-done", args=[action.pk]) in page
    with time_machine.travel(at("2026-06-23"), tick=False):
        client = client_for(personas.teacher)
        assert "3 days late" in client.get(reverse("pia:actions") + "?state=overdue").content.decode()
        assert "Update the privacy notice" not in client.get(reverse("pia:actions") + "?state=soon").content.decode()
        response = client.post(reverse("pia:action-done", args=[action.pk]), {"state": "overdue"}, follow=True)
        assert "Marked done: “Update the privacy notice” (Zoom)." in response.content.decode()
        done = client.get(reverse("pia:actions") + "?state=done").content.decode()
    assert "Done 23 Jun 2026" in done


def test_the_action_plans_page_leaves_out_drafts_and_other_organisations(personas, client_for):
    draft_pia(personas.organisation, personas.office, school=personas.school, title="Teams draft")
    from tests.pia.matrix_outputs import other_signed_pia

    other_signed_pia(personas)
    page = client_for(personas.headteacher).get(reverse("pia:actions") + "?state=all").content.decode()
    assert "Teams draft" not in page and "Nothing here" in page


def test_only_the_responsible_person_or_an_author_sees_mark_done(action, personas, client_for):
    page = client_for(personas.dpo).get(reverse("pia:actions")).content.decode()
    assert "Update the privacy notice" in page and reverse("pia:action-done", args=[action.pk]) not in page
    assert client_for(personas.dpo).post(reverse("pia:action-done", args=[action.pk])).status_code == 403


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_send_each_reminder_once(personas, monkeypatch):
    import threading

    from django.db import connection

    from outbox import services

    monkeypatch.setattr(services, "_send_after_commit", lambda pk: None)  # only the rows matter
    for _ in range(4):
        _signed(personas)
    barrier = threading.Barrier(2)
    results: list[dict] = []

    def run_once():
        try:
            barrier.wait(timeout=10)
            results.append(reminders_send(now=at("2026-06-25")))
        finally:
            connection.close()

    threads = [threading.Thread(target=run_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 2
    assert sum(r["overdue"] for r in results) == 4
    assert OutboxMessage.objects.filter(template="pia-action-reminder").count() == 4


def test_the_action_plans_page_takes_as_many_queries_for_many_actions_as_for_one(personas, client_for):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _signed(personas)
    client = client_for(personas.office)
    with CaptureQueriesContext(connection) as one:
        client.get(reverse("pia:actions") + "?state=all")
    for _ in range(4):
        _signed(personas, school=None)
    with CaptureQueriesContext(connection) as five:
        page = client.get(reverse("pia:actions") + "?state=all").content.decode()
    assert page.count('action="/pia/actions/') == 5
    assert len(five) == len(one)
