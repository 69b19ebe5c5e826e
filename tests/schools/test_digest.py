"""The daily digest (schools/digest.py): one email a day per person, at their organisation's hour in their
school's time zone, with what changed and what needs them; urgent things are emailed at once and the digest
lists them as already told."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from outbox.models import OutboxMessage
from schools import digest as digest_module
from schools import tasks
from schools.digest import digest_dispatch, digest_place, digest_send, digests_due
from schools.models import Digest, DigestItem, Membership, Role
from sessions.gate_watch import sessions_gate_watch
from sessions.host import incident_report
from tests.factories import MembershipFactory, SchoolFactory
from tests.sessions.sessions_setup import flag_the_risk_assessment, green_gate, scheduled_session, session_row

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
MONDAY = dt.datetime(2027, 1, 11, 10, 0, tzinfo=LONDON)  # winter: London is on GMT


def at(day: dt.date, hour: int, minute: int = 0, zone=LONDON) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), zone)


@pytest.fixture
def monday(personas):
    """Monday 10:00 in London, the gate green at the school, time standing still until moved."""
    with time_machine.travel(MONDAY, tick=False) as traveller:
        green_gate(personas)
        yield traveller


def lesson(personas, title: str, starts_at: dt.datetime):
    return scheduled_session(personas, title=title, starts_at=starts_at)


def digests(user=None) -> list[OutboxMessage]:
    messages = OutboxMessage.objects.filter(template="daily-digest").order_by("pk")
    return list(messages.filter(recipient=user.email) if user else messages)


def last_email() -> int:
    """The newest outbox row so far (setting up the gate emails the people signing the PIA)."""
    return OutboxMessage.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def what_changed(message: OutboxMessage) -> str:
    """The body's news: between "WHAT CHANGED" and what they were already told (or "NEEDS YOU")."""
    body = message.body_text.split("WHAT CHANGED", 1)[1]
    return body.split("Already emailed to you", 1)[0].split("NEEDS YOU", 1)[0]


@pytest.fixture
def changes_only(monkeypatch):
    """For the tests of "What changed": the flagged assessment they use also puts a review on the head's
    Needs you, and a started lesson puts attendance on the host's; those are tested on the real list below."""
    monkeypatch.setattr(digest_module, "digest_needs_you", lambda user: [])


def test_one_email_per_person_per_day_with_everything_that_changed(personas, monday, changes_only):
    tuesday = MONDAY.date() + dt.timedelta(days=1)
    lesson(personas, "Owls phonics", at(tuesday + dt.timedelta(days=2), 9))
    lesson(personas, "Hawks maths", at(tuesday + dt.timedelta(days=3), 10))
    lesson(personas, "Wrens story time", at(tuesday, 9))  # within 24 hours of Monday 10:00
    flag_the_risk_assessment(personas)
    sessions_gate_watch()
    monday.shift(dt.timedelta(minutes=5))  # the watch's next run emails the lesson within 24 hours
    sessions_gate_watch()
    started = session_row(personas.school, personas.teacher, title="Robins music",
                          starts_at=timezone.now() - dt.timedelta(minutes=5))
    incident_report(session=started, actor=personas.teacher, kind="technical", description="The sound failed.",
                    ended_early=True)

    monday.move_to(at(tuesday, 7, 5))
    digest_dispatch()
    monday.move_to(at(tuesday, 7, 20))
    digest_dispatch()
    monday.move_to(at(tuesday, 16, 0))
    digest_dispatch()

    (head,) = digests(personas.headteacher)
    assert head.subject == "2 lessons cannot go ahead yet"
    news = what_changed(head)
    assert '"Owls phonics"' in news and '"Hawks maths"' in news and "Thursday 14 January at 09:00" in news
    assert "was flagged for review after an incident: Uninvited person joined" in news
    told = head.body_text.split("Already emailed to you at the time:", 1)[1]
    assert "“Wrens story time” cannot go ahead (emailed Monday 11 January at 10:05). It still cannot go ahead." \
        in told
    assert "Technical problem in “Robins music” (emailed Monday 11 January at 10:05). Reported by" in told
    assert f"{settings.SITE_URL}/sessions/" in head.body_text and "Wrens" not in news
    (host,) = digests(personas.teacher)
    assert '"Owls phonics"' in what_changed(host) and "Robins music" not in host.body_text  # not told to the host
    assert len(digests()) == 2
    assert set(Digest.objects.values_list("user_id", "day", "sent")) >= {
        (personas.headteacher.pk, tuesday, True), (personas.teacher.pk, tuesday, True)}
    assert not DigestItem.objects.filter(user__in=[personas.headteacher, personas.teacher], digest__isnull=True)

    # Wednesday: nothing new since Tuesday's digest, nothing waits: no email, and recorded so.
    monday.move_to(at(tuesday + dt.timedelta(days=1), 7, 5))
    digest_dispatch()
    assert len(digests()) == 2
    assert Digest.objects.get(user=personas.headteacher, day=tuesday + dt.timedelta(days=1)).sent is False


def test_ten_lessons_turning_red_give_one_digest_naming_all_ten_and_no_email_per_lesson(personas, monday, changes_only):
    titles = [f"Year {n} assembly" for n in range(1, 11)]
    for n, title in enumerate(titles):
        lesson(personas, title, MONDAY + dt.timedelta(days=2 + n))
    before = last_email()
    flag_the_risk_assessment(personas)
    assert sessions_gate_watch().alerted == 10
    assert not OutboxMessage.objects.filter(pk__gt=before).exists()

    monday.move_to(at(MONDAY.date() + dt.timedelta(days=1), 7, 5))
    digest_dispatch()
    (message,) = digests(personas.headteacher)
    assert message.subject == "10 lessons cannot go ahead yet"
    for title in titles:
        assert f'"{title}"' in message.body_text and f">{title}</a>" in message.body_html
    assert "10. \"Year 10 assembly\"" in message.body_text
    assert set(OutboxMessage.objects.filter(pk__gt=before).values_list("template", flat=True)) == {"daily-digest"}


def test_nothing_is_sent_to_a_person_who_opted_out(personas, monday, changes_only):
    lesson(personas, "Owls phonics", MONDAY + dt.timedelta(days=3))
    personas.headteacher.daily_digest = False
    personas.headteacher.save(update_fields=["daily_digest"])
    before = last_email()
    flag_the_risk_assessment(personas)
    sessions_gate_watch()
    monday.move_to(at(MONDAY.date() + dt.timedelta(days=1), 7, 5))
    digest_dispatch()
    assert digests(personas.headteacher) == []
    assert not OutboxMessage.objects.filter(pk__gt=before, recipient=personas.headteacher.email).exists()
    assert not Digest.objects.filter(user=personas.headteacher).exists()
    assert [m.recipient for m in digests()] == [personas.teacher.email]


def test_inactive_people_and_people_without_an_address_get_no_digest(personas, monday, changes_only):
    lesson(personas, "Owls phonics", MONDAY + dt.timedelta(days=3))
    flag_the_risk_assessment(personas)
    sessions_gate_watch()
    type(personas.teacher).objects.filter(pk=personas.teacher.pk).update(is_active=False)
    type(personas.headteacher).objects.filter(pk=personas.headteacher.pk).update(email="")
    monday.move_to(at(MONDAY.date() + dt.timedelta(days=1), 7, 5))
    due = digests_due(timezone.now())
    assert personas.teacher.pk not in due and personas.headteacher.pk not in due and personas.office.pk in due
    digest_dispatch()
    assert digests() == []


def test_a_lesson_within_24_hours_turning_red_is_emailed_at_once_and_not_listed_as_new(personas, monday):
    lesson(personas, "Wrens story time", MONDAY + dt.timedelta(hours=20))
    flag_the_risk_assessment(personas)
    sessions_gate_watch()
    monday.shift(dt.timedelta(minutes=5))  # the watch's next run: no other lesson turned red meanwhile
    sessions_gate_watch()
    at_once = OutboxMessage.objects.filter(template="session-gate-red")
    assert sorted(at_once.values_list("recipient", flat=True)) == sorted(
        [personas.teacher.email, personas.headteacher.email])
    assert at_once.first().subject == "Cannot go ahead: Wrens story time, Tue 12 Jan 06:00"

    monday.move_to(at(MONDAY.date() + dt.timedelta(days=1), 7, 5))
    digest_dispatch()
    (message,) = digests(personas.headteacher)
    assert "cannot go ahead yet" not in message.subject
    assert "Wrens" not in what_changed(message)
    assert "“Wrens story time” cannot go ahead (emailed Monday 11 January at 10:05). Its start time has passed." \
        in message.body_text


def test_an_incident_is_emailed_at_once_and_the_digest_lists_it_as_already_told(personas, monday, changes_only):
    started = session_row(personas.school, personas.teacher, title="Robins music",
                          starts_at=timezone.now() - dt.timedelta(minutes=5))
    incident_report(session=started, actor=personas.teacher, kind="safeguarding", description="A child is upset.",
                    ended_early=False)
    (at_once,) = OutboxMessage.objects.filter(template="session-incident")
    assert at_once.recipient == personas.headteacher.email and at_once.created_at == timezone.now()
    monday.move_to(at(MONDAY.date() + dt.timedelta(days=1), 7, 5))
    digest_dispatch()
    (message,) = digests(personas.headteacher)
    assert message.subject == "Your daily digest: 1 thing you were told of"
    assert what_changed(message).strip() == ""  # no news: only what they were told at the time
    assert "Safeguarding concern in “Robins music” (emailed Monday 11 January at 10:00)" in message.body_text
    assert "A child is upset" not in message.body_text + message.body_html  # what happened stays on the page


def test_the_digest_hour_is_kept_in_the_school_time_zone_across_the_change_to_summer_time(personas):
    personas.organisation.digest_hour = 7
    personas.organisation.save()
    head = personas.headteacher.pk
    winter, summer = dt.date(2027, 3, 26), dt.date(2027, 3, 29)  # the clocks go forward on 28 March 2027
    utc = ZoneInfo("UTC")
    assert head not in digests_due(at(winter, 6, 55, utc))  # 06:55 GMT
    assert head in digests_due(at(winter, 7, 5, utc))  # 07:05 GMT
    assert head not in digests_due(at(summer, 5, 55, utc))  # 06:55 BST
    assert head in digests_due(at(summer, 6, 5, utc))  # 07:05 BST


def test_a_school_in_another_time_zone_gets_its_digest_at_its_own_hour(personas):
    school = personas.other_school
    school.time_zone = "America/New_York"
    school.save()
    other = personas.other_teacher.pk
    day, utc = dt.date(2027, 1, 12), ZoneInfo("UTC")
    assert personas.headteacher.pk in digests_due(at(day, 7, 5, utc)) and other not in digests_due(at(day, 7, 5, utc))
    assert other in digests_due(at(day, 12, 5, utc))  # 07:05 in New York
    # Its own day: 01:00 UTC on the 13th is still the 12th in New York, whose digest was sent.
    Digest.objects.create(user_id=other, day=day, sent=True)
    assert other not in digests_due(at(day + dt.timedelta(days=1), 1, 0, utc))


def test_a_person_at_several_schools_goes_by_their_first_school_by_name(personas):
    zeta = SchoolFactory(organisation=personas.organisation, name="Zeta School", time_zone="Asia/Tokyo")
    alpha = SchoolFactory(organisation=personas.other_school.organisation, name="Alpha School",
                          time_zone="America/New_York")
    user = MembershipFactory(school=zeta, role=Role.TEACHER).user
    Membership.objects.create(user=user, school=alpha, organisation=alpha.organisation, role=Role.TEACHER)
    alpha.organisation.digest_hour = 16
    alpha.organisation.save()
    place = digest_place(user)
    assert (place.time_zone, place.hour, place.school_id) == ("America/New_York", 16, alpha.pk)
    assert (digest_place(personas.dpo).time_zone, digest_place(personas.dpo).school_id) == ("Europe/London", None)


def test_a_second_send_for_the_same_day_sends_nothing(personas, monday):
    lesson(personas, "Owls phonics", MONDAY + dt.timedelta(days=3))
    flag_the_risk_assessment(personas)
    sessions_gate_watch()
    place, day = digest_place(personas.headteacher), MONDAY.date()
    first = digest_send(user=personas.headteacher, place=place, day=day, now=timezone.now())
    assert first.sent and first.changes == 1
    assert digest_send(user=personas.headteacher, place=place, day=day, now=timezone.now()) is None
    assert len(digests(personas.headteacher)) == 1


def test_needs_you_lists_what_waits_on_the_home_page_with_links_and_a_digest_of_only_that_is_sent(personas, monday):
    from pia import services as pia_services
    from tests.pia.pia_setup import draft_pia

    version = draft_pia(personas.organisation, personas.office, school=personas.school, title="Teams")
    pia_services.version_submit(version=version, actor=personas.office)
    monday.move_to(at(MONDAY.date(), 11))
    digest_dispatch()
    (message,) = [m for m in digests() if m.recipient == personas.dpo.email]
    assert message.subject == "1 thing needs you"
    assert "- Give your advice on the PIA “Teams” (version 1)" in message.body_text
    assert f"{settings.SITE_URL}/pia/versions/{version.pk}/advise/" in message.body_text
    assert "Nothing since your last digest" in message.body_text
    assert not [m for m in digests() if m.recipient == personas.teacher.email]  # nothing for them: no email


def test_the_task_sends_and_beat_runs_it_every_quarter_of_an_hour(personas, monday, changes_only):
    lesson(personas, "Owls phonics", MONDAY + dt.timedelta(days=3))
    flag_the_risk_assessment(personas)
    sessions_gate_watch()
    assert tasks.digest_dispatch.delay().get()["due"] >= 2
    assert len(digests()) == 2
    (entry,) = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "schools.tasks.digest_dispatch"]
    assert entry["schedule"] == 900.0


def test_notices_and_digests_are_deleted_after_sixty_days(personas, monday):
    lesson(personas, "Owls phonics", MONDAY + dt.timedelta(days=3))
    flag_the_risk_assessment(personas)
    sessions_gate_watch()
    digest_dispatch()
    assert DigestItem.objects.exists() and Digest.objects.exists()
    monday.move_to(MONDAY + dt.timedelta(days=61))
    assert digest_dispatch().pruned == 2
    assert not DigestItem.objects.filter(created_at__lt=MONDAY + dt.timedelta(days=1)).exists()
    assert not Digest.objects.filter(day=MONDAY.date()).exists()
