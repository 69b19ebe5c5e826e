"""Consent requests and capped reminders (issue 3, point 3): who is asked, one email per guardian, no
doubles, reminders every N days up to M, closing when answered or superseded, delivery status per
guardian on the staff page, and links that change nothing when opened."""

import datetime as dt
import re
import threading
from urllib.parse import urlsplit

import pytest
import time_machine
from django.apps import apps
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from consent.models import ConsentRequest, ConsentStatus, Purpose
from consent.requests import (
    Child,
    RequestStatus,
    consent_reminders_send,
    consent_requests_send,
    first_names,
    guardian_requests_panel,
    names_in_words,
)
from consent.services import consent_give, consent_refuse, consent_withdraw
from outbox.models import OutboxMessage
from schools.models import AuditEntry
from tests.conftest import sign_in
from tests.factories import GroupFactory, GuardianFactory, NoticeFactory

from .consent_setup import guardian_of, publish, pupil_at, purpose_for

pytestmark = pytest.mark.django_db

Closed = ConsentRequest.Closed
DAY = dt.timedelta(days=1)
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _fresh_rate_limit():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def purpose(personas) -> Purpose:
    purpose = purpose_for(personas.school)
    purpose.reminder_interval_days, purpose.max_reminders = 7, 3
    purpose.save()
    return purpose


@pytest.fixture
def notice(purpose):
    return publish(purpose)


def send(personas, purpose, **kwargs):
    return consent_requests_send(school=personas.school, purpose=purpose, actor=personas.office, **kwargs)


def emails(template: str | None = None, to: str | None = None) -> list[OutboxMessage]:
    rows = OutboxMessage.objects.order_by("id")
    if template:
        rows = rows.filter(template=template)
    if to:
        rows = rows.filter(recipient=to)
    return list(rows)


def link_in(message: OutboxMessage) -> str:
    return re.search(r"https?://\S+/p/[A-Za-z0-9_-]+/", message.body_text).group(0)


def row_counts() -> dict[str, int]:
    models = [*apps.get_app_config("consent").get_models(), *apps.get_app_config("outbox").get_models(), AuditEntry]
    return {model._meta.label: model.objects.count() for model in models}


# --- Who is asked, and one email each ------------------------------------------------------------------


def test_one_email_per_guardian_covers_all_their_children_by_first_name(personas, notice, purpose):
    school = personas.school
    ada, ben = pupil_at(school, first_name="Ada"), pupil_at(school, first_name="Ben")
    mother = guardian_of(ada, ben)
    father = guardian_of(ada, ben)
    cy = pupil_at(school, first_name="Cy")
    other = guardian_of(cy)

    result = send(personas, purpose)

    assert (result.sent, str(result)) == (3, "3 sent")
    assert len(emails("consent-request")) == 3
    for guardian in (mother, father):
        [message] = emails(to=guardian.email)
        assert "Ada and Ben" in message.subject
        assert "whether Ada and Ben may take part" in message.body_text and "/p/" in link_in(message)
    [message] = emails(to=other.email)
    assert "Cy" in message.subject and "Ada" not in message.body_text
    # A fresh personal link each: three different tokens.
    assert len({link_in(m) for m in emails()}) == 3
    requests = ConsentRequest.objects.filter(notice=notice)
    assert requests.count() == 3
    for request in requests:
        assert request.requested_by == personas.office and request.reminders_sent == 0
        assert request.next_reminder_at == request.created_at + 7 * DAY
        [message] = OutboxMessage.objects.filter(related_type="consent.consentrequest", related_id=str(request.pk))
        assert message.recipient == request.guardian.email
    [entry] = AuditEntry.objects.filter(action="consent.requests_sent")
    assert (entry.school_id, entry.data["sent"], entry.data["notice_version"]) == (school.pk, 3, notice.version)


def test_a_group_send_asks_its_guardians_and_their_email_covers_their_other_children(personas, notice, purpose):
    school = personas.school
    owls, foxes = GroupFactory(school=school, name="Owls"), GroupFactory(school=school, name="Foxes")
    ada, ben, cy = (pupil_at(school, first_name=n) for n in ("Ada", "Ben", "Cy"))
    owls.pupils.add(ada)
    foxes.pupils.add(ben, cy)
    parent = guardian_of(ada, ben)
    foxes_only = guardian_of(cy)

    result = send(personas, purpose, group=owls)

    assert result.sent == 1
    [message] = emails()
    assert message.recipient == parent.email and "Ada and Ben" in message.subject
    assert not emails(to=foxes_only.email)
    entry = AuditEntry.objects.get(action="consent.requests_sent")
    assert (entry.data["group_id"], entry.data["group"]) == (owls.pk, "Owls")


def test_only_guardians_who_have_not_answered_or_must_renew_are_asked(personas, notice, purpose):
    school = personas.school

    def family(name: str, **guardian_fields):
        pupil = pupil_at(school, first_name=name)
        return pupil, guardian_of(pupil, guardian=GuardianFactory(school=school, **guardian_fields))

    asked, not_asked = {}, {}
    pupil, guardian = family("Given")
    consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
    not_asked["given"] = guardian
    pupil, guardian = family("Refused")
    consent_refuse(guardian=guardian, pupil=pupil, notice=notice)
    not_asked["refused"] = guardian
    pupil, guardian = family("Withdrawn")
    consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
    consent_withdraw(guardian=guardian, pupil=pupil, notice=notice)
    not_asked["withdrawn"] = guardian
    _pupil, asked["silent"] = family("Silent")
    renewing_pupil, asked["renewal"] = family("Renewal")
    consent_give(guardian=asked["renewal"], pupil=renewing_pupil, notice=notice, attestation=True)
    lapsing_pupil, asked["lapsed"] = family("Lapsed")
    consent_give(guardian=asked["lapsed"], pupil=lapsing_pupil, notice=notice, attestation=True)
    # The other parent of a consented child is asked too: each guardian answers for themselves.
    shared = pupil_at(school, first_name="Shared")
    asked["other parent"] = guardian_of(shared)
    consent_give(guardian=guardian_of(shared), pupil=shared, notice=notice, attestation=True)
    _pupil, not_asked["no email"] = family("NoEmail", email="")
    not_asked["no responsibility"] = guardian_of(pupil_at(school), parental_responsibility=False)
    not_asked["leaver"] = guardian_of(pupil_at(school, left_on=dt.date(2025, 7, 20)))
    not_asked["archived"] = guardian_of(pupil_at(school, archived_at=timezone.now()))
    not_asked["other school"] = guardian_of(pupil_at(personas.other_school))
    # What a material change and its passed deadline leave behind (the services are tested elsewhere).
    ConsentStatus.objects.filter(guardian=asked["renewal"]).update(renewal_needed=True)
    ConsentStatus.objects.filter(guardian=asked["lapsed"]).update(state="lapsed")

    result = send(personas, purpose)

    recipients = {m.recipient for m in emails("consent-request")}
    assert recipients == {g.email for g in asked.values()}, sorted(recipients)
    assert result.no_email == 1
    assert "1 without an email address" in str(result)
    [renewal_email] = emails("consent-request", to=asked["renewal"].email)
    assert "changed its letter since you answered for Renewal" in renewal_email.body_text


def test_sending_twice_does_not_double(personas, notice, purpose):
    guardian_of(pupil_at(personas.school))
    guardian_of(pupil_at(personas.school))
    assert send(personas, purpose).sent == 2
    before = row_counts()

    again = send(personas, purpose)

    assert (again.sent, again.already_asked) == (0, 2)
    assert str(again) == "0 sent, 2 already asked (reminders are scheduled)"
    after = row_counts()
    assert after["consent.ConsentRequest"] == before["consent.ConsentRequest"] == 2
    assert after["outbox.OutboxMessage"] == before["outbox.OutboxMessage"] == 2
    assert after["consent.GuardianLink"] == before["consent.GuardianLink"]


def test_sending_without_a_published_notice_is_refused_and_writes_nothing(personas, purpose):
    guardian_of(pupil_at(personas.school))
    NoticeFactory(purpose=purpose)  # a draft is not enough
    before = row_counts()
    with pytest.raises(ValidationError, match="has not been published"):
        send(personas, purpose)
    assert row_counts() == before


def test_a_teacher_cannot_send_requests(personas, notice, purpose):
    guardian_of(pupil_at(personas.school))
    with pytest.raises(PermissionDenied):
        consent_requests_send(school=personas.school, purpose=purpose, actor=personas.teacher)
    with pytest.raises(ValidationError, match="another school"):
        send(personas, purpose, group=GroupFactory(school=personas.other_school))
    assert not ConsentRequest.objects.exists() and not OutboxMessage.objects.exists()


def test_names_read_as_a_parent_would_say_them():
    assert [names_in_words(n) for n in ([], ["Ada"], ["Ada", "Ben"], ["Ada", "Ben", "Cy"])] == [
        "", "Ada", "Ada and Ben", "Ada, Ben and Cy"
    ]
    children = [Child(1, "Ethan", "Moore", True, False), Child(2, "Ethan", "Quayle", True, False),
                Child(3, "Ada", "Moore", True, False)]
    assert first_names(children) == ["Ethan Moore", "Ethan Quayle", "Ada"]


# --- Reminders -------------------------------------------------------------------------------------------


def test_reminders_go_every_n_days_and_stop_at_the_cap(personas, notice, purpose):
    purpose.reminder_interval_days, purpose.max_reminders = 7, 2
    purpose.save()
    guardian = guardian_of(pupil_at(personas.school, first_name="Ada"))
    with time_machine.travel(START, tick=False) as traveller:
        send(personas, purpose)
        request = ConsentRequest.objects.get()

        traveller.move_to(START + 7 * DAY - dt.timedelta(minutes=1))
        assert consent_reminders_send(now=timezone.now()) == 0
        traveller.move_to(START + 7 * DAY + dt.timedelta(minutes=5))
        assert consent_reminders_send(now=timezone.now()) == 1
        assert consent_reminders_send(now=timezone.now()) == 0  # the next beat an hour later: nothing new
        request.refresh_from_db()
        assert request.reminders_sent == 1
        assert request.next_reminder_at == timezone.now() + 7 * DAY

        traveller.move_to(START + 14 * DAY + dt.timedelta(hours=1))
        assert consent_reminders_send(now=timezone.now()) == 1
        traveller.move_to(START + 30 * DAY)  # a late beat catches up: the cap is reached, nothing is sent
        assert consent_reminders_send(now=timezone.now()) == 0
        traveller.move_to(START + 90 * DAY)
        assert consent_reminders_send(now=timezone.now()) == 0

    request.refresh_from_db()
    assert (request.reminders_sent, request.closed_reason, request.next_reminder_at) == (2, Closed.CAP_REACHED, None)
    sent = [m.template for m in emails(to=guardian.email)]
    assert sent == ["consent-request", "consent-reminder", "consent-reminder"]
    reminder = emails("consent-reminder")[0]
    assert "reminder 1 of 2" in reminder.body_text and "Ada" in reminder.subject
    assert link_in(reminder) != link_in(emails("consent-request")[0])  # a new link each time
    assert AuditEntry.objects.filter(action="consent.reminder_sent").count() == 2
    closed = AuditEntry.objects.get(action="consent.requests_closed")
    assert closed.data[Closed.CAP_REACHED] == [request.pk] and closed.school_id == personas.school.pk


def test_a_cap_of_zero_sends_no_reminder(personas, notice, purpose):
    purpose.max_reminders = 0
    purpose.save()
    guardian_of(pupil_at(personas.school))
    send(personas, purpose)
    assert consent_reminders_send(now=timezone.now() + 8 * DAY) == 0
    assert ConsentRequest.objects.get().closed_reason == Closed.CAP_REACHED


def test_a_guardian_who_answered_gets_no_reminder_and_the_request_closes(personas, notice, purpose):
    ada = pupil_at(personas.school, first_name="Ada")
    answered = guardian_of(ada)
    silent = guardian_of(pupil_at(personas.school, first_name="Ben"))
    send(personas, purpose)
    consent_refuse(guardian=answered, pupil=ada, notice=notice)  # a "no" is an answer too

    assert consent_reminders_send(now=timezone.now() + 8 * DAY) == 1

    assert [m.recipient for m in emails("consent-reminder")] == [silent.email]
    request = ConsentRequest.objects.get(guardian=answered)
    assert (request.closed_reason, request.reminders_sent, request.next_reminder_at) == (Closed.ANSWERED, 0, None)


def test_a_reminder_names_only_the_children_still_unanswered(personas, notice, purpose):
    ada, ben = pupil_at(personas.school, first_name="Ada"), pupil_at(personas.school, first_name="Ben")
    parent = guardian_of(ada, ben)
    send(personas, purpose)
    consent_give(guardian=parent, pupil=ada, notice=notice, attestation=True)

    assert consent_reminders_send(now=timezone.now() + 8 * DAY) == 1

    [reminder] = emails("consent-reminder")
    assert "may Ben take part" in reminder.subject and "Ada" not in reminder.subject


def test_a_superseded_notice_closes_open_requests_without_an_email(personas, notice, purpose):
    guardian_of(pupil_at(personas.school))
    send(personas, purpose)
    newer = publish(purpose)

    # Closed at the next run even though no reminder is due yet.
    assert consent_reminders_send(now=timezone.now() + DAY) == 0

    request = ConsentRequest.objects.get()
    assert request.closed_reason == Closed.NO_LONGER_NEEDED and not emails("consent-reminder")
    # The guardian now counts as not yet asked about the new version, and the next send asks them.
    result = send(personas, purpose)
    assert result.sent == 1
    assert ConsentRequest.objects.get(notice=newer).closed_at is None


def test_a_guardian_whose_children_left_or_whose_address_was_removed_is_not_reminded(personas, notice, purpose):
    leaving = pupil_at(personas.school)
    leaver_parent = guardian_of(leaving)
    no_address = guardian_of(pupil_at(personas.school))
    send(personas, purpose)
    leaving.left_on = dt.date(2026, 1, 1)
    leaving.save()
    no_address.email = ""
    no_address.save()

    assert consent_reminders_send(now=timezone.now() + 8 * DAY) == 0

    for guardian in (leaver_parent, no_address):
        assert ConsentRequest.objects.get(guardian=guardian).closed_reason == Closed.NO_LONGER_NEEDED


def test_a_guardian_whose_data_is_restricted_is_neither_asked_nor_reminded(personas, notice, purpose):
    asked = guardian_of(pupil_at(personas.school))
    restricted = guardian_of(pupil_at(personas.school))
    restricted.processing_restricted_at = timezone.now()
    restricted.save()
    assert send(personas, purpose).sent == 1
    assert not emails(to=restricted.email)
    asked.processing_restricted_at = timezone.now()
    asked.save()

    assert consent_reminders_send(now=timezone.now() + 8 * DAY) == 0
    assert ConsentRequest.objects.get(guardian=asked).closed_reason == Closed.NO_LONGER_NEEDED
    assert not ConsentRequest.objects.filter(guardian=restricted).exists()


def test_guardians_whose_reminders_ran_out_are_asked_again_only_when_staff_choose(personas, notice, purpose):
    purpose.max_reminders = 0
    purpose.save()
    guardian = guardian_of(pupil_at(personas.school))
    send(personas, purpose)
    consent_reminders_send(now=timezone.now() + 8 * DAY)

    skipped = send(personas, purpose)
    assert (skipped.sent, skipped.exhausted_skipped) == (0, 1)
    assert "1 not emailed again (all their reminders were sent)" in str(skipped)

    again = send(personas, purpose, include_exhausted=True)
    assert again.sent == 1
    request = ConsentRequest.objects.get(guardian=guardian)
    assert (request.closed_at, request.reminders_sent) == (None, 0) and request.next_reminder_at > timezone.now()
    assert len(emails("consent-request", to=guardian.email)) == 2


def test_a_run_is_bounded_and_the_backlog_drains_over_the_next_runs(personas, notice, purpose, monkeypatch):
    from consent import requests as module

    monkeypatch.setattr(module, "REMINDER_BATCH_SIZE", 2)
    monkeypatch.setattr(module, "REMINDER_MAX_BATCHES", 2)
    for _ in range(5):
        guardian_of(pupil_at(personas.school))
    send(personas, purpose)
    later = timezone.now() + 8 * DAY
    assert [consent_reminders_send(now=later) for _ in range(3)] == [4, 1, 0]
    assert len(emails("consent-reminder")) == 5


# --- Two reminder runs at once (PostgreSQL row locks) -------------------------------------------------------


def _thread(target, results, barrier):
    def run():
        try:
            barrier.wait(timeout=10)
            results.append(target())
        finally:
            connection.close()

    return threading.Thread(target=run)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_reminder_runs_at_once_send_each_reminder_once(personas, monkeypatch):
    from consent import requests as module
    from outbox import services

    monkeypatch.setattr(services, "_send_after_commit", lambda pk: None)  # only the rows matter
    monkeypatch.setattr(module, "REMINDER_BATCH_SIZE", 3)  # several batches each, interleaved
    purpose = purpose_for(personas.school)
    publish(purpose)
    guardians = [guardian_of(pupil_at(personas.school)) for _ in range(12)]
    send(personas, purpose)
    later = timezone.now() + 8 * DAY

    barrier = threading.Barrier(2)
    results: list[int] = []
    threads = [_thread(lambda: consent_reminders_send(now=later), results, barrier) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(results) == 2 and sum(results) == 12
    reminders = OutboxMessage.objects.filter(template="consent-reminder")
    assert sorted(reminders.values_list("recipient", flat=True)) == sorted(g.email for g in guardians)
    assert set(ConsentRequest.objects.values_list("reminders_sent", flat=True)) == {1}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_reminder_run_skips_a_request_another_run_holds_rather_than_waiting(personas, monkeypatch):
    from outbox import services

    monkeypatch.setattr(services, "_send_after_commit", lambda pk: None)
    purpose = purpose_for(personas.school)
    publish(purpose)
    held_guardian = guardian_of(pupil_at(personas.school))
    free_guardian = guardian_of(pupil_at(personas.school))
    send(personas, purpose)
    later = timezone.now() + 8 * DAY
    held = ConsentRequest.objects.get(guardian=held_guardian)
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock():
        try:
            with transaction.atomic():
                ConsentRequest.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(timeout=20)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        results: list[int] = []
        runner = _thread(lambda: consent_reminders_send(now=later), results, threading.Barrier(1))
        runner.start()
        runner.join(timeout=10)
        assert not runner.is_alive(), "the run waited for the locked request instead of skipping it"
        assert results == [1]
    finally:
        release.set()
        holder.join(timeout=10)
    assert [m.recipient for m in OutboxMessage.objects.filter(template="consent-reminder")] == [free_guardian.email]
    assert ConsentRequest.objects.get(pk=held.pk).reminders_sent == 0


# --- The emails --------------------------------------------------------------------------------------------


def test_the_request_email_is_plain_for_parents_escaped_in_html_and_carries_the_link(personas, notice, purpose):
    school = personas.school
    school.contact_email = "office@laxey.example"
    school.save()
    parent = guardian_of(pupil_at(school, first_name="Zoë & <Jo>"),
                         guardian=GuardianFactory(school=school, first_name="Siobhán", last_name="O'Brien"))
    send(personas, purpose)
    [message] = emails()
    link = link_in(message)
    text, html = message.body_text, message.body_html
    assert "Dear Siobhán O'Brien," in text and "Zoë & <Jo>" in text
    assert "Zoë &amp; &lt;Jo&gt;" in html and "<Jo>" not in html and "O&#x27;Brien" in html
    assert link in text and f'href="{link}"' in html
    for body in (text, html):
        assert school.name in body and "office@laxey.example" in body
        assert "personal" in body and "do not forward" in body
        assert "No" in body and "Withdraw consent" in body
    assert message.recipient == parent.email and message.school_id == school.pk


def test_opening_the_links_in_request_and_reminder_emails_writes_nothing(client, personas, notice, purpose):
    guardian_of(pupil_at(personas.school, first_name="Ada"))
    send(personas, purpose)
    consent_reminders_send(now=timezone.now() + 8 * DAY)
    messages = emails()
    assert [m.template for m in messages] == ["consent-request", "consent-reminder"]
    for message in messages:
        path = urlsplit(link_in(message)).path
        before = row_counts()
        response = client.get(path)
        assert response.status_code == 200 and b"Ada" in response.content
        assert client.head(path).status_code == 200
        assert row_counts() == before


# --- The staff page ------------------------------------------------------------------------------------------


def _page(client, user, school, **params):
    sign_in(client, user)
    return client.get(reverse("consent:requests", kwargs={"school_pk": school.pk}), params)


def _statuses(response) -> dict[str, str]:
    return {row.guardian.email: row.status for row in response.context["rows"]}


def test_the_page_shows_the_delivery_status_of_each_guardians_latest_email(client, personas, notice, purpose):
    failing = guardian_of(pupil_at(personas.school), guardian=GuardianFactory(school=personas.school,
                                                                            last_name="Failing"))
    doubled = guardian_of(pupil_at(personas.school))
    fine = guardian_of(pupil_at(personas.school))
    send(personas, purpose)
    OutboxMessage.objects.filter(recipient=failing.email).update(
        status="failed", last_error="recipient refused (SMTP 550): 5.1.1 mailbox unavailable", attempts=1
    )
    OutboxMessage.objects.filter(recipient=doubled.email).update(status="sent", sent_at=timezone.now(),
                                                                  possible_duplicate=1)
    OutboxMessage.objects.filter(recipient=fine.email).update(status="sent", sent_at=timezone.now())

    response = _page(client, personas.office, personas.school)

    rows = {row.guardian.email: row for row in response.context["rows"]}
    assert rows[failing.email].latest.label == "Failed"
    assert rows[doubled.email].latest.label == "Sent" and rows[doubled.email].latest.message.possible_duplicate
    assert rows[fine.email].latest.label == "Sent"
    body = response.content.decode()
    assert "recipient refused (SMTP 550): 5.1.1 mailbox unavailable" in body
    assert "delivery-failed" in body and "Possible duplicate" in body
    assert f"q={failing.email.replace('@', '%40')}" in body  # to retry it from the outbox
    failing_row = body[body.index("Failing"):]
    assert "0 / 3" in failing_row[:2000]


def test_the_page_counts_filters_and_searches_guardians(client, personas, notice, purpose):
    school = personas.school
    owls = GroupFactory(school=school, name="Owls")
    waiting = guardian_of(pupil_at(school), guardian=GuardianFactory(school=school, last_name="Waiting"))
    send(personas, purpose)
    answered_pupil = pupil_at(school)
    answered = guardian_of(answered_pupil, guardian=GuardianFactory(school=school, last_name="Answered"))
    consent_give(guardian=answered, pupil=answered_pupil, notice=notice, attestation=True)
    owl = pupil_at(school)
    owls.pupils.add(owl)
    not_asked = guardian_of(owl, guardian=GuardianFactory(school=school, last_name="Newcomer"))
    no_email = guardian_of(pupil_at(school), guardian=GuardianFactory(school=school, email="", last_name="Paper"))

    response = _page(client, personas.headteacher, school)

    counts = response.context["counts"]
    assert {k: counts[k] for k in RequestStatus.values} == {
        "not_asked": 1, "waiting": 1, "exhausted": 0, "no_email": 1, "restricted": 0, "answered": 1,
    }
    assert _statuses(response) == {
        waiting.email: "waiting", answered.email: "answered", not_asked.email: "not_asked", "": "no_email",
    }
    assert list(_statuses(_page(client, personas.office, school, status="not_asked"))) == [not_asked.email]
    assert list(_statuses(_page(client, personas.office, school, group=owls.pk))) == [not_asked.email]
    assert _page(client, personas.office, school, group=owls.pk).context["counts"]["total"] == 1
    assert list(_statuses(_page(client, personas.office, school, q="wait"))) == [waiting.email]
    assert list(_statuses(_page(client, personas.office, school, q=no_email.last_name))) == [""]
    empty = _page(client, personas.office, school, q="nobody-like-this")
    assert b"No guardians match these filters" in empty.content


def test_the_page_says_to_publish_the_notice_first(client, personas, purpose):
    guardian_of(pupil_at(personas.school))
    response = _page(client, personas.office, personas.school)
    assert b"has not been published yet" in response.content
    assert b"Review and send" not in response.content


def _populate(school, n):
    for _ in range(n):
        guardian_of(pupil_at(school), pupil_at(school))


def test_the_page_costs_the_same_number_of_queries_for_5_and_60_guardians(client, personas, notice, purpose):
    school = personas.school
    url = reverse("consent:requests", kwargs={"school_pk": school.pk})
    sign_in(client, personas.office)
    _populate(school, 5)
    send(personas, purpose)
    consent_reminders_send(now=timezone.now() + 8 * DAY)
    client.get(url)
    with CaptureQueriesContext(connection) as five:
        assert client.get(url).status_code == 200
    _populate(school, 55)
    send(personas, purpose)
    with CaptureQueriesContext(connection) as sixty:
        response = client.get(url)
    assert response.context["page"].paginator.count == 60 and len(response.context["rows"]) == 50
    assert len(sixty) == len(five)


def test_sending_from_the_page_confirms_the_count_first_and_writes_nothing_until_the_post(
    client, personas, notice, purpose
):
    school = personas.school
    owls = GroupFactory(school=school, name="Owls")
    for _ in range(2):
        pupil = pupil_at(school)
        owls.pupils.add(pupil)
        guardian_of(pupil)
    guardian_of(pupil_at(school))  # not in Owls
    sign_in(client, personas.office)
    url = reverse("consent:requests-send", kwargs={"school_pk": school.pk})
    before = row_counts()

    confirm = client.get(url, {"group": owls.pk})
    assert client.head(url, {"group": owls.pk}).status_code == 200

    assert row_counts() == before
    assert b"2 guardians will get an email" in confirm.content
    assert b"Send 2 emails" in confirm.content
    response = client.post(url, {"group": owls.pk})
    assert response.status_code == 302 and response["Location"].endswith(f"?purpose={purpose.pk}&group={owls.pk}")
    assert len(emails("consent-request")) == 2
    page = client.get(response["Location"])
    assert b"Consent requests to guardians of Owls: 2 sent." in page.content
    again = client.get(url, {"group": owls.pk})
    assert b"Nobody to email" in again.content and b"2 already asked" in again.content


def test_a_send_without_a_published_notice_says_so_on_the_page(client, personas, purpose):
    guardian_of(pupil_at(personas.school))
    sign_in(client, personas.headteacher)
    response = client.post(reverse("consent:requests-send", kwargs={"school_pk": personas.school.pk}), follow=True)
    assert b"has not been published yet" in response.content
    assert not OutboxMessage.objects.exists()


def test_a_group_of_another_school_is_refused_by_the_form(client, personas, notice, purpose):
    guardian_of(pupil_at(personas.school))
    foreign = GroupFactory(school=personas.other_school)
    sign_in(client, personas.office)
    url = reverse("consent:requests-send", kwargs={"school_pk": personas.school.pk})
    response = client.post(url, {"group": foreign.pk}, follow=True)
    assert b"Choose a group of this school" in response.content
    assert not OutboxMessage.objects.exists()


def test_the_guardian_panel_lists_requests_with_every_email_and_its_delivery(personas, notice, purpose):
    guardian = guardian_of(pupil_at(personas.school))
    send(personas, purpose)
    consent_reminders_send(now=timezone.now() + 8 * DAY)
    OutboxMessage.objects.filter(template="consent-reminder").update(status="retry", last_error="SMTP 451: try later")

    with CaptureQueriesContext(connection) as queries:
        context = guardian_requests_panel(guardian=guardian, purpose=purpose)
    assert len(queries) == 2
    html = render_to_string("consent/requests/_guardian_panel.html", {**context, "school": personas.school})
    assert "Requests and emails" in html and "Reminders sent: 1 of 3" in html
    assert "Retrying" in html and "SMTP 451: try later" in html and "Request" in html
    empty = render_to_string("consent/requests/_guardian_panel.html",
                             {**guardian_requests_panel(guardian=GuardianFactory(), purpose=purpose),
                              "school": personas.school})
    assert "Not asked by email yet" in empty
