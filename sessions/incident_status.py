"""An incident's status as its risk assessment's review moves: the one step that the risk register's review
calls (`riskassess.services`), inside the review's own transaction.

It sits low on the ladder (models and the audit only), so that the risk register, which the rest of the sessions
build on, can call it without importing the sessions' workflows.
"""

from datetime import datetime

from django.db.models import Exists, OuterRef

from riskassess.models import ReviewFlag
from schools.audit import audit_log
from schools.models import School

from .models import Incident, VideoSession


def incidents_close_for_flags(*, flag_ids: list[int], actor, note: str, now: datetime) -> list[Incident]:
    """The incidents that raised `flag_ids` and have no open flag left are closed, the review's reason or
    outcome as their closing note. Called by the review that cleared the flags, in its transaction."""
    raised = Incident.review_flags.through.objects.filter(reviewflag_id__in=flag_ids).values("incident_id")
    still_open = ReviewFlag.objects.filter(incidents=OuterRef("pk"), cleared_at__isnull=True)
    incidents = list(Incident.objects.select_for_update().filter(pk__in=raised)
                     .exclude(status=Incident.Status.CLOSED).exclude(Exists(still_open)).order_by("pk"))
    school_of = dict(VideoSession.objects.filter(pk__in={i.session_id for i in incidents})
                     .values_list("pk", "school_id"))
    schools = School.objects.in_bulk(set(school_of.values()))
    for incident in incidents:
        incident.status, incident.closing_note = Incident.Status.CLOSED, note
        incident.closed_at, incident.closed_by = now, actor
        incident.save(update_fields=["status", "closing_note", "closed_at", "closed_by"])
        audit_log(actor=actor, action="session.incident_closed", obj=incident,
                  school=schools[school_of[incident.session_id]], data={"note": note, "by_review": True})
    return incidents
