"""Scheduling, changing and cancelling video sessions: each a keyword-only function, one transaction, audited.

Rules every session keeps (checked on scheduling and on every change):
- the governance gate is green (`sessions.gate`);
- the meeting link is https, without user info, whitespace or control characters, on a host allowed for the
  platform's kind (`MEETING_HOSTS`): Zoom, Teams and Webex only on their own domains; Jitsi, BigBlueButton and
  "other" are often self-hosted, so any https host is accepted for them — their approval is the platform's
  signed PIA, which names the service;
- the password is generated (`secrets`) when left blank, stored encrypted, and never written to the audit
  trail or to logs (neither is the link, which may carry a passcode);
- the title is one line: no CR, LF or other control character can reach an email header;
- the start is a local time in the school's time zone. A time that does not exist (01:30 on the spring-forward
  day in Europe/London) is refused; a time that happens twice (01:30 on the autumn day) is taken as the first
  of the two (summer time, `fold=0`) and the page says so;
- the duration is at most the effective protocol's longest session; the lead time 10 minutes to 24 hours;
- weekly recurrence: one `VideoSession` per week until the end date (at most `MAX_OCCURRENCES`), each at the
  same local time, sharing a `series` id; changes and cancellation apply to one occurrence;
- groups and hand-picked pupils of the school only (pupils still at the school), at least one of either;
- the purpose is the organisation's purpose for video lessons (its first, or the one chosen).

Who may: the school's teachers, office and headteacher schedule; the host, the creator and the headteacher
change and cancel.
"""

import re
import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from consent.models import Group, Pupil, Purpose
from schools.audit import audit_log
from schools.models import Role, School
from schools.scope import build_scope

from .changes import deliveries_cancel, deliveries_revise, sessions_plan_soon
from .coverage import session_coverage
from .gate import Gate, session_gate
from .models import VideoSession
from .protocol import effective_protocol

SCHEDULE_ROLES = frozenset({Role.HEADTEACHER, Role.TEACHER, Role.OFFICE})
MAX_OCCURRENCES = 26
TITLE_MAX = 200
URL_MAX = 2000
PASSWORD_MAX = 64
GENERATED_PASSWORD_LENGTH = 10  # Zoom passcodes take at most 10 characters
# No 0/O, 1/l/I: parents may have to type it.
PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")

# Platform kind → allowed hosts: an exact host, or ".domain" for the domain and every subdomain. None: any https
# host (self-hosted services).
MEETING_HOSTS: dict[str, tuple[str, ...] | None] = {
    "zoom": (".zoom.us",),
    "teams": ("teams.microsoft.com", "teams.live.com"),
    "webex": (".webex.com",),
    "jitsi": None,
    "bigbluebutton": None,
    "other": None,
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_MEETING_ID = re.compile(r"^[A-Za-z0-9 ._-]{0,100}$")

CHANGES_REVISION = ("starts_at", "meeting_url", "meeting_id", "password")


# --- single values ------------------------------------------------------------------------------------------

def mask_secret(value: str) -> str:
    """What pages show of a password: never any of its characters."""
    return "••••••••" if value else ""


def password_generate() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(GENERATED_PASSWORD_LENGTH))


def clean_title(title: str) -> str:
    title = title or ""
    if _CONTROL.search(title):  # before stripping: a trailing CRLF is refused, not quietly dropped
        raise ValidationError({"title": "The title must be one line, without line breaks or control characters."})
    title = title.strip()
    if not title:
        raise ValidationError({"title": "Give the session a title."})
    if len(title) > TITLE_MAX:
        raise ValidationError({"title": f"At most {TITLE_MAX} characters."})
    return title


def clean_meeting_url(url: str, *, kind: str) -> str:
    """The meeting link as given, if it is https on a host allowed for the platform's kind."""
    url = url or ""
    if not url.strip():
        raise ValidationError({"meeting_url": "Paste the meeting link."})
    if url != url.strip() or _CONTROL.search(url) or re.search(r"\s", url):
        raise ValidationError({"meeting_url": "The link must not contain spaces or line breaks."})
    if len(url) > URL_MAX:
        raise ValidationError({"meeting_url": f"At most {URL_MAX} characters."})
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError({"meeting_url": "This is not a valid link."}) from None
    if parts.scheme.lower() != "https":
        raise ValidationError({"meeting_url": "The link must start with https:// (a secure address)."})
    if "@" in parts.netloc or parts.username or parts.password:
        raise ValidationError({"meeting_url": "The link must not contain a user name or password before the host."})
    host = (parts.hostname or "").lower().rstrip(".")
    if not _HOSTNAME.match(host) or "\\" in url or port == 0:
        raise ValidationError({"meeting_url": "The link must name a web address such as https://zoom.us/j/…"})
    allowed = MEETING_HOSTS.get(kind, ())
    if allowed is not None and not any(
        host == entry.lstrip(".") or (entry.startswith(".") and host.endswith(entry)) for entry in allowed
    ):
        names = ", ".join(entry.lstrip(".") for entry in allowed)
        raise ValidationError({"meeting_url": f"A link for this platform must be on {names}."})
    return url


def clean_meeting_id(meeting_id: str) -> str:
    meeting_id = (meeting_id or "").strip()
    if not _MEETING_ID.match(meeting_id):
        raise ValidationError({"meeting_id": "Letters, digits, spaces, dots and hyphens only (at most 100)."})
    return meeting_id


def clean_password(password: str) -> tuple[str, bool]:
    """(password, generated): a strong one is generated when left blank."""
    password = password or ""
    if not password.strip():
        return password_generate(), True
    if password != password.strip() or re.search(r"\s", password) or _CONTROL.search(password):
        raise ValidationError({"password": "The password must not contain spaces or line breaks."})
    if len(password) > PASSWORD_MAX:
        raise ValidationError({"password": f"At most {PASSWORD_MAX} characters."})
    return password, False


@dataclass(frozen=True)
class LocalTime:
    at: datetime  # aware
    ambiguous: bool  # the wall-clock time happened twice; the first (summer time) was taken


def local_start(when: datetime, tz: ZoneInfo) -> LocalTime:
    """An aware start from a wall-clock time in `tz`. Aware datetimes are taken as they are."""
    if timezone.is_aware(when):
        return LocalTime(when, False)
    first, second = when.replace(tzinfo=tz, fold=0), when.replace(tzinfo=tz, fold=1)
    # A wall-clock time that does not exist does not survive the round trip through UTC.
    round_trip = first.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None)
    if round_trip != when:
        raise ValidationError({"starts_at": (
            f"{when:%H:%M} does not exist on {when:%-d %B %Y} in {tz.key}: the clocks go forward that night. "
            "Choose another time.")})
    # In UTC: an aware datetime in an ambiguous hour compares unequal to every other zone's (PEP 495).
    return LocalTime(first.astimezone(UTC), first.utcoffset() != second.utcoffset())


# --- who may ------------------------------------------------------------------------------------------------

def may_schedule(actor, school: School) -> bool:
    return bool(build_scope(actor).roles_at_school(school.pk) & SCHEDULE_ROLES)


def may_change(actor, session: VideoSession) -> bool:
    roles = build_scope(actor).roles_at_school(session.school_id)
    if Role.HEADTEACHER in roles:
        return True
    return bool(roles & SCHEDULE_ROLES) and actor.pk in (session.host_id, session.created_by_id)


# --- the rules shared by scheduling and changing ------------------------------------------------------------

def _clean_minutes(*, school: School, duration_minutes, lead_minutes) -> tuple[int, int]:
    errors = {}
    cap = effective_protocol(school).max_duration_minutes
    if not isinstance(duration_minutes, int) or not 5 <= duration_minutes <= cap:
        errors["duration_minutes"] = f"From 5 to {cap} minutes: the meeting protocol allows at most {cap}."
    low, high = VideoSession.LEAD_MINUTES_MIN, VideoSession.LEAD_MINUTES_MAX
    if not isinstance(lead_minutes, int) or not low <= lead_minutes <= high:
        errors["lead_minutes"] = f"From {low} minutes to {high // 60} hours ({high} minutes)."
    if errors:
        raise ValidationError(errors)
    return duration_minutes, lead_minutes


def _clean_audience(*, school: School, groups, pupils) -> tuple[list[Group], list[Pupil]]:
    groups, pupils = list(groups or ()), list(pupils or ())
    if any(group.school_id != school.pk for group in groups):
        raise ValidationError({"groups": "Choose groups of this school."})
    current = set(Pupil.objects.filter(pk__in=[p.pk for p in pupils], school=school, left_on__isnull=True,
                                       archived_at__isnull=True).values_list("pk", flat=True))
    if any(pupil.pk not in current for pupil in pupils):
        raise ValidationError({"pupils": "Choose pupils who are at this school now."})
    if not groups and not pupils:
        raise ValidationError({"groups": "Choose at least one group or pupil."})
    return groups, pupils


def gate_refusals(gate: Gate) -> list[str]:
    """Why a red gate refuses a session: each reason with who can put it right, as on the gate's card."""
    return [f"The session may not be scheduled: {reason} Who can fix it: {check.fixer}"
            for check in gate.failing for reason in check.reasons or (check.label,)]


def _require_green(*, school, platform, host) -> None:
    gate = session_gate(school=school, platform=platform, host=host)
    if not gate.ok:
        raise ValidationError({"__all__": gate_refusals(gate)})


def _occurrences(start: datetime, tz: ZoneInfo, until: date | None) -> list[tuple[datetime, bool]]:
    """Weekly starts at the same wall-clock time up to and including `until` (a local date)."""
    wall = timezone.localtime(start, tz).replace(tzinfo=None)
    if until is None:
        return [(start, False)]
    if until < wall.date():
        raise ValidationError({"repeat_weekly_until": "The last date must be on or after the first session."})
    found = []
    week = 0
    while (wall + timedelta(weeks=week)).date() <= until:
        if len(found) == MAX_OCCURRENCES:
            raise ValidationError({"repeat_weekly_until": f"At most {MAX_OCCURRENCES} weekly sessions at once."})
        local = local_start(wall + timedelta(weeks=week), tz) if week else LocalTime(start, False)
        found.append((local.at, local.ambiguous))
        week += 1
    return found


def _purpose(school: School, purpose: Purpose | None) -> Purpose:
    if purpose is None:
        purpose = Purpose.objects.filter(organisation_id=school.organisation_id).order_by("id").first()
    if purpose is None or purpose.organisation_id != school.organisation_id:
        raise ValidationError({"__all__": "Parents have not been asked to agree to anything yet: set up what they "
                                          "agree to under Notices first."})
    return purpose


# --- the services -------------------------------------------------------------------------------------------

def session_schedule(*, school: School, actor, title: str, host, platform, groups=(), pupils=(), meeting_url: str,
                     meeting_id: str = "", password: str = "", starts_at: datetime, duration_minutes: int,
                     lead_minutes: int = VideoSession.LEAD_MINUTES_DEFAULT, repeat_weekly_until: date | None = None,
                     purpose: Purpose | None = None, low_coverage_confirmed: bool = False) -> list[VideoSession]:
    """Schedule a session (or a weekly series): one `VideoSession` per occurrence, returned in order.

    `starts_at` is a wall-clock time in the school's time zone (naive), or an aware instant. The consent coverage
    at scheduling is kept in the audit entry; `low_coverage_confirmed` (the form's confirmation that fewer
    children than the organisation's share may attend, `sessions.forms`) is recorded as its own entry."""
    if not may_schedule(actor, school):
        raise PermissionDenied("Only the school's teachers, office and headteacher schedule sessions.")
    if platform is None or platform.organisation_id != school.organisation_id:
        raise ValidationError({"platform": "Choose a platform of this organisation."})
    errors: dict[str, list[str]] = {}
    values = {}
    steps = (
        ("title", lambda: clean_title(title)),
        ("meeting_url", lambda: clean_meeting_url(meeting_url, kind=platform.kind)),
        ("meeting_id", lambda: clean_meeting_id(meeting_id)),
        ("password", lambda: clean_password(password)),
        ("minutes", lambda: _clean_minutes(school=school, duration_minutes=duration_minutes,
                                           lead_minutes=lead_minutes)),
        ("audience", lambda: _clean_audience(school=school, groups=groups, pupils=pupils)),
        ("start", lambda: local_start(starts_at, school.tz)),
    )
    for key, step in steps:  # gather every field's error at once, for the form
        try:
            values[key] = step()
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                errors.setdefault(field, []).extend(messages)
    if errors:
        raise ValidationError(errors)
    start = values["start"].at
    if start <= timezone.now():
        raise ValidationError({"starts_at": "Choose a time in the future."})
    occurrences = _occurrences(start, school.tz, repeat_weekly_until)
    purpose = _purpose(school, purpose)
    password_value, generated = values["password"]
    duration, lead = values["minutes"]
    group_list, pupil_list = values["audience"]
    series = uuid.uuid4() if len(occurrences) > 1 else None
    with transaction.atomic():
        _require_green(school=school, platform=platform, host=host)
        sessions = []
        for at, _ambiguous in occurrences:
            session = VideoSession.objects.create(
                school=school, purpose=purpose, title=values["title"], host=host, platform=platform,
                meeting_url=values["meeting_url"], meeting_id=values["meeting_id"], password=password_value,
                starts_at=at, duration_minutes=duration, lead_minutes=lead, series=series, created_by=actor,
            )
            session.groups.set(group_list)
            session.pupils.set(pupil_list)
            sessions.append(session)
        coverage = session_coverage(sessions[0])
        # Never the link or the password: audit entries are kept for ever (promise 8).
        audit_log(actor=actor, action="session.scheduled", obj=sessions[0], school=school, data={
            "session_ids": [s.pk for s in sessions], "series": str(series) if series else None,
            "starts_at": [s.starts_at.isoformat() for s in sessions], "duration_minutes": duration,
            "lead_minutes": lead, "platform_id": platform.pk, "host_id": host.pk,
            "group_ids": sorted(g.pk for g in group_list), "pupil_count": len(pupil_list),
            "password_generated": generated, "coverage": coverage.as_data(),
        })
        if low_coverage_confirmed and coverage.below_threshold:
            audit_log(actor=actor, action="session.low_coverage_confirmed", obj=sessions[0], school=school,
                      data={"session_ids": [s.pk for s in sessions], "coverage": coverage.as_data()})
        # A session already due (a short lead time) is planned now rather than at the next beat.
        sessions_plan_soon(sessions=sessions)
    return sessions


UNSET = object()


def session_update(*, session: VideoSession, actor, title=UNSET, host=UNSET, platform=UNSET, groups=UNSET,
                   pupils=UNSET, meeting_url=UNSET, meeting_id=UNSET, password=UNSET, starts_at=UNSET,
                   duration_minutes=UNSET, lead_minutes=UNSET, low_coverage_confirmed: bool = False) -> VideoSession:
    """Edit or reschedule one occurrence. Only what is passed changes. The revision goes up when what an
    invitation says changes (time, link, meeting ID, password), so that sent invitations are sent again.
    A blank `password` keeps the current one. A change of groups or pupils keeps the new consent coverage in
    the audit entry, and `low_coverage_confirmed` records the form's confirmation of a shortfall."""
    with transaction.atomic():
        # The session row only (not its school or platform), and NO KEY: rows that merely reference the session or
        # the school (alerts, outbox emails, a planner's new invitations) are not blocked by it.
        session = (VideoSession.objects.select_for_update(no_key=True, of=("self",))
                   .select_related("school", "platform").get(pk=session.pk))
        school = session.school
        if not may_change(actor, session):
            raise PermissionDenied("Only the host, whoever scheduled it and the headteacher change a session.")
        if session.status != VideoSession.Status.SCHEDULED:
            raise ValidationError({"__all__": "A cancelled session cannot be changed."})
        if session.starts_at <= timezone.now():
            raise ValidationError({"__all__": "The session has started: it can no longer be changed."})
        new_platform = session.platform if platform is UNSET else platform
        if new_platform is None or new_platform.organisation_id != school.organisation_id:
            raise ValidationError({"platform": "Choose a platform of this organisation."})
        new_host = session.host if host is UNSET else host
        errors: dict[str, list[str]] = {}
        changes: dict = {}

        def attempt(step):
            try:
                step()
            except ValidationError as error:
                for field, messages in error.message_dict.items():
                    errors.setdefault(field, []).extend(messages)

        def set_title():
            changes["title"] = clean_title(title)

        def set_url():
            changes["meeting_url"] = clean_meeting_url(session.meeting_url if meeting_url is UNSET else meeting_url,
                                                       kind=new_platform.kind)

        def set_meeting_id():
            changes["meeting_id"] = clean_meeting_id(meeting_id)

        def set_password():
            if (password or "").strip():
                changes["password"] = clean_password(password)[0]

        def set_minutes():
            duration, lead = _clean_minutes(
                school=school,
                duration_minutes=session.duration_minutes if duration_minutes is UNSET else duration_minutes,
                lead_minutes=session.lead_minutes if lead_minutes is UNSET else lead_minutes)
            changes["duration_minutes"], changes["lead_minutes"] = duration, lead

        def set_audience():
            new_groups, new_pupils = _clean_audience(
                school=school, groups=session.groups.all() if groups is UNSET else groups,
                pupils=session.pupils.all() if pupils is UNSET else pupils)
            changes["_groups"], changes["_pupils"] = new_groups, new_pupils

        def set_start():
            at = local_start(starts_at, school.tz).at
            if at <= timezone.now():
                raise ValidationError({"starts_at": "Choose a time in the future."})
            changes["starts_at"] = at

        if title is not UNSET:
            attempt(set_title)
        attempt(set_url)  # always: a changed platform must still accept the link
        if meeting_id is not UNSET:
            attempt(set_meeting_id)
        if password is not UNSET:
            attempt(set_password)
        attempt(set_minutes)  # always: the protocol may have tightened since
        attempt(set_audience)
        if starts_at is not UNSET:
            attempt(set_start)
        if errors:
            raise ValidationError(errors)
        _require_green(school=school, platform=new_platform, host=new_host)

        previous_starts_at = session.starts_at
        changed = []
        for name in ("title", "meeting_url", "meeting_id", "password", "duration_minutes", "lead_minutes",
                     "starts_at"):
            if name in changes and changes[name] != getattr(session, name):
                setattr(session, name, changes[name])
                changed.append(name)
        if new_platform.pk != session.platform_id:
            session.platform = new_platform
            changed.append("platform")
        if new_host.pk != session.host_id:
            session.host = new_host
            changed.append("host")
        if {g.pk for g in changes["_groups"]} != set(session.groups.values_list("pk", flat=True)):
            session.groups.set(changes["_groups"])
            changed.append("groups")
        if {p.pk for p in changes["_pupils"]} != set(session.pupils.values_list("pk", flat=True)):
            session.pupils.set(changes["_pupils"])
            changed.append("pupils")
        if not changed:
            return session
        revised = set(changed) & set(CHANGES_REVISION)
        if revised:
            session.revision += 1
        session.save()
        data = {"changed": changed, "revision": session.revision, "starts_at": session.starts_at.isoformat()}
        if revised or "lead_minutes" in changed:
            # Invitations already sent are sent again (or wait for the new send time), and unsent ones follow the
            # new send time; see sessions/changes.py.
            result = deliveries_revise(session=session, previous_starts_at=previous_starts_at)
            data["invitations"] = {"resent": result.resent, "waiting": result.waiting,
                                   "told_moved": result.moved_told, "queued_follow": result.followed}
        coverage = session_coverage(session) if {"groups", "pupils"} & set(changed) else None
        if coverage is not None:
            data["coverage"] = coverage.as_data()
        # Field names only: never the link or the password.
        audit_log(actor=actor, action="session.updated", obj=session, school=school, data=data)
        if coverage is not None and low_coverage_confirmed and coverage.below_threshold:
            audit_log(actor=actor, action="session.low_coverage_confirmed", obj=session, school=school,
                      data={"session_ids": [session.pk], "coverage": coverage.as_data()})
        if {"starts_at", "lead_minutes"} & set(changed):
            sessions_plan_soon(sessions=[session])  # moved into its send window: planned now
    return session


def session_cancel(*, session: VideoSession, actor, reason: str) -> VideoSession:
    """Cancel one occurrence, with the reason staff give (kept in the audit trail)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the session is cancelled."})
    if len(reason) > 1000:
        raise ValidationError({"reason": "At most 1000 characters."})
    with transaction.atomic():
        session = (VideoSession.objects.select_for_update(no_key=True, of=("self",))
                   .select_related("school").get(pk=session.pk))
        if not may_change(actor, session):
            raise PermissionDenied("Only the host, whoever scheduled it and the headteacher cancel a session.")
        if session.status == VideoSession.Status.CANCELLED:
            raise ValidationError({"__all__": "The session is already cancelled."})
        if session.ends_at <= timezone.now():
            raise ValidationError({"__all__": "The session is over: there is nothing to cancel."})
        session.status = VideoSession.Status.CANCELLED
        session.cancelled_at = timezone.now()
        session.cancelled_by = actor
        session.cancel_reason = reason
        session.save(update_fields=["status", "cancelled_at", "cancelled_by", "cancel_reason"])
        # Unsent invitations are cancelled; those already invited are told (never the reason: it may be internal).
        result = deliveries_cancel(session=session)
        audit_log(actor=actor, action="session.cancelled", obj=session, school=session.school,
                  data={"reason": reason, "starts_at": session.starts_at.isoformat(),
                        "invitations_cancelled": result.cancelled, "guardians_told": result.told})
    return session


def session_password_reveal(*, session: VideoSession, actor) -> str:
    """The password, for the host (or creator, or headteacher) to set it on the platform. Audited, never logged."""
    if not may_change(actor, session):
        raise PermissionDenied("Only the host, whoever scheduled it and the headteacher see the password.")
    with transaction.atomic():
        audit_log(actor=actor, action="session.password_revealed", obj=session, school=session.school, data={})
    return session.password
