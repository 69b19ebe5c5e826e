"""The host's side of a session: what its pages read (invitations, roster, checklist, alerts, incidents) and
the two things the host records once it has started (`attendance_record`, `incident_report`).

Every read takes a constant number of queries, however many children and invitations a session has: the
roster and the invitations' children come from the dispatcher's own bulk reads (`sessions.dispatch`), so the
page and the dispatcher never disagree on who may be let in.
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Case, Count, IntegerField, Q, QuerySet, Value, When
from django.urls import reverse
from django.utils import timezone

from consent.imports.reading import year_group_name
from consent.models import Guardianship, Pupil
from lib.names import NameParts, distinct_names
from outbox.services import email_queue
from riskassess.models import Assessment, AssessmentVersion, Hazard
from riskassess.services import assessment_flag_for_review
from schools.audit import audit_log
from schools.models import SCHOOL_ROLES, DigestItem, Membership, Role
from schools.notices import digest_items_add
from schools.scope import build_scope

from .delivery_steps import session_path
from .eligibility import eligible_children, read_registry, session_pupils
from .history import Story, invitation_stories
from .incidents import review_stops
from .models import Attendance, Delivery, Incident, SessionAlert, VideoSession
from .protocol import effective_protocol, host_checklist
from .services import may_change

Status = Delivery.Status

# The order of the invitations on the page: what needs the host's attention first.
STATUS_ORDER = (Status.FAILED, Status.RETRY, Status.SENDING, Status.PENDING, Status.SENT, Status.SKIPPED,
                Status.CANCELLED)
DESCRIPTION_MAX = 5000


def session_started(session: VideoSession, now: datetime | None = None) -> bool:
    return (now or timezone.now()) >= session.starts_at


def session_page_url(session: VideoSession) -> str:
    return settings.SITE_URL + reverse("video_sessions:session", kwargs={"pk": session.pk})


# --- Invitations ----------------------------------------------------------------------------------------------


def delivery_counts(session: VideoSession) -> list[dict]:
    """Every status with its count (zeros included, in page order). One query."""
    found = dict(Delivery.objects.filter(session=session).order_by().values_list("status").annotate(n=Count("pk")))
    return [{"status": s.value, "label": s.label, "count": found.get(s.value, 0)} for s in STATUS_ORDER]


def deliveries_for_page(session: VideoSession, status: str | None = None) -> QuerySet:
    """The session's invitations, problems first, then by guardian; `status` filters."""
    rows = Delivery.objects.filter(session=session).select_related("guardian")
    if status:
        rows = rows.filter(status=status)
    order = Case(*[When(status=s, then=Value(i)) for i, s in enumerate(STATUS_ORDER)], output_field=IntegerField())
    return rows.annotate(status_order=order).order_by("status_order", "guardian__last_name", "guardian__first_name",
                                                      "pk")


@dataclass
class DeliveryRow:
    delivery: Delivery
    children: list[str]
    relationships: list[str]
    story: Story


def delivery_rows(deliveries: Iterable[Delivery]) -> list[DeliveryRow]:
    """The children each invitation names (first names; the planner records them and the claim refreshes them),
    the guardian's relationship to them and the invitation's story (`sessions.history`): three queries for a
    whole page. A child erased since shows no name."""
    deliveries = list(deliveries)
    pupil_ids = {pk for d in deliveries for pk in d.pupil_ids}
    names = dict(Pupil.objects.filter(pk__in=pupil_ids).values_list("pk", "first_name"))
    relationship_of = {
        (g.guardian_id, g.pupil_id): g.get_relationship_display()
        for g in Guardianship.objects.filter(pupil_id__in=pupil_ids,
                                             guardian_id__in={d.guardian_id for d in deliveries})
    }
    stories = invitation_stories(deliveries)
    rows = []
    for delivery in deliveries:
        children = [names[pk] for pk in delivery.pupil_ids if pk in names]
        relationships = sorted({relationship_of[(delivery.guardian_id, pk)] for pk in delivery.pupil_ids
                                if (delivery.guardian_id, pk) in relationship_of})
        rows.append(DeliveryRow(delivery, children, relationships, stories[delivery.pk]))
    return rows


def session_alerts(session: VideoSession, limit: int = 20) -> list[SessionAlert]:
    return list(SessionAlert.objects.filter(session=session).order_by("-created_at", "-pk")[:limit])


@dataclass(frozen=True)
class AlertRow:
    """An alert as the session page lists it. `resolved`: a "may not go ahead" alert that is no longer true, the
    checks passing again since (the page's gate is green now, or the alert is of an earlier red spell)."""

    alert: SessionAlert
    resolved: bool = False

    @property
    def reasons(self) -> str:
        return self.alert.message.removeprefix(SessionAlert.GATE_RED_PREFIX)


def alert_rows(alerts: Iterable[SessionAlert], *, gate_ok: bool, red_since: datetime | None) -> list[AlertRow]:
    """The alerts with their "may not go ahead" ones marked resolved when the gate computed for the page is
    green: the watch clears `gate_red_since` only at its next run, and the page must not say both."""
    return [AlertRow(alert, alert.kind == SessionAlert.Kind.GATE_RED
                     and (gate_ok or red_since is None or alert.created_at < red_since))
            for alert in alerts]


# --- Roster ---------------------------------------------------------------------------------------------------


@dataclass
class RosterChild:
    pk: int
    name: str  # the first name, with as much more as it takes to tell two children apart (`children_names`)
    admitted: bool


@dataclass
class Roster:
    admitted: list[RosterChild] = field(default_factory=list)
    refused: list[RosterChild] = field(default_factory=list)
    shared_first_names: list[str] = field(default_factory=list)

    @property
    def children(self) -> list[RosterChild]:
        return sorted(self.admitted + self.refused, key=lambda c: (c.name.casefold(), c.pk))


def children_names(first_names: Mapping[int, str]) -> dict[int, str]:
    """Pupil id → the name a host reads on the roster and the attendance form: the first name, unless two
    children of the list share it (`lib.names.distinct_names`). One query, and only when a first name is shared."""
    counts = Counter(name.strip().casefold() for name in first_names.values())
    shared = [pk for pk, name in first_names.items() if counts[name.strip().casefold()] > 1]
    people = {pk: NameParts(name, "") for pk, name in first_names.items()}
    rows = Pupil.objects.filter(pk__in=shared).values_list("pk", "last_name", "year_group", "mis_id") if shared else []
    for pk, last, year, mis_id in rows:
        people[pk] = NameParts(first_names[pk], last, (year_group_name(year), f"MIS id {mis_id}" if mis_id else ""))
    return distinct_names(people)


def session_roster(session: VideoSession, now: datetime | None = None) -> Roster:
    """The current children of the session (groups and hand-picked; not those who left or were erased), split
    by the dispatcher's rule: a child may be admitted when at least one guardian may be invited for them now
    (`eligible_children`); any other child must not be let in from the waiting room. Seven queries, and one
    more when two children share a first name."""
    now = now or timezone.now()
    pupil_ids = session_pupils([session.pk]).get(session.pk, set())
    registry = read_registry(pupil_ids, [session.purpose_id], now)
    eligible = eligible_children(registry, registry.pupils, session.purpose_id)
    admitted_ids = {pk for children in eligible.values() for pk in children}
    first_names = {pk: pupil.first_name for pk, pupil in registry.pupils.items()}
    counts = Counter(name.strip().casefold() for name in first_names.values())
    roster = Roster(shared_first_names=sorted(
        {name.strip() for name in first_names.values() if counts[name.strip().casefold()] > 1}, key=str.casefold))
    for pk, name in children_names(first_names).items():
        child = RosterChild(pk, name, pk in admitted_ids)
        (roster.admitted if child.admitted else roster.refused).append(child)
    roster.admitted.sort(key=lambda c: (c.name.casefold(), c.pk))
    roster.refused.sort(key=lambda c: (c.name.casefold(), c.pk))
    return roster


# --- Checklist ------------------------------------------------------------------------------------------------


def applicable_assessment_versions(school) -> list[AssessmentVersion]:
    """The approved video-lessons assessment versions that apply to `school`: its own, or else the
    organisation-wide ones (the rule of `riskassess.services.video_lessons_assessment_status`). One query."""
    approved = list(
        AssessmentVersion.objects.filter(
            status=AssessmentVersion.Status.APPROVED, assessment__topic=Assessment.Topic.VIDEO_LESSONS,
            assessment__organisation_id=school.organisation_id,
        )
        .filter(Q(assessment__school=school) | Q(assessment__school__isnull=True))
        .select_related("assessment")
        .order_by("-approved_at", "-pk")
    )
    return [v for v in approved if v.assessment.school_id == school.pk] or approved


@dataclass
class Checklist:
    protocol: list[str]
    versions: list[AssessmentVersion]
    controls: list[Hazard]  # each hazard row with its controls text, of the versions above


def session_checklist(session: VideoSession) -> Checklist:
    versions = applicable_assessment_versions(session.school)
    controls = list(Hazard.objects.filter(version__in=versions).exclude(controls="")
                    .select_related("version__assessment").order_by("version__assessment__title", "position", "pk"))
    return Checklist(host_checklist(effective_protocol(session.school)), versions, controls)


# --- Attendance -----------------------------------------------------------------------------------------------


@dataclass
class AttendanceSheet:
    """The attendance form of a session. `expected`: the children who were invited (an invitation naming them
    was sent, even if their parent withdrew since: the link still works) or who may be admitted now; each needs
    an answer. `others`: the rest of the session's children, answered only when one of them joined anyway."""

    expected: list[RosterChild]
    others: list[RosterChild]
    invited: set[int]
    recorded: dict[int, Attendance]


def invited_children(session: VideoSession) -> set[int]:
    """The children named by an invitation of the session that went out (or may have: `sending`). One query."""
    went_out = (Q(status__in=[Status.SENT, Status.SENDING]) | Q(sent_revision__isnull=False)
                | Q(sent_at__isnull=False))
    return {pk for pupil_ids in Delivery.objects.filter(went_out, session=session).values_list("pupil_ids", flat=True)
            for pk in pupil_ids}


def attendance_sheet(session: VideoSession) -> AttendanceSheet:
    """Who the attendance form asks about, and what was recorded so far. Ten queries at most."""
    roster = session_roster(session)
    invited = invited_children(session)
    expected = [c for c in roster.children if c.admitted or c.pk in invited]
    others = [c for c in roster.children if not (c.admitted or c.pk in invited)]
    recorded = {a.pupil_id: a for a in Attendance.objects.filter(session=session)}
    return AttendanceSheet(expected, others, invited, recorded)


def _may_record(actor, session: VideoSession) -> None:
    if not may_change(actor, session):
        raise PermissionDenied


def _check_started(session: VideoSession, what: str) -> None:
    if session.status == VideoSession.Status.CANCELLED:
        raise ValidationError(f"The session was cancelled: there is no {what} to record.")
    if not session_started(session):
        local = timezone.localtime(session.starts_at, session.school.tz)
        raise ValidationError(f"The {what} opens at the start of the session, {local:%-d %B at %H:%M}.")


@dataclass(frozen=True)
class AttendanceSaved:
    children: int  # rows given
    changed: int  # rows new or different from what was recorded (0: a repeated submission, nothing recorded)


def attendance_record(*, session: VideoSession, actor, rows: Mapping[int, tuple[bool, bool | None]]) -> AttendanceSaved:
    """Record who was present (and whether an adult was with them) for the children of `rows`, pupil id →
    (present, adult present: True, False or None for not known): any of the session's children, so the host
    answers for the children invited and for anyone else who joined. All rows or none; a second save updates
    the rows (one per session and pupil). A repeated submission (a double tap, a second tab) that changes
    nothing records nothing, not even an audit entry (promise 12). The host, the creator and the headteacher
    record (`may_change`)."""
    _may_record(actor, session)
    _check_started(session, "attendance")
    children = set(session_pupils([session.pk]).get(session.pk, set()))
    if not rows:
        raise ValidationError("Nothing to save: answer for at least one child.")
    if set(rows) - children:
        raise ValidationError("Record attendance only for the children of this session.")
    now = timezone.now()
    records = [
        Attendance(session=session, pupil_id=pupil_id, present=bool(present),
                   adult_present=adult if present else None, recorded_by=actor, recorded_at=now)
        for pupil_id, (present, adult) in sorted(rows.items())
    ]
    with transaction.atomic():
        # Under the session's lock, so that of two submissions at once the second sees the first's rows.
        VideoSession.objects.select_for_update().filter(pk=session.pk).first()
        before = {pupil_id: (present, adult) for pupil_id, present, adult in Attendance.objects.filter(
            session=session, pupil_id__in=list(rows)).values_list("pupil_id", "present", "adult_present")}
        changed = [r for r in records if before.get(r.pupil_id) != (r.present, r.adult_present)]
        if not changed:
            return AttendanceSaved(len(records), 0)
        Attendance.objects.bulk_create(changed, update_conflicts=True, unique_fields=["session", "pupil"],
                                       update_fields=["present", "adult_present", "recorded_by", "recorded_at"])
        present = sum(1 for r in records if r.present)
        audit_log(actor=actor, action="session.attendance_recorded", obj=session, data={
            "children": len(records), "present": present, "absent": len(records) - present,
            "adult_present": sum(1 for r in records if r.adult_present is True),
            "adult_absent": sum(1 for r in records if r.adult_present is False), "changed": len(changed),
        })
    return AttendanceSaved(len(records), len(changed))


# --- Incidents ------------------------------------------------------------------------------------------------


def may_report_incident(actor, session: VideoSession) -> bool:
    """The school's own staff (headteacher, teachers, office), who may all see the session."""
    return bool(build_scope(actor).roles_at_school(session.school_id) & SCHOOL_ROLES)


def may_read_incident(actor, incident: Incident, session: VideoSession, roles: frozenset[str]) -> bool:
    """What happened (a safeguarding concern may name a child) is for the headteacher, the reporter and the
    session's host; everyone else who sees the session sees the kind and the time only."""
    return Role.HEADTEACHER in roles or actor.pk in (incident.reported_by_id, session.host_id)


# A technical problem (the connection dropped, sound failed) says nothing about the controls: flagging the
# assessment would turn every session of the school red until it is approved again. The other kinds mean a
# control did not hold, so the assessment is flagged for review.
FLAGGED_KINDS = frozenset({Incident.Kind.UNINVITED, Incident.Kind.CONTENT, Incident.Kind.SAFEGUARDING})


@dataclass
class IncidentResult:
    incident: Incident
    flagged: list[Assessment]
    notified: int  # headteachers emailed


def incident_report(*, session: VideoSession, actor, kind: str, description: str, ended_early: bool) -> IncidentResult:
    """Record an incident from the start of the session on: the `Incident` (what happened is encrypted), an
    alert on the session's page, an email to the school's headteachers (the kind and a link, never the text),
    and, unless it was a technical problem, the applicable risk assessments flagged for review."""
    if not may_report_incident(actor, session):
        raise PermissionDenied
    _check_started(session, "incident report")
    description = (description or "").strip()
    errors = {}
    if kind not in Incident.Kind.values:
        errors["kind"] = "Choose what kind of incident it was."
    if not description:
        errors["description"] = "Say what happened."
    elif len(description) > DESCRIPTION_MAX:
        errors["description"] = f"Keep it under {DESCRIPTION_MAX} characters; attach more to the safeguarding record."
    if errors:
        raise ValidationError(errors)
    label = Incident.Kind(kind).label
    local = timezone.localtime(session.starts_at, session.school.tz)
    reporter = actor.get_full_name() or actor.get_username()
    with transaction.atomic():
        incident = Incident.objects.create(session=session, kind=kind, description=description,
                                           ended_early=bool(ended_early), reported_by=actor)
        SessionAlert.objects.create(session=session, kind=SessionAlert.Kind.INCIDENT, message=(
            f"{label} reported by {reporter}" + (": the session was ended early." if ended_early else ".")))
        flagged = []
        if kind in FLAGGED_KINDS:
            # The school where it happened: an organisation-wide assessment is reviewed for the organisation, but
            # only this school's lessons stop until the review (the others see a notice).
            reason = f"{label} reported in the lesson “{session.title}” at {session.school.name} on {local:%-d %B %Y}."
            versions = applicable_assessment_versions(session.school)
            flags = [assessment_flag_for_review(assessment=assessment, reason=reason, actor=actor,
                                                school=session.school)
                     for assessment in {v.assessment_id: v.assessment for v in versions}.values()]
            flagged = [flag.assessment for flag in flags]
            if flags:
                incident.flagged_assessment = flagged[0]
                incident.status = Incident.Status.UNDER_REVIEW
                incident.save(update_fields=["flagged_assessment", "status"])
                incident.review_flags.set(flags)
        headteachers = list(Membership.objects.filter(school=session.school, role=Role.HEADTEACHER,
                                                      user__is_active=True)
                            .exclude(user__email="").select_related("user").order_by("user__pk"))
        stops = review_stops(school=session.school, flagged=flagged)
        for membership in headteachers:
            email_queue(template="session-incident", to=membership.user.email, school=session.school,
                        related=incident, context={
                            "headteacher": membership.user, "session": session, "kind": label,
                            "ended_early": bool(ended_early), "reporter": reporter, "starts_at": local,
                            "link": session_page_url(session), **stops,
                        })
        # Told at once; their daily digest lists it again as already told, never as news.
        digest_items_add(users=[m.user for m in headteachers], kind=DigestItem.Kind.INCIDENT, school=session.school,
                         related=incident, title=f"{label} in “{session.title}”",
                         text=f"Reported by {reporter}" + (": the session was ended early." if ended_early else "."),
                         path=session_path(session), told_at=timezone.now())
        audit_log(actor=actor, action="session.incident_reported", obj=session, data={
            "incident": incident.pk, "kind": kind, "ended_early": bool(ended_early),
            "flagged_assessments": [a.pk for a in flagged], "headteachers_emailed": len(headteachers),
        })
    return IncidentResult(incident, flagged, len(headteachers))


def session_incidents(session: VideoSession) -> list[Incident]:
    return list(Incident.objects.filter(session=session)
                .select_related("reported_by", "flagged_assessment", "closed_by")
                .order_by("-reported_at", "-pk"))
