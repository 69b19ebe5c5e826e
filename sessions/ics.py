"""The invitation's calendar attachment (RFC 5545), built with `icalendar`.

One event per session: the UID is the session's (stable across revisions), SEQUENCE is its revision, so a
calendar that already holds the event updates it when a changed invitation arrives. Times are in UTC.
The meeting password is deliberately left out of the .ics: calendar entries are synchronised to phones,
shared calendars and third-party services, and outlive the email; the password stays in the email only.
The link is in the description, because that is what a parent taps at the time of the lesson.
"""

from datetime import UTC, datetime

from django.conf import settings
from icalendar import Calendar, Event

from .models import VideoSession


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def invitation_ics(session: VideoSession) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//Gatehouse//Live video lessons//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"session-{session.pk}@{settings.EMAIL_MESSAGE_ID_DOMAIN}")
    event.add("sequence", session.revision)
    event.add("dtstamp", _utc(session.created_at))
    event.add("dtstart", _utc(session.starts_at))
    event.add("dtend", _utc(session.ends_at))
    event.add("summary", f"{session.title} ({session.school.name})")
    meeting_id = f"Meeting ID: {session.meeting_id}\n" if session.meeting_id else ""
    event.add("description", f"Live video lesson with {session.school.name}.\n"
                             f"Join: {session.meeting_url}\n{meeting_id}"
                             "The password is in the invitation email.")
    event.add("location", session.meeting_url)
    calendar.add_component(event)
    return calendar.to_ical()
