"""The dispatcher: who is invited, one invitation per guardian, the claim's re-checks, and the email."""

import datetime as dt
import email
import logging

import icalendar
import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from consent.models import ConsentStatus
from consent.services import consent_give, consent_refuse, consent_withdraw
from outbox.models import OutboxMessage
from sessions.dispatch import deliveries_plan, delivery_claim, delivery_send_batch
from sessions.models import Delivery, DeliveryEvent, VideoSession
from tests.consent.consent_setup import guardian_of, publish, pupil_at
from tests.factories import GroupFactory

from .emails_dispatch import PASSWORD, consenting_family, current_notice, due_session

pytestmark = pytest.mark.django_db

Status = Delivery.Status


@pytest.fixture
def owls(personas):
    return GroupFactory(school=personas.school, name="Owls")


def _plan_and_send(session) -> list:
    deliveries_plan()
    before = len(mail.outbox)
    delivery_send_batch(Delivery.objects.filter(session=session).values_list("pk", flat=True))
    return mail.outbox[before:]


def test_only_consenting_guardians_get_an_invitation(personas, owls):
    consenting, _ = consenting_family(personas.school, owls)
    silent_child = pupil_at(personas.school, first_name="Dot")
    owls.pupils.add(silent_child)
    guardian_of(silent_child)
    session = due_session(personas, group=owls)
    result = deliveries_plan()
    assert result.created == 1
    assert list(Delivery.objects.filter(session=session).values_list("guardian_id", flat=True)) == [consenting.pk]
    assert DeliveryEvent.objects.get().status == Status.PENDING


def test_a_guardian_of_two_children_gets_one_email_naming_both(personas, owls):
    guardian, pupils = consenting_family(personas.school, owls, children=2)
    session = due_session(personas, group=owls)
    sent = _plan_and_send(session)
    delivery = Delivery.objects.get(session=session)
    assert sorted(delivery.pupil_ids) == sorted(p.pk for p in pupils)
    assert len(sent) == 1 and sent[0].to == [guardian.email]
    assert "Ava and Ben" in sent[0].subject and "Ava and Ben are invited" in sent[0].body


def test_hand_picked_pupils_are_invited_beside_groups(personas, owls):
    foxes = GroupFactory(school=personas.school, name="Foxes")
    picked_guardian, (picked,) = consenting_family(personas.school, foxes)
    session = due_session(personas, group=owls)
    session.pupils.add(picked)
    deliveries_plan()
    assert Delivery.objects.get(session=session).guardian_id == picked_guardian.pk


@pytest.mark.parametrize("case", ["refused", "withdrawn", "renewal_overdue", "pupil_archived", "guardian_archived",
                                  "restricted", "left", "no_email", "no_parental_responsibility",
                                  "other_guardian_refused"])
def test_children_without_active_consent_or_out_of_reach_get_no_invitation(personas, owls, case):
    notice = current_notice(personas.school)
    pupil = pupil_at(personas.school, first_name="Eve")
    owls.pupils.add(pupil)
    guardian = guardian_of(pupil, parental_responsibility=case != "no_parental_responsibility")
    if case != "no_parental_responsibility":
        consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
    if case == "refused":
        consent_refuse(guardian=guardian, pupil=pupil, notice=notice)
    elif case == "withdrawn":
        consent_withdraw(guardian=guardian, pupil=pupil, notice=notice)
    elif case == "renewal_overdue":
        # A material change whose renewal deadline passed yesterday; the hourly lapse has not run yet.
        today = timezone.localdate()
        publish(notice.purpose, material_change=True, renewal_deadline=today)
        assert ConsentStatus.objects.get(guardian=guardian).renewal_needed
        due_session(personas, group=owls)
        with time_machine.travel(timezone.now() + dt.timedelta(days=1, hours=1)):
            # Python's clock is a day on (the deadline passed); the session is still ahead by the database's.
            assert deliveries_plan().created == 0
        return
    elif case == "pupil_archived":
        pupil.__class__.objects.filter(pk=pupil.pk).update(archived_at=timezone.now())
    elif case == "guardian_archived":
        guardian.__class__.objects.filter(pk=guardian.pk).update(archived_at=timezone.now())
    elif case == "restricted":
        guardian.__class__.objects.filter(pk=guardian.pk).update(processing_restricted_at=timezone.now())
    elif case == "left":
        pupil.__class__.objects.filter(pk=pupil.pk).update(left_on=timezone.localdate())
    elif case == "no_email":
        guardian.__class__.objects.filter(pk=guardian.pk).update(email="")
    elif case == "other_guardian_refused":
        other = guardian_of(pupil)
        consent_refuse(guardian=other, pupil=pupil, notice=notice)
    due_session(personas, group=owls)
    assert deliveries_plan().created == 0
    assert not Delivery.objects.exists()


def test_a_consent_renewed_in_time_still_counts(personas, owls):
    guardian, _ = consenting_family(personas.school, owls)
    notice = current_notice(personas.school)
    publish(notice.purpose, material_change=True, renewal_deadline=timezone.localdate() + dt.timedelta(days=5))
    assert ConsentStatus.objects.get(guardian=guardian).renewal_needed
    due_session(personas, group=owls)
    assert deliveries_plan().created == 1


def test_running_the_planner_twice_creates_nothing_new(personas, owls):
    consenting_family(personas.school, owls)
    due_session(personas, group=owls)
    assert deliveries_plan().created == 1
    assert deliveries_plan().created == 0
    assert Delivery.objects.count() == 1 and DeliveryEvent.objects.count() == 1


def test_a_session_whose_send_time_has_not_come_gets_nothing(personas, owls):
    consenting_family(personas.school, owls)
    due_session(personas, group=owls, minutes_ahead=120, lead_minutes=60)
    assert deliveries_plan().created == 0


def test_a_delivery_is_not_sent_before_its_send_time_even_if_its_task_arrives(personas, owls):
    consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    # Moved later after planning: the send time is now in an hour.
    VideoSession.objects.filter(pk=session.pk).update(starts_at=timezone.now() + dt.timedelta(hours=2),
                                                      send_at=timezone.now() + dt.timedelta(hours=1))
    delivery = Delivery.objects.get()
    assert delivery_send_batch([delivery.pk]).sent == []
    delivery.refresh_from_db()
    assert delivery.status == Status.PENDING and delivery.next_attempt_at > timezone.now()
    assert mail.outbox == []


def test_nothing_is_sent_after_the_start(personas, owls):
    consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    VideoSession.objects.filter(pk=session.pk).update(starts_at=timezone.now() - dt.timedelta(minutes=1))
    delivery = Delivery.objects.get()
    delivery_send_batch([delivery.pk])
    delivery.refresh_from_db()
    assert mail.outbox == []
    assert delivery.status == Status.FAILED and "started before" in delivery.reason
    assert session.alerts.get().delivery_id == delivery.pk
    # The planner does not plan a started session either.
    assert deliveries_plan().sessions == 0


def test_a_cancelled_session_is_skipped_at_the_claim(personas, owls):
    consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    VideoSession.objects.filter(pk=session.pk).update(status=VideoSession.Status.CANCELLED)
    delivery = Delivery.objects.get()
    assert delivery_claim(delivery.pk) is None
    delivery.refresh_from_db()
    assert delivery.status == Status.SKIPPED and delivery.reason == "the session was cancelled"


def test_consent_withdrawn_between_planning_and_claiming_is_skipped_with_the_reason(personas, owls):
    guardian, (pupil,) = consenting_family(personas.school, owls)
    # Another guardian of the child, who consented too: only their refusal ("no" wins) reaches the claim.
    other = guardian_of(pupil)
    consent_give(guardian=other, pupil=pupil, notice=current_notice(personas.school), attestation=True)
    session = due_session(personas, group=owls)
    deliveries_plan()
    # Bypass the withdrawal hook, as if the withdrawal had committed between the plan and the claim.
    ConsentStatus.objects.filter(guardian=other, pupil=pupil).update(state="withdrawn")
    delivery = Delivery.objects.get(session=session, guardian=guardian)
    assert delivery_send_batch([delivery.pk]).skipped == [delivery.pk]
    delivery.refresh_from_db()
    assert delivery.status == Status.SKIPPED and delivery.reason == "no active consent"
    assert list(delivery.events.values_list("status", flat=True)) == [Status.PENDING, Status.SKIPPED]
    assert mail.outbox == []


def test_a_child_moved_out_of_the_group_is_skipped(personas, owls):
    _, (pupil,) = consenting_family(personas.school, owls)
    due_session(personas, group=owls)
    deliveries_plan()
    owls.pupils.remove(pupil)
    delivery = Delivery.objects.get()
    delivery_send_batch([delivery.pk])
    delivery.refresh_from_db()
    assert delivery.status == Status.SKIPPED and delivery.reason == "the child is no longer in the session"


def test_a_red_gate_plans_nothing_and_skips_a_planned_invitation(personas, owls):
    from riskassess.models import Assessment

    consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    Assessment.objects.filter(school=personas.school).update(review_flagged_at=timezone.now(),
                                                             review_flag_reason="Zoombombing")
    delivery = Delivery.objects.get()
    delivery_send_batch([delivery.pk])
    delivery.refresh_from_db()
    assert delivery.status == Status.SKIPPED and delivery.reason.startswith("the session may not go ahead")
    Delivery.objects.all().delete()
    result = deliveries_plan()
    assert result.gate_red == 1 and result.created == 0 and not session.deliveries.exists()


def test_the_send_task_run_twice_sends_once(personas, owls):
    consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    delivery = Delivery.objects.get(session=session)
    first = delivery_send_batch([delivery.pk, delivery.pk])
    second = delivery_send_batch([delivery.pk])
    assert first.sent == [delivery.pk] and second.skipped == [delivery.pk]
    assert len(mail.outbox) == 1
    delivery.refresh_from_db()
    assert delivery.status == Status.SENT and delivery.sent_revision == session.revision
    assert delivery.message_id and delivery.sent_at and delivery.attempts == 1
    assert list(delivery.events.values_list("status", flat=True)) == [Status.PENDING, Status.SENDING, Status.SENT]
    from schools.models import AuditEntry

    entry = AuditEntry.objects.get(action="session.invitations_sent")
    assert entry.data["deliveries"] == 1 and entry.data["delivery_ids"] == [delivery.pk]


def _session_with_consenting_guardians(personas, guardians: int):
    group = GroupFactory(school=personas.school)
    notice = current_notice(personas.school)
    for _ in range(guardians):
        pupil = pupil_at(personas.school)
        group.pupils.add(pupil)
        consent_give(guardian=guardian_of(pupil), pupil=pupil, notice=notice, attestation=True)
    return due_session(personas, group=group)


def test_planning_costs_the_same_queries_for_5_and_50_guardians(personas):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first = _session_with_consenting_guardians(personas, 5)
    with CaptureQueriesContext(connection) as five:
        assert deliveries_plan().created == 5
    # Another session with ten times as many guardians (the first cancelled: the gate costs a few queries
    # per session, never per guardian).
    VideoSession.objects.filter(pk=first.pk).update(status=VideoSession.Status.CANCELLED)
    _session_with_consenting_guardians(personas, 50)
    with CaptureQueriesContext(connection) as fifty:
        assert deliveries_plan().created == 50
    assert len(fifty) == len(five), [q["sql"][:80] for q in fifty]


def test_the_invitation_says_who_when_where_and_how_to_withdraw(personas, owls):
    consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    (sent,) = _plan_and_send(session)
    local = timezone.localtime(session.starts_at, personas.school.tz)
    html = next(content for content, mimetype in sent.alternatives if mimetype == "text/html")
    for body in (sent.body, html):
        assert "Ava" in body and session.title in body and local.strftime("%H:%M") in body
        assert "Europe/London" in body and "30 minutes" in body
        assert session.meeting_url in body and "812 3456 7890" in body and PASSWORD in body
        assert f"{personas.school.name}" in body and "/p/" in body
        assert "An adult must be in the room" in body
    assert sent.extra_headers["Message-ID"] == Delivery.objects.get().message_id
    # The whole message as a mail server receives it.
    parsed = email.message_from_bytes(sent.message().as_bytes())
    (ics_part,) = [part for part in parsed.walk() if part.get_content_type() == "text/calendar"]
    calendar = icalendar.Calendar.from_ical(ics_part.get_payload(decode=True))
    (event,) = calendar.walk("VEVENT")
    assert str(event["UID"]).startswith(f"session-{session.pk}@")
    assert int(event["SEQUENCE"]) == session.revision
    assert event.decoded("DTSTART") == session.starts_at.replace(microsecond=0)
    assert event.decoded("DTSTART").utcoffset() == dt.timedelta(0)
    assert event.decoded("DTEND") == session.ends_at.replace(microsecond=0)
    assert PASSWORD not in ics_part.get_payload(decode=True).decode()


def test_a_title_with_markup_is_escaped_in_the_html_body_only(personas, owls):
    consenting_family(personas.school, owls)
    session = due_session(personas, group=owls, title="<b>Story</b> & song")
    (sent,) = _plan_and_send(session)
    html = next(content for content, mimetype in sent.alternatives if mimetype == "text/html")
    assert "&lt;b&gt;Story&lt;/b&gt; &amp; song" in html and "<b>Story" not in html
    assert "<b>Story</b> & song" in sent.body


def test_the_meeting_link_and_password_never_reach_the_logs(personas, owls, caplog):
    consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    with caplog.at_level(logging.DEBUG):
        _plan_and_send(session)
    assert caplog.records, "the send logs something"
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert PASSWORD not in text and session.meeting_url not in text


def test_a_withdraw_link_in_the_invitation_opens_the_parents_page(personas, owls, client):
    consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    (sent,) = _plan_and_send(session)
    link = next(word for word in sent.body.split() if "/p/" in word)
    response = client.get(link.split("://", 1)[1].split("/", 1)[1].join(["/", ""]))
    assert response.status_code == 200


def test_host_alert_emails_are_outbox_messages(personas, owls):
    guardian, (pupil,) = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    _plan_and_send(session)
    consent_withdraw(guardian=guardian, pupil=pupil, notice=current_notice(personas.school))
    message = OutboxMessage.objects.get(template="session-alert")
    assert message.recipient == personas.teacher.email and session.title in message.body_text
