"""Time and the dispatcher: the clocks changing in Europe/London, a session moved or cancelled and an address
changed between planning and claiming, and a worker whose own clock is five minutes off.

The planner and the claim decide by the database clock (`Now()`), which time-machine cannot move. So a
scenario moves the SESSION instead: `place` shifts a row's start and send time together (keeping start − lead)
so that the database's real now falls just before its send time, inside its window, or after its start. What
the clocks' changes are tested on is the arithmetic that makes `send_at` (an instant, start − lead, never a
wall-clock subtraction) and the email, which states the local time with its zone (BST or GMT); that is
rendered from the same instants through the real claim and templates.
"""

import copy
import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.db.models import F
from django.db.models.functions import Now

from consent.models import Guardian
from sessions.dispatch import deliveries_plan, delivery_claim, delivery_send_batch
from sessions.invitation import invitation_email
from sessions.models import Delivery, VideoSession
from sessions.services import session_cancel, session_update
from tests.factories import GroupFactory
from tests.sessions.sessions_setup import scheduled_session

from .emails_dispatch import PASSWORD, consenting_family, current_notice, due_session

pytestmark = pytest.mark.django_db

Status = Delivery.Status
UTC = dt.UTC
LONDON = ZoneInfo("Europe/London")
SKEW = dt.timedelta(minutes=5)


# --- helpers ------------------------------------------------------------------------------------------------

def db_now() -> dt.datetime:
    """The database's clock, which the planner and the claim read (never Python's)."""
    return ContentType.objects.annotate(db_now=Now()).values_list("db_now", flat=True)[0]


def place(session: VideoSession, *, send_in: dt.timedelta, moved: bool = False) -> VideoSession:
    """Put the database's now `send_in` before the session's send time (negative: after it), by shifting the
    row's start and send time together (the lead unchanged). As if the clock had moved, the session's
    invitations' own times (next attempt, lease, dispatch) shift with it; with `moved`, they stay: the
    session was moved (rescheduled straight in the table, without `session_update`'s bookkeeping)."""
    shift = db_now() + send_in - session.send_at
    VideoSession.objects.filter(pk=session.pk).update(starts_at=F("starts_at") + shift, send_at=F("send_at") + shift)
    if not moved:
        rows = Delivery.objects.filter(session=session)
        for name in ("next_attempt_at", "lease_until", "dispatched_at"):
            rows.filter(**{f"{name}__isnull": False}).update(**{name: F(name) + shift})
    session.refresh_from_db()
    return session


def place_start(session: VideoSession, *, starts_in: dt.timedelta) -> VideoSession:
    return place(session, send_in=starts_in - dt.timedelta(minutes=session.lead_minutes))


def invitations() -> list:
    """The invitations sent so far (messages carrying a delivery's Message-ID), not the outbox's other mail."""
    ids = set(Delivery.objects.exclude(message_id="").values_list("message_id", flat=True))
    return [m for m in mail.outbox if m.extra_headers.get("Message-ID") in ids]


def dispatch(session: VideoSession) -> list:
    """One planner run and one send task over the session's invitations; returns the invitations it sent."""
    before = len(invitations())
    deliveries_plan()
    delivery_send_batch(Delivery.objects.filter(session=session).values_list("pk", flat=True))
    return invitations()[before:]


def rendered_at(claimed, starts_at: dt.datetime):
    """The invitation of a claimed delivery as it reads when the session starts at `starts_at` (an instant
    around a change of the clocks, which the real clock cannot reach): a copy of the session, rendered
    afresh (the batch's render cache, if any, left out)."""
    session = copy.copy(claimed.session)
    session.starts_at = starts_at
    fresh = {"shared": {}} if hasattr(claimed, "shared") else {}
    return invitation_email(dataclasses.replace(claimed, session=session, **fresh))


def html_of(message) -> str:
    return next(content for content, mimetype in message.alternatives if mimetype == "text/html")


@pytest.fixture
def owls(personas):
    return GroupFactory(school=personas.school, name="Owls")


@pytest.fixture
def family(personas, owls):
    """A guardian whose one child (Ava) is in Owls with consent given."""
    guardian, (pupil,) = consenting_family(personas.school, owls)
    return guardian, pupil


def _london(*args) -> dt.datetime:
    return dt.datetime(*args)  # a naive wall-clock time, as the schedule form passes it


# Europe/London in 2027: forward on Sunday 28 March at 01:00 GMT (01:00-01:59 does not exist), back on Sunday
# 31 October at 02:00 BST (01:00-01:59 happens twice; the service takes the first, in summer time).
DST_CASES = [
    # (wall clock, lead minutes, start in UTC, send time in UTC, zone the email names)
    pytest.param(_london(2027, 3, 29, 9, 0), 60, dt.datetime(2027, 3, 29, 8, 0), dt.datetime(2027, 3, 29, 7, 0),
                 "BST", id="monday-after-spring-forward-09:00"),
    pytest.param(_london(2027, 3, 28, 0, 30), 60, dt.datetime(2027, 3, 28, 0, 30), dt.datetime(2027, 3, 27, 23, 30),
                 "GMT", id="spring-day-00:30"),
    # 02:30 summer time is 01:30 UTC; an hour before is 00:30 GMT: two hours earlier on the wall clock.
    pytest.param(_london(2027, 3, 28, 2, 30), 60, dt.datetime(2027, 3, 28, 1, 30), dt.datetime(2027, 3, 28, 0, 30),
                 "BST", id="spring-day-02:30"),
    pytest.param(_london(2027, 3, 28, 3, 30), 120, dt.datetime(2027, 3, 28, 2, 30), dt.datetime(2027, 3, 28, 0, 30),
                 "BST", id="spring-day-03:30-lead-across-the-change"),
    pytest.param(_london(2027, 10, 31, 0, 30), 60, dt.datetime(2027, 10, 30, 23, 30),
                 dt.datetime(2027, 10, 30, 22, 30), "BST", id="autumn-day-00:30"),
    pytest.param(_london(2027, 10, 31, 1, 30), 60, dt.datetime(2027, 10, 31, 0, 30),
                 dt.datetime(2027, 10, 30, 23, 30), "BST", id="autumn-day-01:30-first-of-two"),
    # 02:30 GMT is 02:30 UTC; an hour before is 01:30 GMT, the SECOND 01:30 of the night: the wall clock
    # shows the same 01:30 as the summer-time session above, an hour later.
    pytest.param(_london(2027, 10, 31, 2, 30), 60, dt.datetime(2027, 10, 31, 2, 30), dt.datetime(2027, 10, 31, 1, 30),
                 "GMT", id="autumn-day-02:30"),
    pytest.param(_london(2027, 11, 1, 9, 0), 60, dt.datetime(2027, 11, 1, 9, 0), dt.datetime(2027, 11, 1, 8, 0),
                 "GMT", id="monday-after-fall-back-09:00"),
]


# --- the clocks changing ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("wall", "lead", "start_utc", "send_utc", "zone"), DST_CASES)
def test_around_the_clock_changes_the_send_time_is_the_start_minus_the_lead_as_an_instant(
        personas, owls, family, wall, lead, start_utc, send_utc, zone):
    session = scheduled_session(personas, groups=[owls], starts_at=wall, lead_minutes=lead, password=PASSWORD)
    assert session.starts_at == start_utc.replace(tzinfo=UTC)
    assert session.send_at == send_utc.replace(tzinfo=UTC)
    assert session.starts_at - session.send_at == dt.timedelta(minutes=lead)
    # Months ahead by the real clock: nothing is planned, and nothing is sent.
    assert deliveries_plan().created == 0 and not Delivery.objects.exists()


# Django's `date:"T"` prints nothing for a wall-clock time that happens twice (it will not guess the fold), so
# the emails take the zone from the aware datetime itself (`zone_abbr`): the first 01:30 says BST.
RENDER_CASES = [pytest.param(*case.values, id=case.id) for case in DST_CASES]


@pytest.mark.parametrize(("wall", "lead", "start_utc", "send_utc", "zone"), RENDER_CASES)
def test_around_the_clock_changes_nothing_goes_early_or_after_the_start_and_the_email_says_the_zone(
        personas, owls, family, wall, lead, start_utc, send_utc, zone):
    guardian, _ = family
    session = scheduled_session(personas, groups=[owls], starts_at=wall, lead_minutes=lead, password=PASSWORD)
    original_start = session.starts_at

    # A minute before the send time: the planner plans nothing.
    place(session, send_in=dt.timedelta(minutes=1))
    assert deliveries_plan().created == 0

    # Planned just after the send time, then moved so that the send time is again a minute ahead: the
    # invitation's task arriving now sends nothing, and the row waits for the send time.
    place(session, send_in=-dt.timedelta(seconds=30))
    assert deliveries_plan().created == 1
    delivery = Delivery.objects.get(session=session)
    session = place(session, send_in=dt.timedelta(minutes=1), moved=True)
    assert delivery_send_batch([delivery.pk]).sent == [] and invitations() == []
    delivery.refresh_from_db()
    assert delivery.status == Status.PENDING and delivery.next_attempt_at == session.send_at

    # The send time comes: sent once, before the start (by the database clock at the moment of the claim).
    session = place(session, send_in=-dt.timedelta(seconds=1))
    claimed = delivery_claim(delivery.pk)
    assert claimed is not None and claimed.delivery.recipient == guardian.email
    assert session.send_at <= db_now() < session.starts_at

    # The email of the session as scheduled (the instant around the clocks' change) states its local time.
    message = rendered_at(claimed, original_start)
    local = original_start.astimezone(LONDON)
    assert local.strftime("%H:%M") == wall.strftime("%H:%M")
    assert f"at {wall:%H:%M}" in message.subject and f"{wall:%-d %b}" in message.subject
    for body in (message.body, html_of(message)):
        assert f"{wall:%A %-d %B %Y}, {wall:%H:%M} to " in body
        assert f"(Europe/London, {zone})" in body, body[body.find("When"):][:120]
    assert f"{wall:%H:%M}" not in message.body.replace(f"{wall:%H:%M} to", "")  # no other time is stated


def test_after_the_start_nothing_is_sent_whatever_the_send_time(personas, owls, family):
    session = scheduled_session(personas, groups=[owls], starts_at=_london(2027, 10, 31, 1, 30), password=PASSWORD)
    place(session, send_in=-dt.timedelta(seconds=30))
    deliveries_plan()
    delivery = Delivery.objects.get(session=session)
    place_start(session, starts_in=-dt.timedelta(seconds=1))
    assert delivery_send_batch([delivery.pk]).sent == [] and invitations() == []
    delivery.refresh_from_db()
    assert delivery.status == Status.FAILED and "started before" in delivery.reason
    assert deliveries_plan().sessions == 0


def test_a_weekly_series_across_the_spring_change_sends_each_week_in_its_own_window(personas, owls, family):
    series = scheduled_session(personas, groups=[owls], starts_at=_london(2027, 3, 22, 9, 0),
                               repeat_weekly_until=dt.date(2027, 4, 5), password=PASSWORD)
    weeks = list(VideoSession.objects.filter(series=series.series).order_by("starts_at"))
    assert [s.starts_at.astimezone(UTC).hour for s in weeks] == [9, 8, 8]  # 09:00 GMT, then 09:00 BST
    assert all(s.starts_at - s.send_at == dt.timedelta(minutes=60) for s in weeks)
    originals = {s.pk: s.starts_at for s in weeks}

    # Only the week whose window is open (the one across the change) is planned and sent.
    after_change = place(weeks[1], send_in=-dt.timedelta(seconds=30))
    (sent,) = dispatch(after_change)
    assert set(Delivery.objects.values_list("session_id", flat=True)) == {after_change.pk}
    assert sent.extra_headers["Message-ID"] == Delivery.objects.get().message_id
    # The other weeks are still months ahead, and a second run sends nothing more.
    assert dispatch(after_change) == [] and deliveries_plan().created == 0

    # Each week's email, rendered from its own instant, says 09:00 with that week's zone.
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(status=Status.PENDING, sent_revision=None)
    claimed = delivery_claim(delivery.pk)
    for week, zone in zip(weeks, ("GMT", "BST", "BST"), strict=True):
        body = rendered_at(claimed, originals[week.pk]).body
        assert f"{originals[week.pk].astimezone(LONDON):%A %-d %B %Y}, 09:00 to 09:30 (Europe/London, {zone})" in body


# --- changes between planning and claiming ------------------------------------------------------------------

def test_a_session_moved_later_within_its_window_is_sent_with_the_new_time(personas, owls, family):
    guardian, _ = family
    session = due_session(personas, group=owls, minutes_ahead=30)
    deliveries_plan()
    new_start = db_now() + dt.timedelta(minutes=45)
    session = session_update(session=session, actor=personas.teacher, starts_at=new_start)
    assert session.send_at < db_now()  # still in its window: may be sent now
    sent = dispatch(session)
    assert [m.to for m in sent] == [[guardian.email]]
    local = new_start.astimezone(LONDON)
    assert f"{local:%H:%M} to" in sent[0].body
    old = (new_start - dt.timedelta(minutes=15)).astimezone(LONDON)
    assert f"{old:%H:%M} to" not in sent[0].body
    delivery = Delivery.objects.get(session=session, status=Status.SENT)
    assert delivery.sent_revision == session.revision == 2


def test_a_session_moved_past_its_window_waits_for_the_new_send_time(personas, owls, family):
    guardian, _ = family
    session = due_session(personas, group=owls, minutes_ahead=30)
    deliveries_plan()
    session = session_update(session=session, actor=personas.teacher,
                             starts_at=db_now() + dt.timedelta(hours=3))
    assert session.send_at > db_now()
    assert dispatch(session) == []
    assert not Delivery.objects.filter(session=session, status__in=[Status.SENT, Status.SENDING]).exists()
    # Its new send time comes: one invitation, with the new time.
    session = place(session, send_in=-dt.timedelta(seconds=1))
    sent = dispatch(session)
    assert [m.to for m in sent] == [[guardian.email]]
    assert f"{session.starts_at.astimezone(LONDON):%H:%M} to" in sent[0].body
    assert Delivery.objects.filter(session=session, status=Status.SENT).count() == 1


def test_a_session_moved_later_and_then_back_is_sent_at_once_not_at_the_later_send_time(personas, owls, family):
    guardian, _ = family
    session = due_session(personas, group=owls, minutes_ahead=30)
    deliveries_plan()
    session = session_update(session=session, actor=personas.teacher, starts_at=db_now() + dt.timedelta(hours=3))
    assert dispatch(session) == []  # the task came: the row waits for the send time two hours ahead
    session = session_update(session=session, actor=personas.teacher, starts_at=db_now() + dt.timedelta(minutes=20))
    sent = dispatch(session)
    assert [m.to for m in sent] == [[guardian.email]]
    assert f"{session.starts_at.astimezone(LONDON):%H:%M} to" in sent[0].body


def test_a_session_moved_earlier_is_sent_with_the_new_time_never_the_old(personas, owls, family):
    session = due_session(personas, group=owls, minutes_ahead=50)
    deliveries_plan()
    old_local = session.starts_at.astimezone(LONDON)
    session = session_update(session=session, actor=personas.teacher, starts_at=db_now() + dt.timedelta(minutes=20))
    (sent,) = dispatch(session)
    assert f"{session.starts_at.astimezone(LONDON):%H:%M} to" in sent.body
    assert f"{old_local:%H:%M} to" not in sent.body


def test_a_session_cancelled_between_planning_and_claiming_sends_nothing(personas, owls, family):
    session = due_session(personas, group=owls)
    deliveries_plan()
    session_cancel(session=session, actor=personas.teacher, reason="Snow day")
    assert dispatch(session) == []
    assert not Delivery.objects.filter(status__in=[Status.SENT, Status.SENDING, *Delivery.CLAIMABLE]).exists()
    assert PASSWORD not in "".join(m.body for m in mail.outbox)


def test_an_address_changed_between_planning_and_claiming_gets_the_invitation_the_old_one_nothing(
        personas, owls, family):
    guardian, _ = family
    old = guardian.email
    session = due_session(personas, group=owls)
    deliveries_plan()
    Guardian.objects.filter(pk=guardian.pk).update(email="new.address@example.org")
    (sent,) = dispatch(session)
    assert sent.to == ["new.address@example.org"] and not sent.cc and not sent.bcc
    assert not [m for m in mail.outbox if old in m.to + m.cc + m.bcc]
    assert Delivery.objects.get(session=session).recipient == "new.address@example.org"


def test_an_address_removed_between_planning_and_claiming_sends_nothing(personas, owls, family):
    guardian, _ = family
    session = due_session(personas, group=owls)
    deliveries_plan()
    Guardian.objects.filter(pk=guardian.pk).update(email="")
    assert dispatch(session) == []
    assert Delivery.objects.get(session=session).status == Status.SKIPPED


# --- a worker whose clock is wrong --------------------------------------------------------------------------

def _skewed(offset: dt.timedelta):
    """Python's clock `offset` from the database's (which stays real), ticking."""
    return time_machine.travel(db_now() + offset, tick=True)


@pytest.mark.parametrize("offset", [SKEW, -SKEW], ids=["five-minutes-fast", "five-minutes-slow"])
def test_a_worker_with_a_wrong_clock_plans_and_claims_nothing_before_the_send_time(personas, owls, family, offset):
    session = due_session(personas, group=owls)
    deliveries_plan()  # planned at the send time by the right clocks
    delivery = Delivery.objects.get(session=session)
    # Moved: its send time is now two minutes ahead by the database (three minutes behind a fast worker).
    other = due_session(personas, group=owls, minutes_ahead=90)
    session, other = place(session, send_in=dt.timedelta(minutes=2)), place(other, send_in=dt.timedelta(minutes=2))
    with _skewed(offset):
        assert deliveries_plan().created == 0
        assert delivery_send_batch([delivery.pk]).sent == []
    assert invitations() == [] and not other.deliveries.exists()
    delivery.refresh_from_db()
    assert delivery.status == Status.PENDING


@pytest.mark.parametrize("offset", [SKEW, -SKEW], ids=["five-minutes-fast", "five-minutes-slow"])
def test_a_worker_with_a_wrong_clock_sends_nothing_after_the_start(personas, owls, family, offset):
    session = due_session(personas, group=owls)
    deliveries_plan()
    delivery = Delivery.objects.get(session=session)
    # Started a second ago by the database; a slow worker believes it starts in five minutes.
    place_start(session, starts_in=-dt.timedelta(seconds=1))
    with _skewed(offset):
        assert delivery_send_batch([delivery.pk]).sent == []
        assert deliveries_plan().created == 0
    assert invitations() == []
    delivery.refresh_from_db()
    assert delivery.status == Status.FAILED and "started before" in delivery.reason


@pytest.mark.parametrize("offset", [
    # The planner stamps a new row's next attempt with the worker's clock, and the claim compares it with the
    # database's: a fast worker's row is not claimable until its own clock's time (five minutes late).
    pytest.param(SKEW, id="five-minutes-fast"),
    pytest.param(-SKEW, id="five-minutes-slow"),
])
def test_a_worker_with_a_wrong_clock_sends_a_due_invitation_on_time(personas, owls, family, offset):
    guardian, _ = family
    current_notice(personas.school)
    session = due_session(personas, group=owls, minutes_ahead=30)
    place(session, send_in=-dt.timedelta(seconds=5))
    with _skewed(offset):
        sent = dispatch(session)
    assert [m.to for m in sent] == [[guardian.email]]
    assert Delivery.objects.get(session=session).status == Status.SENT
