"""The daily digest: one email a day per person, at the hour their organisation sets in their school's time
zone, with what changed since their last digest and what needs them, instead of one email per event.

- Notices (`DigestItem`) are written by the services where things happen (`schools.notices`) and wait for the
  person's next digest. Urgent things (a lesson within 24 hours that cannot go ahead, an incident) are emailed
  at once by their service and the notice is recorded as told: the digest lists it under "Already told",
  never as news. Everything else (today: a lesson further ahead that cannot go ahead) is told only here.
- `digest_dispatch` (beat, every 15 minutes: a periodic dispatcher, never an exact-time trigger) finds the
  people whose digest hour has come today in their time zone and who have no `Digest` row for that day, and
  hands their ids to `digest_send` tasks in batches. A missed run catches up: the digest goes at the first run
  at or after the hour. A lost task is harmless: the next run finds the person still due.
- `digest_send`, for one person, in one transaction: inserts the `Digest` row (unique per person and day: a
  second run, or one at the same moment, finds it and skips), carries every pending notice, and queues ONE
  email, or none when there is nothing to tell (the row records that, so the person is not asked about again
  that day). At-most-once per person and day; the outbox then delivers at-least-once.
- Whose time: a person's digest place is their first school by name (its time zone, and its organisation's
  `digest_hour`); someone with organisation roles only (a DPO, a SIRO) goes by their first organisation by
  name, in the organisation's time zone.
- Who gets none: people who turned it off (`User.daily_digest`), inactive accounts, accounts without an
  address, people with no membership. Urgent emails still go at once to people who turned it off.
- "What changed": the lessons that cannot go ahead yet, in one section naming each (school, time, host,
  reasons, link), only those still red when the digest is written (a lesson put right, cancelled or past
  since is dropped: nobody heard of it yet, and it is no longer true); then what they were told at once since
  the last digest, with how it stands now. "Needs you": `digest_needs_you`.
"""

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from outbox.services import email_queue
from sessions.models import VideoSession

from . import home
from .audit import audit_log
from .models import Digest, DigestItem, Membership, Organisation, School
from .notices import digest_items_prune
from .scope import build_scope

logger = logging.getLogger(__name__)

SEND_BATCH_SIZE = 50


def digest_needs_you(user) -> list[home.Todo]:
    """What waits for this person, for the digest's "Needs you" section: the home page's list
    (`schools.home.needs_you`), so the digest and the page never disagree."""
    return home.needs_you(user, build_scope(user))


# ---------------------------------------------------------------------------------------------------
# When: each person's digest place and hour


@dataclass(frozen=True)
class DigestPlace:
    time_zone: str
    hour: int
    organisation_id: int
    school_id: int | None = None

    def day_due(self, now: datetime) -> date | None:
        """Today in this place if the digest hour has come, else None."""
        local = timezone.localtime(now, ZoneInfo(self.time_zone))
        return local.date() if local.hour >= self.hour else None


def digest_places(memberships) -> dict[int, DigestPlace]:
    """User id → digest place, from a queryset of memberships (see the module docstring). One query."""
    best: dict[int, tuple[tuple, DigestPlace]] = {}
    rows = memberships.values_list("user_id", "school_id", "school__name", "school__time_zone", "organisation_id",
                                   "organisation__name", "organisation__time_zone", "organisation__digest_hour")
    for user_id, school_id, school_name, school_zone, org_id, org_name, org_zone, hour in rows.iterator(2000):
        if school_id is not None:
            key, place = (0, school_name.casefold(), school_id), DigestPlace(school_zone, hour, org_id, school_id)
        else:
            key, place = (1, org_name.casefold(), org_id), DigestPlace(org_zone, hour, org_id)
        if user_id not in best or key < best[user_id][0]:
            best[user_id] = (key, place)
    return {user_id: place for user_id, (_, place) in best.items()}


def digest_place(user) -> DigestPlace | None:
    return digest_places(Membership.objects.filter(user=user)).get(user.pk)


def _takers():
    """Memberships of the people who take the digest and can receive it."""
    return Membership.objects.filter(user__is_active=True, user__daily_digest=True).exclude(user__email="")


def digests_due(now: datetime) -> list[int]:
    """The ids of the people whose digest hour has come today and who have no digest for today. Two queries."""
    days = {}
    for user_id, place in digest_places(_takers()).items():
        day = place.day_due(now)
        if day is not None:
            days[user_id] = day
    done = set(Digest.objects.filter(user_id__in=list(days), day__in=set(days.values()))
               .values_list("user_id", "day"))
    return sorted(user_id for user_id, day in days.items() if (user_id, day) not in done)


# ---------------------------------------------------------------------------------------------------
# What: the content of one person's digest


@dataclass
class Lesson:
    """A lesson that cannot go ahead yet."""

    title: str
    school_name: str
    starts_at: datetime  # in the school's time zone
    time_zone: str
    host_name: str
    reasons: list[str]
    link: str


@dataclass
class Told:
    """Something the person was emailed about at once since their last digest, and how it stands now."""

    title: str
    text: str
    school_name: str
    told_at: datetime  # in the person's digest time zone
    link: str
    now: str = ""


@dataclass
class DigestTodo:
    title: str
    school_name: str
    since: datetime
    link: str


@dataclass
class DigestContent:
    lessons: list[Lesson] = field(default_factory=list)
    told: list[Told] = field(default_factory=list)
    needs_you: list[DigestTodo] = field(default_factory=list)
    school_ids: set[int] = field(default_factory=set)

    @property
    def changes(self) -> int:
        return len(self.lessons) + len(self.told)

    @property
    def empty(self) -> bool:
        return not (self.changes or self.needs_you)

    @property
    def headline(self) -> str:
        """The subject: "3 lessons cannot go ahead yet and 2 things need you"."""
        parts = []
        if self.lessons:
            n = len(self.lessons)
            parts.append(f"{n} lesson{'s' if n > 1 else ''} cannot go ahead yet")
        if self.needs_you:
            n = len(self.needs_you)
            parts.append(f"{n} thing{'s need' if n > 1 else ' needs'} you")
        if not parts:
            n = len(self.told)
            parts.append(f"Your daily digest: {n} thing{'s' if n > 1 else ''} you were told of")
        return " and ".join(parts)


LESSON_NOW = {
    "red": "It still cannot go ahead.",
    "green": "It has been put right since: it can go ahead.",
    "cancelled": "It has been cancelled since.",
    "past": "Its start time has passed.",
}


def _lesson_state(session: VideoSession, now: datetime) -> str:
    if session.status == VideoSession.Status.CANCELLED:
        return "cancelled"
    if session.starts_at <= now:
        return "past"
    return "red" if session.gate_red_since is not None else "green"


def digest_content(*, user, items: Sequence[DigestItem], place: DigestPlace, now: datetime) -> DigestContent:
    """What one digest says, from the person's pending notices and the lessons as they are now. Two queries
    besides `digest_needs_you`'s."""
    content = DigestContent()
    session_type = VideoSession._meta.label_lower
    session_ids = {int(i.related_id) for i in items if i.kind == DigestItem.Kind.GATE_RED
                   and i.related_type == session_type}
    sessions = VideoSession.objects.select_related("school", "host").in_bulk(session_ids)
    lessons: dict[int, Lesson] = {}
    told: dict[tuple, Told] = {}
    for item in items:
        link = settings.SITE_URL + item.path if item.path else ""
        school_name = item.school.name if item.school_id else ""
        if item.kind == DigestItem.Kind.GATE_RED:
            session = sessions.get(int(item.related_id))
            if session is None:
                continue
            state = _lesson_state(session, now)
            if item.told_at is None:
                if state == "red" and session.pk not in lessons:
                    lessons[session.pk] = Lesson(
                        title=session.title, school_name=session.school.name,
                        starts_at=timezone.localtime(session.starts_at, session.school.tz),
                        time_zone=session.school.time_zone,
                        host_name=session.host.get_full_name() or session.host.get_username(),
                        reasons=item.text.splitlines(), link=link)
                    content.school_ids.add(session.school_id)
                continue
            now_text = LESSON_NOW[state]
        elif item.told_at is None:
            continue  # no other kind is told only in the digest yet
        else:
            now_text = ""
        # The latest telling of the same thing, once.
        gate_red = item.kind == DigestItem.Kind.GATE_RED
        told[(item.kind, item.related_type, item.related_id)] = Told(
            title=f"“{item.title}” cannot go ahead" if gate_red else item.title,
            text="" if gate_red else item.text, school_name=school_name,
            told_at=timezone.localtime(item.told_at, ZoneInfo(place.time_zone)), link=link, now=now_text)
        if item.school_id:
            content.school_ids.add(item.school_id)
    content.lessons = sorted(lessons.values(), key=lambda lesson: (lesson.starts_at, lesson.title))
    content.told = sorted(told.values(), key=lambda line: line.told_at)
    zone = ZoneInfo(place.time_zone)
    content.needs_you = [
        DigestTodo(title=todo.title, school_name=todo.school_name, since=timezone.localtime(todo.since, zone),
             link=settings.SITE_URL + todo.url)
        for todo in digest_needs_you(user)
    ]
    return content


# ---------------------------------------------------------------------------------------------------
# Sending


def digest_send(*, user, place: DigestPlace, day: date, now: datetime) -> Digest | None:
    """Write and queue `user`'s digest for `day`, with every pending notice; None if they have one already.
    The returned row says whether anything was sent (`sent`)."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                digest = Digest.objects.create(user=user, day=day, created_at=now)
        except IntegrityError:
            return None  # another run wrote today's digest
        items = list(DigestItem.objects.select_for_update(of=("self",)).filter(user=user, digest__isnull=True)
                     .select_related("school").order_by("created_at", "pk"))
        content = digest_content(user=user, items=items, place=place, now=now)
        DigestItem.objects.filter(pk__in=[item.pk for item in items]).update(digest=digest)
        digest.changes, digest.needs_you, digest.sent = content.changes, len(content.needs_you), not content.empty
        digest.save(update_fields=["changes", "needs_you", "sent"])
        if digest.sent:
            # The school's name heads the email when it is about one school only; else the organisation's.
            school_ids = content.school_ids or ({place.school_id} if place.school_id else set())
            school = School.objects.select_related("organisation").get(pk=school_ids.pop()) \
                if len(school_ids) == 1 else None
            organisation = school.organisation if school else Organisation.objects.get(pk=place.organisation_id)
            email_queue(template="daily-digest", to=user.email, school=school, organisation=organisation,
                        related=digest, context={
                            "recipient": user, "day": day, "content": content, "several_schools": school is None,
                            "time_zone": place.time_zone, "hour": place.hour,
                            "preferences_link": settings.SITE_URL + reverse("accounts:security"),
                        })
    return digest


def digest_send_batch(user_ids: Iterable[int], *, now: datetime | None = None) -> Counter:
    """Send the digest of each of these people who is due now (checked again: the ids may be old). Counts
    "sent", "empty" (nothing to tell) and "skipped" (not due, or already done); one audit entry per
    organisation."""
    now = now or timezone.now()
    result: Counter = Counter()
    user_ids = list(user_ids)
    users = get_user_model().objects.in_bulk(user_ids)
    # Only people who still take the digest have a place here: who turned it off since is skipped.
    places = digest_places(_takers().filter(user_id__in=user_ids))
    per_organisation: dict[int, Counter] = defaultdict(Counter)
    for user_id in user_ids:
        place = places.get(user_id)
        day = place.day_due(now) if place else None
        digest = digest_send(user=users[user_id], place=place, day=day, now=now) if day else None
        outcome = "skipped" if digest is None else "sent" if digest.sent else "empty"
        result[outcome] += 1
        if place is not None and outcome != "skipped":
            per_organisation[place.organisation_id][outcome] += 1
    for organisation in Organisation.objects.filter(pk__in=list(per_organisation)):
        counts = per_organisation[organisation.pk]
        audit_log(actor=None, action="digest.sent", obj=organisation,
                  data={"sent": counts["sent"], "nothing_to_tell": counts["empty"]})
    return result


@dataclass
class DispatchResult:
    due: int = 0
    pruned: int = 0


def digest_dispatch(*, now: datetime | None = None) -> DispatchResult:
    """Every 15 minutes (beat): hand the people whose digest is due to send tasks, in batches, and delete
    notices past their keeping time. If the broker is down, the next run finds the same people due."""
    from kombu.exceptions import OperationalError

    from .tasks import digest_send as digest_send_task

    now = now or timezone.now()
    due = digests_due(now)
    for start in range(0, len(due), SEND_BATCH_SIZE):
        batch = due[start:start + SEND_BATCH_SIZE]
        try:
            digest_send_task.delay(batch)
        except (OperationalError, OSError):
            logger.warning("Could not queue the digests of %s people; the next run tries again", len(batch),
                           exc_info=True)
    return DispatchResult(due=len(due), pruned=digest_items_prune(now=now))
