"""The host's pages of a session: the roster, the printable checklist, attendance and the incident report, plus
what the session page shows of the invitations, alerts and incidents (`host_context`).

Sessions load through the scope (another school's session answers 404). Everyone who sees a session sees its
roster and checklist; the host, the creator and the headteacher record attendance (`may_change`); the school's
own staff report incidents (403 for the others).
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from schools.models import SCHOOL_ROLES
from schools.scope import scope_for, scoped_get_or_404, staff_required

from .forms_host import AttendanceForm, IncidentForm
from .gate import Gate
from .host import (
    alert_rows,
    attendance_record,
    attendance_sheet,
    deliveries_for_page,
    delivery_counts,
    delivery_rows,
    incident_report,
    may_read_incident,
    may_report_incident,
    session_alerts,
    session_checklist,
    session_incidents,
    session_roster,
    session_started,
)
from .models import Delivery, VideoSession
from .services import SCHEDULE_ROLES, may_change

NAV = "sessions"
DELIVERIES_PER_PAGE = 50


def _session(request: HttpRequest, pk: int, roles=None) -> VideoSession:
    queryset = VideoSession.objects.select_related("school", "host", "platform", "purpose")
    if roles is None:
        return scoped_get_or_404(request, queryset, pk=pk)
    return scoped_get_or_404(request, queryset, roles=roles, pk=pk)


def _local(session: VideoSession, value=None):
    return timezone.localtime(value or session.starts_at, session.school.tz)


def host_context(request: HttpRequest, session: VideoSession, gate: Gate) -> dict:
    """What the session page shows beside the details: the invitations (counts, one page of rows), the alerts
    (read against `gate`, the one the page shows), the incidents and the roster's counts. A constant number of
    queries, whatever the number of invitations."""
    status = request.GET.get("status") or ""
    if status not in Delivery.Status.values:
        status = ""
    page = Paginator(deliveries_for_page(session, status or None), DELIVERIES_PER_PAGE).get_page(
        request.GET.get("page"))
    counts = delivery_counts(session)
    roles = scope_for(request).roles_at_school(session.school_id)
    incidents = [{"incident": i, "readable": may_read_incident(request.user, i, session, roles)}
                 for i in session_incidents(session)]
    roster = session_roster(session)
    return {
        "delivery_counts": counts, "delivery_total": sum(c["count"] for c in counts), "delivery_status": status,
        "delivery_page": page, "delivery_rows": delivery_rows(page), "page": page,
        "query": f"status={status}" if status else "",
        "send_local": _local(session, session.send_at), "send_time_passed": timezone.now() >= session.send_at,
        "alerts": alert_rows(session_alerts(session), gate_ok=gate.ok, red_since=session.gate_red_since),
        "incidents": incidents,
        "roster_admitted": len(roster.admitted), "roster_refused": len(roster.refused),
        "started": session_started(session), "may_record_attendance": may_change(request.user, session),
        "may_report_incident": bool(roles & SCHOOL_ROLES),
    }


@staff_required()
@require_http_methods(["GET"])
def session_roster_view(request: HttpRequest, pk: int) -> HttpResponse:
    session = _session(request, pk)
    return render(request, "sessions/roster.html", {
        "active_nav": NAV, "session": session, "local": _local(session), "roster": session_roster(session),
    })


@staff_required()
@require_http_methods(["GET"])
def session_checklist_view(request: HttpRequest, pk: int) -> HttpResponse:
    session = _session(request, pk)
    return render(request, "sessions/checklist.html", {
        "active_nav": NAV, "session": session, "local": _local(session), "checklist": session_checklist(session),
        "roster": session_roster(session),
    })


@staff_required(SCHEDULE_ROLES)
@require_http_methods(["GET", "POST"])
def session_attendance(request: HttpRequest, pk: int) -> HttpResponse:
    session = _session(request, pk, roles=SCHEDULE_ROLES)
    if not may_change(request.user, session):
        raise PermissionDenied
    context = {"active_nav": NAV, "session": session, "local": _local(session)}
    if session.status == VideoSession.Status.CANCELLED:
        messages.error(request, "The session was cancelled: there is no attendance to record.")
        return redirect("video_sessions:session", pk=session.pk)
    if session.status == VideoSession.Status.NOT_HELD:
        messages.error(request, "The lesson did not go ahead: there is no attendance to record. If it was held "
                                "anyway, report it as an incident.")
        return redirect("video_sessions:session", pk=session.pk)
    if not session_started(session):
        if request.method == "POST":
            messages.error(request, "Attendance opens at the start of the session.")
        return render(request, "sessions/attendance.html", {**context, "not_yet": True})
    sheet = attendance_sheet(session)
    data = request.POST if request.method == "POST" else None
    all_present = data is not None and "all_present" in data
    marked = 0
    if all_present:
        data, marked = AttendanceForm.with_rest_present(data, sheet.expected)
    form = AttendanceForm(data, expected=sheet.expected, others=sheet.others, recorded=sheet.recorded)
    if request.method == "POST" and not all_present and form.is_valid():
        try:
            saved = attendance_record(session=session, actor=request.user, rows=form.attendance())
        except ValidationError as error:
            form.add_error(None, error.messages)
        else:
            children = f"{saved.children} child{'ren' if saved.children != 1 else ''}"
            if saved.changed:
                messages.success(request, f"Attendance saved for {children}.")
            else:
                messages.info(request, f"Attendance for {children} was already saved as it is: nothing changed.")
            unexpected = [c.name for c in sheet.expected + sheet.others
                          if not c.admitted and form.attendance().get(c.pk, (False,))[0]]
            if unexpected:
                messages.warning(request, f"Marked present without consent: {', '.join(unexpected)}. If a child "
                                          "without consent joined, report an incident.")
            return redirect("video_sessions:session", pk=session.pk)
    return render(request, "sessions/attendance.html", {
        **context, "form": form, "expected_rows": form.expected_rows(), "other_rows": form.other_rows(),
        "others_open": form.others_answered(), "invited": sheet.invited, "recorded": bool(sheet.recorded),
        "all_present": all_present, "marked_present": marked,
    })


@staff_required(SCHOOL_ROLES)
@require_http_methods(["GET", "POST"])
def session_incident(request: HttpRequest, pk: int) -> HttpResponse:
    session = _session(request, pk, roles=SCHOOL_ROLES)
    if not may_report_incident(request.user, session):
        raise PermissionDenied
    context = {"active_nav": NAV, "session": session, "local": _local(session)}
    if session.status == VideoSession.Status.CANCELLED:
        messages.error(request, "The session was cancelled: there is no incident to report for it. If something "
                                "happened, tell your headteacher or safeguarding lead directly.")
        return redirect("video_sessions:session", pk=session.pk)
    if not session_started(session):
        if request.method == "POST":
            messages.error(request, "Incident reports open at the start of the session.")
        return render(request, "sessions/incident.html", {**context, "not_yet": True})
    form = IncidentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = incident_report(session=session, actor=request.user, kind=data["kind"],
                                     description=data["description"], ended_early=data["ended_early"])
        except ValidationError as error:
            if not hasattr(error, "error_dict"):
                form.add_error(None, error.messages)
            else:
                for name, errors in error.message_dict.items():
                    form.add_error(name if name in form.fields else None, errors)
        else:
            flagged = (f" The risk assessment is flagged for review: until the headteacher reviews it, no lesson at "
                       f"{session.school.name} can be scheduled and no invitation is sent." if result.flagged else "")
            if result.notified:
                told = "The headteacher has been emailed." if result.notified == 1 else (
                    f"{result.notified} headteachers have been emailed.")
                messages.success(request, f"Incident recorded. {told}{flagged}")
            else:
                messages.warning(request, "Incident recorded, but no headteacher of the school has an email address: "
                                          f"tell them yourself now.{flagged}")
            return redirect("video_sessions:session", pk=session.pk)
    return render(request, "sessions/incident.html", {**context, "form": form})
