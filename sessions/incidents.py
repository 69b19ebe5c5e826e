"""Incidents after they are reported (`sessions.host.incident_report`): the log of a school or an organisation,
one incident's report with its review, and what the headteacher decides about it.

- An incident that flagged a risk assessment is under review: it closes when that review is done, "reviewed, no
  change needed" or a revised version approved (`riskassess.services`, which closes it through
  `sessions.incident_status`).
- Any other incident (a technical problem) is open until the headteacher closes it with a note
  (`incident_close`).
- A safeguarding concern may be escalated by its reviewer to stop lessons in every school of the organisation
  until the review (`incident_escalate`).

Who reads the log: the headteacher of the school, and the DPO, SIRO and organisation admin across the
organisation (`LOG_ROLES`). What happened (the text) stays with those `host.may_read_incident` allows.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from riskassess.models import Assessment, ReviewFlag
from riskassess.services import APPROVE_ROLES, may_review_flag, review_flag_escalate
from schools.audit import audit_log
from schools.models import Role
from schools.scope import StaffScope, build_scope

from .models import Incident, VideoSession

LOG_ROLES = frozenset({Role.HEADTEACHER, Role.DPO, Role.SIRO, Role.ORG_ADMIN})
NOTE_MAX = 2000
STOPPED_DAYS = 14  # the lessons the headteacher's email counts as stopped: those of the next two weeks


def review_stops(*, school, flagged: list[Assessment], now: datetime | None = None) -> dict:
    """What the headteacher's incident email says when the incident flagged risk assessments: each one's page
    (where the review is), and the school whose lessons stop until it is reviewed, with how many of them in the
    next `STOPPED_DAYS` days. Nothing when it flagged none."""
    if not flagged:
        return {}
    now = now or timezone.now()
    stopped = VideoSession.objects.filter(school=school, status=VideoSession.Status.SCHEDULED, starts_at__gte=now,
                                          starts_at__lt=now + timedelta(days=STOPPED_DAYS)).count()
    return {"reviews": [{"title": assessment.title,
                         "link": settings.SITE_URL + reverse("riskassess:assessment", args=[assessment.pk]) + "#review"}
                        for assessment in flagged],
            "stopped_school": school.name, "lessons_stopped": stopped, "stopped_days": STOPPED_DAYS}


def incidents_for_log(school_ids) -> QuerySet:
    """The incidents of these schools, newest first, with what a row of the log shows (one query a page)."""
    return (Incident.objects.filter(session__school_id__in=list(school_ids))
            .select_related("session__school", "reported_by", "flagged_assessment", "closed_by")
            .order_by("-reported_at", "-pk"))


@dataclass(frozen=True)
class LogFilter:
    school_id: int | None = None
    kind: str = ""
    status: str = ""
    reported_from: date | None = None
    reported_to: date | None = None

    def apply(self, incidents: QuerySet, tz: ZoneInfo) -> QuerySet:
        """Days are the log's own (the school's, or the organisation's), from midnight to midnight."""
        if self.school_id:
            incidents = incidents.filter(session__school_id=self.school_id)
        if self.kind:
            incidents = incidents.filter(kind=self.kind)
        if self.status:
            incidents = incidents.filter(status=self.status)
        if self.reported_from:
            incidents = incidents.filter(reported_at__gte=datetime.combine(self.reported_from, time.min, tzinfo=tz))
        if self.reported_to:
            next_day = self.reported_to + timedelta(days=1)
            incidents = incidents.filter(reported_at__lt=datetime.combine(next_day, time.min, tzinfo=tz))
        return incidents


def may_close_incident(scope: StaffScope, incident: Incident) -> bool:
    """The headteacher of the school (or the organisation admin, who holds every school's roles)."""
    return bool(scope.roles_at_school(incident.session.school_id) & APPROVE_ROLES)


def may_escalate_incident(scope: StaffScope, incident: Incident, flags: list[ReviewFlag]) -> bool:
    return (incident.kind == Incident.Kind.SAFEGUARDING and incident.status != Incident.Status.CLOSED
            and any(flag.is_open and not flag.is_escalated and may_review_flag(scope, flag) for flag in flags))


def incident_close(*, incident: Incident, actor, note: str) -> Incident:
    """Close an open incident (one that flagged no risk assessment) with the headteacher's note. An incident
    under review closes with its review, never here: its risk assessment would stay flagged."""
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": "Write a closing note: what was done, and whether anything changes."})
    if len(note) > NOTE_MAX:
        raise ValidationError({"note": f"Keep the note under {NOTE_MAX} characters."})
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        school = incident.session.school
        if not may_close_incident(build_scope(actor), incident):
            raise PermissionDenied("Only the headteacher of the school can close an incident.")
        if incident.status == Incident.Status.CLOSED:
            raise ValidationError("This incident was closed meanwhile.")
        if incident.status == Incident.Status.UNDER_REVIEW:
            raise ValidationError("This incident closes when its risk assessment is reviewed: open the assessment "
                                  "and choose “Reviewed — no change needed” or “Revise”.")
        incident.status, incident.closing_note = Incident.Status.CLOSED, note
        incident.closed_at, incident.closed_by = timezone.now(), actor
        incident.save(update_fields=["status", "closing_note", "closed_at", "closed_by"])
        audit_log(actor=actor, action="session.incident_closed", obj=incident, school=school,
                  data={"note": note, "by_review": False})
    return incident


def incident_escalate(*, incident: Incident, actor, reason: str) -> list[ReviewFlag]:
    """A safeguarding concern: stop lessons in every school of the organisation until its risk assessment is
    reviewed. Its reviewer decides (`riskassess.services.may_review_flag`), with a reason."""
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if incident.kind != Incident.Kind.SAFEGUARDING:
            raise ValidationError("Only a safeguarding concern can stop lessons in every school.")
        if incident.status == Incident.Status.CLOSED:
            raise ValidationError("This incident is closed: its risk assessment was reviewed.")
        flags = list(incident.review_flags.filter(cleared_at__isnull=True, escalated_at__isnull=True)
                     .select_related("assessment", "school"))
        if not flags:
            raise ValidationError("Its risk assessment is not under review any more, or already stops lessons in "
                                  "every school.")
        escalated = [review_flag_escalate(flag=flag, actor=actor, reason=reason) for flag in flags]
    return escalated


def incident_flags(incident: Incident) -> list[ReviewFlag]:
    return list(incident.review_flags.select_related("assessment__organisation", "school", "cleared_by",
                                                     "escalated_by").order_by("pk"))
