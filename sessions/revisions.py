"""What changed in a session and what its guardians were told, read from its audit entries (field names
and start times, never values): the invitation's "this replaces the earlier one" line (`sessions.invitation`)
and the "session moved" email (`sessions.changes`)."""

from collections.abc import Iterable, Sequence
from datetime import datetime

from schools.models import AuditEntry

from .models import VideoSession

# What an invitation says, in the words of the "this replaces the earlier invitation" line.
CHANGE_LABELS = {
    "starts_at": "the time",
    "meeting_url": "the meeting link",
    "meeting_id": "the meeting ID",
    "password": "the password",
}


def _session_entries(session_ids: Iterable[int], action: str):
    return AuditEntry.objects.filter(action=action, object_type=VideoSession._meta.label_lower,
                                     object_id__in=[str(pk) for pk in session_ids])


def revision_changes(*, session: VideoSession, since_revision: int) -> list[str]:
    """What changed in the invitation since `since_revision`, in words ("the time", "the password"), read
    from the session's `session.updated` audit entries (field names only: never values). One query."""
    changed: set[str] = set()
    for data in _session_entries([session.pk], "session.updated").values_list("data", flat=True):
        if since_revision < (data.get("revision") or 0) <= session.revision:
            changed.update(data.get("changed") or ())
    return [label for name, label in CHANGE_LABELS.items() if name in changed]


def starts_told(sessions: Sequence[VideoSession], revisions: set[tuple[int, int]]) -> dict[tuple[int, int], datetime]:
    """(session id, revision) → the start time that revision said. Each `session.updated` entry records the
    start after the change; before any, the start is the one scheduled. Two queries."""
    found: dict[tuple[int, int], tuple[int, datetime]] = {}
    for object_id, seq, data in _session_entries([s.pk for s in sessions], "session.updated").values_list(
            "object_id", "seq", "data"):
        for session_id, revision in revisions:
            applies = str(session_id) == object_id and (data.get("revision") or 0) <= revision
            if applies and data.get("starts_at") and seq > found.get((session_id, revision), (0, None))[0]:
                found[(session_id, revision)] = (seq, datetime.fromisoformat(data["starts_at"]))
    told = {key: at for key, (_, at) in found.items()}
    missing = {session_id for session_id, revision in revisions if (session_id, revision) not in told}
    if missing:
        # The scheduling entry names every occurrence of a series, with its start, in order.
        earliest = min(s.created_at for s in sessions if s.pk in missing)
        school_ids = {s.school_id for s in sessions if s.pk in missing}
        for data in AuditEntry.objects.filter(action="session.scheduled", school_id__in=school_ids,
                                              created_at__gte=earliest).order_by("seq").values_list("data",
                                                                                                   flat=True)[:500]:
            for session_id, at in zip(data.get("session_ids") or (), data.get("starts_at") or (), strict=False):
                if session_id in missing:
                    for revision in {r for s, r in revisions if s == session_id and (s, r) not in told}:
                        told[(session_id, revision)] = datetime.fromisoformat(at)
    return told
