"""The incidents pages: the log of a school and of an organisation, and one incident's report with its review.

The log is for those who follow incidents (`incidents.LOG_ROLES`): the headteacher of the school, and the DPO,
SIRO and organisation admin across the organisation (and a headteacher of every school of it). Teachers and the
office see the incidents of their lessons on the lesson's page and their own reports on their home page. One
incident's page is for everyone who sees its lesson; what happened (the text) only for those
`host.may_read_incident` allows. Another school's or organisation's log or incident answers 404.
"""

from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from lib.refusal import Refused
from schools.models import Organisation, Role, School
from schools.scope import get_school_or_404, scope_for, scoped_get_or_404, staff_required

from .forms_incidents import IncidentCloseForm, IncidentEscalateForm, IncidentLogForm
from .host import may_read_incident
from .incidents import (
    LOG_ROLES,
    incident_close,
    incident_escalate,
    incident_flags,
    incidents_for_log,
    may_close_incident,
    may_escalate_incident,
)
from .models import Incident

NAV = "incidents"
PER_PAGE = 25


def _add_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for name, errors in error.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, error.messages)


# --- The log --------------------------------------------------------------------------------------------------


def _log(request: HttpRequest, *, schools: list[School], tz, title: str, place: str, log_url: str) -> HttpResponse:
    form = IncidentLogForm(request.GET if request.GET.keys() - {"page"} else None, schools=schools)
    if form.is_bound:
        form.is_valid()
    incidents = form.log_filter().apply(incidents_for_log([s.pk for s in schools]), tz)
    page = Paginator(incidents, PER_PAGE).get_page(request.GET.get("page"))
    query = urlencode([(k, v) for k, v in request.GET.items() if k != "page" and v])
    return render(request, "sessions/incidents/log.html", {
        "active_nav": NAV, "form": form, "page": page, "rows": page.object_list, "query": query,
        "title": title, "place": place, "several": len(schools) > 1, "tz": tz, "log_url": log_url,
        "filtered": bool(query),
    })


LOG_REFUSAL = ("The incidents log is for headteachers, the DPO, the SIRO and the organisation's admin. The "
               "incidents of your lessons are on each lesson's page.")


@staff_required(LOG_ROLES, refusal=LOG_REFUSAL)
@require_http_methods(["GET"])
def incident_log(request: HttpRequest) -> HttpResponse:
    """The log a person would want: their organisation's when they follow one, else their school's."""
    scope = scope_for(request)
    organisations = sorted(oid for oid in scope.organisation_ids if scope.roles_for_whole_organisation(oid)
                           & LOG_ROLES)
    if organisations:
        url = reverse("video_sessions:incidents-organisation", kwargs={"organisation_pk": organisations[0]})
    else:
        school = School.objects.filter(pk__in=scope.schools_where(LOG_ROLES)).order_by("name").first()
        if school is None:
            raise Refused(LOG_REFUSAL)
        url = reverse("video_sessions:incidents-school", kwargs={"school_pk": school.pk})
    # The filters asked for (a link to the log of this month, say) come along.
    return redirect(f"{url}?{request.GET.urlencode()}" if request.GET else url)


@staff_required(LOG_ROLES, refusal=LOG_REFUSAL)
@require_http_methods(["GET"])
def incident_log_school(request: HttpRequest, school_pk: int) -> HttpResponse:
    school = get_school_or_404(request, school_pk, roles=LOG_ROLES)
    return _log(request, schools=[school], tz=school.tz, title=f"Incidents at {school.name}", place=school.name,
                log_url=request.path)


@staff_required(LOG_ROLES, refusal=LOG_REFUSAL)
@require_http_methods(["GET"])
def incident_log_organisation(request: HttpRequest, organisation_pk: int) -> HttpResponse:
    scope = scope_for(request)
    organisation = get_object_or_404(Organisation.objects.filter(pk__in=scope.organisation_ids), pk=organisation_pk)
    # The organisation roles, or a headteacher of every one of its schools; a headteacher of one school
    # among several reads their own school's log.
    if not scope.roles_for_whole_organisation(organisation.pk) & LOG_ROLES:
        raise Refused("The organisation's incidents log is for the DPO, the SIRO and the organisation's admin. "
                      "Your school's incidents are in its own log.")
    schools = list(School.objects.filter(organisation=organisation).order_by("name"))
    return _log(request, schools=schools, tz=ZoneInfo(organisation.time_zone),
                title=f"Incidents across {organisation.name}", place=organisation.name, log_url=request.path)


# --- One incident ---------------------------------------------------------------------------------------------


def _incident(request: HttpRequest, pk: int) -> Incident:
    return scoped_get_or_404(
        request, Incident.objects.select_related("session__school__organisation", "session__host", "reported_by",
                                                 "closed_by", "flagged_assessment"),
        pk=pk, school_path="session__school")


def _incident_page(request: HttpRequest, incident: Incident, *, close_form=None, escalate_form=None
                   ) -> HttpResponse:
    scope = scope_for(request)
    session = incident.session
    roles = scope.roles_at_school(session.school_id)
    flags = incident_flags(incident)
    may_close = incident.status == Incident.Status.OPEN and may_close_incident(scope, incident)
    may_escalate = may_escalate_incident(scope, incident, flags)
    return render(request, "sessions/incidents/detail.html", {
        "active_nav": NAV, "incident": incident, "session": session, "tz": session.school.tz,
        "readable": may_read_incident(request.user, incident, session, roles), "flags": flags,
        "may_close": may_close, "close_form": close_form or (IncidentCloseForm() if may_close else None),
        "may_escalate": may_escalate,
        "escalate_form": escalate_form or (IncidentEscalateForm() if may_escalate else None),
        "may_read_log": bool(roles & LOG_ROLES),
        "organisation_wide": any(flag.assessment.school_id is None for flag in flags),
        # Closed by its review: the reviewer's reason is its closing note, shown once, with the review.
        "closed_by_review": incident.status == Incident.Status.CLOSED and any(
            not flag.is_open and flag.outcome_note == incident.closing_note for flag in flags),
    })


@staff_required()
@require_http_methods(["GET"])
def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _incident_page(request, _incident(request, pk))


@staff_required({Role.HEADTEACHER, Role.ORG_ADMIN})
@require_POST
def incident_close_view(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(request, pk)
    if not may_close_incident(scope_for(request), incident):
        raise PermissionDenied
    form = IncidentCloseForm(request.POST)
    if form.is_valid():
        try:
            incident_close(incident=incident, actor=request.user, note=form.cleaned_data["note"])
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "Incident closed, with your note.")
            return redirect("video_sessions:incident-detail", pk=incident.pk)
    # Shown again with what was typed and why it was refused; nothing changed.
    return _incident_page(request, incident, close_form=form)


@staff_required({Role.HEADTEACHER, Role.ORG_ADMIN})
@require_POST
def incident_escalate_view(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(request, pk)
    if not may_escalate_incident(scope_for(request), incident, incident_flags(incident)):
        if incident.status == Incident.Status.CLOSED or incident.kind != Incident.Kind.SAFEGUARDING:
            messages.info(request, "There is nothing to stop: the incident is closed, or not a safeguarding "
                                   "concern.")
            return redirect("video_sessions:incident-detail", pk=incident.pk)
        raise PermissionDenied
    form = IncidentEscalateForm(request.POST)
    if form.is_valid():
        try:
            incident_escalate(incident=incident, actor=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, f"Lessons in every school of {incident.session.school.organisation.name} "
                                      "are stopped until the risk assessment is reviewed.")
            return redirect("video_sessions:incident-detail", pk=incident.pk)
    return _incident_page(request, incident, escalate_form=form)
