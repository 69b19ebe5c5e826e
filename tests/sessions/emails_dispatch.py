"""Invitations for tests: a family with consent, a session whose send time has come (by the real clock, as
the dispatcher reads the database clock), and `produce` for the `every_email` fixture of
tests/test_email_links.py."""

import datetime as dt
from dataclasses import dataclass

from django.core import mail
from django.utils import timezone

from consent.models import Notice
from consent.services import consent_give
from sessions.dispatch import deliveries_plan, delivery_send_batch
from sessions.models import Delivery, VideoSession
from tests.consent.consent_setup import guardian_of, publish, pupil_at
from tests.factories import GroupFactory
from tests.sessions.sessions_setup import scheduled_session, video_purpose

PASSWORD = "Sesame-7749"


def current_notice(school) -> Notice:
    purpose = video_purpose(school.organisation)
    return purpose.current_notice() or publish(purpose)


def consenting_family(school, group, *, children: int = 1, first_names=("Ava", "Ben", "Cal")):
    """A guardian with `children` children in `group`, who consented for each. Returns (guardian, pupils)."""
    notice = current_notice(school)
    pupils = [pupil_at(school, first_name=first_names[i]) for i in range(children)]
    for pupil in pupils:
        group.pupils.add(pupil)
    guardian = guardian_of(*pupils)
    for pupil in pupils:
        consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
    return guardian, pupils


def due_session(personas, *, group=None, minutes_ahead: int = 30, lead_minutes: int = 60, **overrides) -> VideoSession:
    """A session starting `minutes_ahead` from now whose send time (start − lead) has come."""
    group = group or GroupFactory(school=personas.school)
    current_notice(personas.school)
    return scheduled_session(personas, groups=[group], starts_at=timezone.now() + dt.timedelta(minutes=minutes_ahead),
                             lead_minutes=lead_minutes, password=PASSWORD, **overrides)


@dataclass
class SentEmail:
    """A sent invitation in the shape the link test reads (template, text and HTML bodies)."""

    template: str
    body_text: str
    body_html: str


def produce(personas) -> list[SentEmail]:
    """session-invitation (sent by the dispatcher over the test email backend) and session-alert (a host
    told that a parent withdrew after the invitation was sent). The alert is in the outbox; the invitation
    is returned, as invitations are `Delivery` rows sent directly, not outbox messages."""
    from consent.services import consent_withdraw

    group = GroupFactory(school=personas.school, name="Invited")
    guardian, (pupil,) = consenting_family(personas.school, group)
    session = due_session(personas, group=group)
    deliveries_plan()
    delivery = Delivery.objects.get(session=session, guardian=guardian)
    before = len(mail.outbox)
    delivery_send_batch([delivery.pk])
    sent = mail.outbox[before:]
    assert len(sent) == 1
    consent_withdraw(guardian=guardian, pupil=pupil, notice=current_notice(personas.school))
    # session-incident: a teacher reports a problem in a session that has started (emailed to the headteacher).
    from sessions.host import incident_report
    from tests.sessions.sessions_setup import session_row

    started = session_row(personas.school, personas.teacher, starts_at=timezone.now() - dt.timedelta(minutes=5))
    incident_report(session=started, actor=personas.teacher, kind="technical", description="The sound failed.",
                    ended_early=False)
    # session-cancelled, session-moved, session-gate-red (sessions/changes.py) and daily-digest, all in the outbox.
    produce_changes(personas, cancel=session)
    html = next(content for content, mimetype in sent[0].alternatives if mimetype == "text/html")
    return [SentEmail(template="session-invitation", body_text=sent[0].body, body_html=html)]


def produce_changes(personas, *, cancel: VideoSession) -> None:
    """A session whose invitation was sent is cancelled (session-cancelled); another is moved two days later
    (session-moved); a third, whose invitation was sent, and a fourth, starting within 24 hours, lose their
    host from the school's staff: the gate watch tells the parents invited to the third not to use it
    (session-not-going-ahead), and the host and the headteacher of both a few minutes later
    (session-gate-red); a fifth, three days ahead, goes red too and waits for the next morning's daily digest
    (daily-digest); then the host is back on the staff, and the host and the headteacher are told the lessons
    they heard of can go ahead again (session-gate-green)."""
    import time_machine

    from schools.digest import digest_dispatch
    from schools.models import Membership, Role
    from sessions.gate_watch import COALESCE_FOR, sessions_gate_watch
    from sessions.services import session_cancel, session_update
    from tests.factories import MembershipFactory

    session_cancel(session=cancel, actor=personas.teacher, reason="The teacher is away")  # its parent withdrew
    told_group = GroupFactory(school=personas.school, name="Cancelled")
    consenting_family(personas.school, told_group, first_names=("Cy",))
    cancelled = due_session(personas, group=told_group)
    deliveries_plan()
    delivery_send_batch(Delivery.objects.filter(session=cancelled).values_list("pk", flat=True))
    session_cancel(session=cancelled, actor=personas.teacher, reason="The teacher is away")
    group = GroupFactory(school=personas.school, name="Moved")
    consenting_family(personas.school, group, first_names=("Mo",))
    moved = due_session(personas, group=group)
    deliveries_plan()
    delivery_send_batch(Delivery.objects.filter(session=moved).values_list("pk", flat=True))
    session_update(session=moved, actor=personas.teacher, starts_at=moved.starts_at + dt.timedelta(days=2))
    host = MembershipFactory(school=personas.school, role=Role.TEACHER).user
    now = timezone.now()
    red_group = GroupFactory(school=personas.school, name="Red")
    consenting_family(personas.school, red_group, first_names=("Ro",))
    sent_then_red = due_session(personas, group=red_group, host=host, actor=host)
    deliveries_plan()
    delivery_send_batch(Delivery.objects.filter(session=sent_then_red).values_list("pk", flat=True))
    scheduled_session(personas, host=host, actor=host, groups=[group], starts_at=now + dt.timedelta(hours=3))
    later = scheduled_session(personas, host=host, actor=host, groups=[group], starts_at=now + dt.timedelta(days=3))
    Membership.objects.filter(user=host, school=personas.school).delete()
    first = sessions_gate_watch()  # the third starts within half an hour: its staff are emailed at once
    assert (first.alerted, first.parents_told, first.told) == (3, 1, 2)
    with time_machine.travel(timezone.now() + COALESCE_FOR + dt.timedelta(seconds=1)):
        assert sessions_gate_watch().told == 0  # the fourth was named in those emails
    next_morning = dt.datetime.combine(timezone.localdate(now, personas.school.tz) + dt.timedelta(days=1),
                                       dt.time(personas.organisation.digest_hour, 5), personas.school.tz)
    assert next_morning < later.starts_at
    with time_machine.travel(next_morning, tick=False):
        assert digest_dispatch().due >= 1
    # The host is back on the staff: those told the third and fourth could not go ahead hear they can again
    # (session-gate-green).
    MembershipFactory(school=personas.school, role=Role.TEACHER, user=host)
    assert sessions_gate_watch().told_green == 2
