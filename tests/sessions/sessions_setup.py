"""Sessions for tests: a green gate built through the real services, and a session scheduled through
`sessions.services.session_schedule`.

    session = scheduled_session(personas)                      # tomorrow 09:00 at personas.school, Zoom
    session = scheduled_session(personas, groups=[group], starts_at=dt.datetime(2027, 3, 29, 9, 0))
"""

import datetime as dt

from django.utils import timezone

from consent.models import Purpose
from pia.models import Platform
from riskassess.services import video_lessons_assessment_status
from sessions.models import VideoSession
from sessions.services import session_schedule
from tests.factories import GroupFactory, PurposeFactory
from tests.pia.pia_signed import signed_pia
from tests.riskassess.matrix_reviews import approved_assessment

ZOOM_URL = "https://us02web.zoom.us/j/81234567890"


def approved_platform(personas, *, name: str = "Zoom", kind: str = Platform.Kind.ZOOM) -> Platform:
    """A platform of the organisation approved by a PIA signed through the sign-off services (made once)."""
    platform = Platform.objects.filter(organisation=personas.organisation, name=name).first()
    if platform is None:
        version = signed_pia(personas, title=f"{name} PIA")
        platform = Platform.objects.create(organisation=personas.organisation, name=name, kind=kind, pia=version.pia)
    return platform


def green_gate(personas) -> Platform:
    """Make the gate green at `personas.school` for the teacher as host: a signed PIA approving a Zoom platform
    and an approved video-lessons risk assessment. Returns the platform."""
    platform = approved_platform(personas)
    if not video_lessons_assessment_status(school=personas.school).ok:
        approved_assessment(personas.school, personas.headteacher)
    return platform


def video_purpose(organisation) -> Purpose:
    return Purpose.objects.filter(organisation=organisation).order_by("id").first() or PurposeFactory(
        organisation=organisation)


def tomorrow_at(school, hour: int = 9, minute: int = 0) -> dt.datetime:
    """A naive wall-clock time tomorrow in the school's time zone (what the schedule form passes)."""
    day = timezone.localdate(timezone.now(), school.tz) + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(hour, minute))


def schedule_kwargs(personas, **overrides) -> dict:
    """Everything `session_schedule` needs for a valid session at `personas.school` (the gate made green)."""
    school = overrides.get("school", personas.school)
    values = {
        "school": school,
        "actor": personas.teacher,
        "title": "Year 3 story time",
        "host": personas.teacher,
        "platform": green_gate(personas),
        "meeting_url": ZOOM_URL,
        "meeting_id": "812 3456 7890",
        "password": "",
        "starts_at": tomorrow_at(school),
        "duration_minutes": 30,
        "lead_minutes": VideoSession.LEAD_MINUTES_DEFAULT,
        "purpose": video_purpose(school.organisation),
    }
    values.update(overrides)
    if "groups" not in values and "pupils" not in values:
        values["groups"] = [GroupFactory(school=school)]
    return values


def scheduled_session(personas, **overrides) -> VideoSession:
    """One session (the first of a series when `repeat_weekly_until` is given), scheduled through the service."""
    return session_schedule(**schedule_kwargs(personas, **overrides))[0]


def session_row(school, host, *, created_by=None, **fields) -> VideoSession:
    """A session written straight to the table, without the gate or the rules: only for tests of who may see
    and change a session (the role matrix), where building a signed PIA for every persona would be slow."""
    platform = Platform.objects.get_or_create(organisation=school.organisation, name="Zoom",
                                              defaults={"kind": Platform.Kind.ZOOM})[0]
    values = {
        "school": school, "purpose": video_purpose(school.organisation), "title": "Story time", "host": host,
        "platform": platform, "meeting_url": ZOOM_URL, "password": "Secret2345",
        "starts_at": timezone.now() + dt.timedelta(days=1), "duration_minutes": 30, "created_by": created_by or host,
    }
    values.update(fields)
    return VideoSession.objects.create(**values)


def flag_the_risk_assessment(personas) -> None:
    """The school's video-lessons assessment is flagged for review (as after an incident): every lesson of the
    school turns red, and the host stays on the staff."""
    from riskassess.models import Assessment
    from riskassess.services import assessment_flag_for_review

    for assessment in Assessment.objects.filter(school=personas.school):
        assessment_flag_for_review(assessment=assessment, reason="Uninvited person joined", actor=personas.headteacher)
