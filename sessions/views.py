"""The session pages: upcoming sessions, schedule, a session with its gate and protocol, edit, cancel, the
password for the host, and the meeting protocol of a school and of the organisation.

Sessions load through the scope (another school's session answers 404). Everyone at the school reads;
DPO, SIRO and the organisation admin read across the organisation; teachers, office and the headteacher
schedule; the host, the creator and the headteacher change and cancel (403 for the others).
"""

from datetime import timedelta
from urllib.parse import urlsplit

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from pia.models import Platform
from schools.models import Organisation, Role, School
from schools.scope import get_school_or_404, scope_for, scoped_get_or_404, staff_required

from .coverage import session_coverage
from .forms import CancelForm, EditForm, ListFilterForm, ProtocolForm, ScheduleForm, edit_initial
from .gate import gate_for, session_gate
from .models import VideoSession
from .protocol import (
    effective_protocol,
    host_checklist,
    may_edit_organisation_protocol,
    may_edit_school_protocol,
    organisation_protocol,
    parent_reminders,
    protocol_save,
    rule_label,
    school_protocol,
)
from .readiness import blocked, sessions_readiness
from .services import (
    SCHEDULE_ROLES,
    local_start,
    mask_secret,
    may_change,
    session_cancel,
    session_password_reveal,
    session_schedule,
    session_update,
)
from .views_coverage import audience_context, purpose_of
from .views_host import host_context

NAV = "sessions"
PAGE_SIZE = 25
MY_NEXT = 5


def _add_errors(form, error: ValidationError) -> None:
    aliases = {"starts_at": "start_time", "audience": "groups"}
    for name, errors in error.message_dict.items():
        name = aliases.get(name, name)
        form.add_error(name if name in form.fields else None, errors)


def _local(session: VideoSession):
    return timezone.localtime(session.starts_at, session.school.tz)


# --- Upcoming sessions --------------------------------------------------------------------------------------


@staff_required()
@require_http_methods(["GET"])
def session_list(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request)
    schools = list(School.objects.filter(pk__in=scope.school_ids).order_by("name"))
    form = ListFilterForm(request.GET or None, schools=schools)
    # Upcoming: not yet over.
    sessions = scope.filter(VideoSession.objects.all()).filter(starts_at__gte=timezone.now() - timedelta(hours=4))
    show, chosen, include_cancelled, blocked_only = "school", None, False, False
    if form.is_bound and form.is_valid():
        show = form.cleaned_data["show"] or "school"
        chosen = form.cleaned_data["school"]
        include_cancelled = form.cleaned_data["include_cancelled"]
        blocked_only = form.cleaned_data["blocked_only"]
    if show == "mine":
        sessions = sessions.filter(Q(host=request.user) | Q(created_by=request.user))
    if chosen:
        sessions = sessions.filter(school_id=chosen)
    if not include_cancelled:
        sessions = sessions.filter(status=VideoSession.Status.SCHEDULED)
    if blocked_only:
        sessions = sessions.filter(blocked(sessions))
    sessions = sessions.select_related("school__organisation", "host", "platform").order_by("starts_at", "pk")
    page = Paginator(sessions, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = sessions_readiness(page.object_list)
    query = "&".join(f"{key}={value}" for key, value in (
        ("show", show if show != "school" else ""), ("school", chosen or ""),
        ("include_cancelled", "on" if include_cancelled else ""), ("blocked_only", "on" if blocked_only else ""))
        if value)
    schedulable = [s for s in schools if scope.roles_at_school(s.pk) & SCHEDULE_ROLES]
    # The sessions the user hosts come first, whatever the filter shows below them.
    hosting = [] if show == "mine" or page.number > 1 else [
        {"session": s, "local": _local(s)} for s in scope.filter(VideoSession.objects.all()).filter(
            host=request.user, status=VideoSession.Status.SCHEDULED, starts_at__gte=timezone.now() - timedelta(hours=1),
        ).select_related("school").order_by("starts_at", "pk")[:MY_NEXT]]
    return render(request, "sessions/list.html", {
        "hosting": hosting,
        "active_nav": NAV, "form": form, "rows": rows, "page": page, "query": query, "show": show,
        "filtered": bool(chosen or show == "mine" or include_cancelled or blocked_only),
        "blocked_only": blocked_only, "schedulable": schedulable,
        "schools": schools,
    })


# --- Schedule -----------------------------------------------------------------------------------------------


def _platform_gates(school: School, host) -> list[dict]:
    platforms = Platform.objects.filter(organisation_id=school.organisation_id).select_related("pia").order_by("name")
    return [{"platform": p, "gate": session_gate(school=school, platform=p, host=host)} for p in platforms]


def _rechecking(request: HttpRequest) -> bool:
    """"Check coverage" or "Find" (pupils) was pressed: the form is shown again, nothing is saved."""
    return request.method == "POST" and ("check" in request.POST or "find" in request.POST)


def _kept(form_class, request: HttpRequest, **kwargs):
    """An unbound form showing what was posted, without judging it: no errors while the person is still choosing
    who the session is for. The password typed is kept too, on a page that is not cached (`_not_cached`)."""
    data = request.POST
    form = form_class(initial={
        name: data.getlist(name) if isinstance(field.widget, forms.CheckboxSelectMultiple) else data.get(name, "")
        for name, field in form_class.base_fields.items()}, **kwargs)
    form.fields["password"].widget.render_value = True
    return form


def _not_cached(response: HttpResponse, request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        response["Cache-Control"] = "no-store"
    return response


@staff_required(SCHEDULE_ROLES)
@require_http_methods(["GET", "POST"])
def session_schedule_view(request: HttpRequest, school_pk: int) -> HttpResponse:
    school = get_school_or_404(request, school_pk, roles=SCHEDULE_ROLES)
    form = ScheduleForm(request.POST or None, school=school, initial={"host": request.user.pk})
    if _rechecking(request):
        form = _kept(ScheduleForm, request, school=school)
    elif request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            sessions = session_schedule(
                school=school, actor=request.user, title=data["title"], host=data["host"],
                platform=data["platform"], groups=data["groups"], pupils=data["pupils"],
                meeting_url=data["meeting_url"], meeting_id=data["meeting_id"], password=data["password"],
                starts_at=form.starts_at(), duration_minutes=data["duration_minutes"],
                lead_minutes=data["lead_minutes"], repeat_weekly_until=data["repeat_weekly_until"],
                purpose=data["purpose"], low_coverage_confirmed=form.low_coverage_confirmed)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            first = sessions[0]
            when = f"{_local(first):%-d %B %Y at %H:%M}"
            if len(sessions) > 1:
                messages.success(request, f"Scheduled {len(sessions)} weekly sessions, the first on {when}.")
            else:
                messages.success(request, f"Scheduled for {when}.")
            if local_start(form.starts_at(), school.tz).ambiguous:
                messages.warning(request, f"{form.starts_at():%H:%M} happens twice that night as the clocks go back: "
                                          "the session is at the first of the two (summer time).")
            if not data["password"]:
                messages.info(request, "Gatehouse made a password: reveal it on this page and set it on the platform.")
            return redirect("video_sessions:session", pk=first.pk)
    # The gate of every platform, for the host chosen (on a submitted form) or for the signed-in user: without
    # JavaScript the whole table shows; sessions-schedule.js highlights the chosen platform's row.
    host = (form.cleaned_data.get("host") if form.is_bound and hasattr(form, "cleaned_data") else None) or request.user
    shown = request.POST if request.method == "POST" else form.initial
    return _not_cached(render(request, "sessions/schedule.html", {
        "active_nav": NAV, "school": school, "form": form, "host": host,
        "platform_gates": _platform_gates(school, host), "protocol": effective_protocol(school),
        **audience_context(request, school=school, purpose=purpose_of(school, shown.get("purpose")), data=shown,
                           confirm_verb=form.confirm_verb, confirm_errors=form.errors.get("confirm_coverage", ()),
                           coverage=form.coverage),
    }), request)


# --- One session --------------------------------------------------------------------------------------------


def _session(request: HttpRequest, pk: int) -> VideoSession:
    return scoped_get_or_404(request, VideoSession.objects.select_related("school", "host", "platform", "purpose",
                                                                         "created_by", "cancelled_by"), pk=pk)


def _session_for_change(request: HttpRequest, pk: int) -> VideoSession:
    session = scoped_get_or_404(request, VideoSession.objects.select_related("school", "host", "platform"),
                                roles=SCHEDULE_ROLES, pk=pk)
    if not may_change(request.user, session):
        raise PermissionDenied
    return session


def _detail_context(request: HttpRequest, session: VideoSession, revealed: str | None = None) -> dict:
    protocol = effective_protocol(session.school)
    changeable = (session.status == VideoSession.Status.SCHEDULED and session.starts_at > timezone.now()
                  and may_change(request.user, session))
    gate = gate_for(session)
    return {
        "active_nav": NAV, "session": session, "local": _local(session), "gate": gate,
        "protocol": protocol, "reminders": parent_reminders(protocol), "checklist": host_checklist(protocol),
        "groups": session.groups.order_by("name"), "pupil_count": session.pupils.count(),
        "coverage": session_coverage(session),
        "password_mask": mask_secret(session.password), "revealed": revealed,
        "may_change": changeable, "may_reveal": may_change(request.user, session) and bool(session.password),
        "link_host": _link_host(session.meeting_url), "series_count": (
            VideoSession.objects.filter(series=session.series).count() if session.series else 1),
        **host_context(request, session, gate),
    }


def _link_host(url: str) -> str:
    return urlsplit(url).hostname or "" if url else ""


@staff_required()
@require_http_methods(["GET"])
def session_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "sessions/detail.html", _detail_context(request, _session(request, pk)))


@never_cache
@staff_required(SCHEDULE_ROLES)
@require_POST
def session_password(request: HttpRequest, pk: int) -> HttpResponse:
    session = _session_for_change(request, pk)
    if not session.password:
        messages.info(request, "The password has been erased.")
        return redirect("video_sessions:session", pk=session.pk)
    password = session_password_reveal(session=session, actor=request.user)
    response = render(request, "sessions/detail.html", _detail_context(request, session, revealed=password))
    response["Cache-Control"] = "no-store"
    return response


@staff_required(SCHEDULE_ROLES)
@require_http_methods(["GET", "POST"])
def session_edit(request: HttpRequest, pk: int) -> HttpResponse:
    session = _session_for_change(request, pk)
    if session.status != VideoSession.Status.SCHEDULED or session.starts_at <= timezone.now():
        messages.error(request, "A cancelled or started session can no longer be changed.")
        return redirect("video_sessions:session", pk=session.pk)
    form = EditForm(request.POST or None, school=session.school, purpose=session.purpose,
                    initial=edit_initial(session))
    if _rechecking(request):
        form = _kept(EditForm, request, school=session.school, purpose=session.purpose)
    elif request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        before = session.revision
        try:
            session = session_update(
                session=session, actor=request.user, title=data["title"], host=data["host"],
                platform=data["platform"], groups=data["groups"], pupils=data["pupils"],
                meeting_url=data["meeting_url"], meeting_id=data["meeting_id"], password=data["password"],
                starts_at=form.starts_at(), duration_minutes=data["duration_minutes"],
                lead_minutes=data["lead_minutes"], low_coverage_confirmed=form.low_coverage_confirmed)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            if session.revision != before:
                messages.success(request, "Saved. Parents already invited will be sent the new details.")
            else:
                messages.success(request, "Saved.")
            return redirect("video_sessions:session", pk=session.pk)
    shown = request.POST if request.method == "POST" else form.initial
    return _not_cached(render(request, "sessions/edit.html", {
        "active_nav": NAV, "session": session, "form": form, "protocol": effective_protocol(session.school),
        **audience_context(request, school=session.school, purpose=session.purpose, data=shown,
                           confirm_verb=form.confirm_verb, confirm_errors=form.errors.get("confirm_coverage", ()),
                           coverage=form.coverage, saved=edit_initial(session)),
    }), request)


@staff_required(SCHEDULE_ROLES)
@require_http_methods(["GET", "POST"])
def session_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    session = _session_for_change(request, pk)
    if session.status != VideoSession.Status.SCHEDULED:
        messages.info(request, "The session is already cancelled.")
        return redirect("video_sessions:session", pk=session.pk)
    form = CancelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            session_cancel(session=session, actor=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "The session is cancelled.")
            return redirect("video_sessions:session", pk=session.pk)
    return render(request, "sessions/cancel.html", {"active_nav": NAV, "session": session, "form": form,
                                                    "local": _local(session)})


# --- The protocol -------------------------------------------------------------------------------------------


def _protocol_values(form: ProtocolForm) -> dict:
    return dict(form.cleaned_data)


def _rules(protocol) -> list[dict]:
    return [{"label": rule_label(name), "kind": kind, "value": getattr(protocol, name)}
            for name, kind in protocol.RULES]


@staff_required()
@require_http_methods(["GET", "POST"])
def school_protocol_view(request: HttpRequest, school_pk: int) -> HttpResponse:
    school = get_school_or_404(request, school_pk)
    may_edit = may_edit_school_protocol(request.user, school)
    effective = effective_protocol(school)
    form = ProtocolForm(request.POST or None, current=effective) if may_edit else None
    if request.method == "POST":
        if not may_edit:
            raise PermissionDenied
        if form.is_valid():
            try:
                saved = protocol_save(actor=request.user, organisation=school.organisation, school=school,
                                      values=_protocol_values(form))
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, f"Saved version {saved.version} of {school.name}'s protocol.")
                return redirect("video_sessions:school-protocol", school_pk=school.pk)
    base = organisation_protocol(school.organisation)
    return render(request, "sessions/protocol.html", {
        "active_nav": NAV, "school": school, "organisation": school.organisation, "protocol": effective,
        "rules": _rules(effective), "base": base, "own": school_protocol(school), "form": form,
        "reminders": parent_reminders(effective), "checklist": host_checklist(effective),
    })


@staff_required()
@require_http_methods(["GET", "POST"])
def organisation_protocol_view(request: HttpRequest, organisation_pk: int) -> HttpResponse:
    scope = scope_for(request)
    organisation = get_object_or_404(Organisation.objects.filter(pk__in=scope.organisation_ids), pk=organisation_pk)
    may_edit = may_edit_organisation_protocol(request.user, organisation)
    current = organisation_protocol(organisation)
    form = ProtocolForm(request.POST or None, current=current) if may_edit else None
    if request.method == "POST":
        if not may_edit:
            raise PermissionDenied
        if form.is_valid():
            try:
                saved = protocol_save(actor=request.user, organisation=organisation, values=_protocol_values(form))
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, f"Saved version {saved.version} of the organisation's protocol.")
                return redirect("video_sessions:organisation-protocol", organisation_pk=organisation.pk)
    schools = [s for s in School.objects.filter(organisation=organisation, pk__in=scope.school_ids).order_by("name")]
    return render(request, "sessions/protocol.html", {
        "active_nav": NAV, "school": None, "organisation": organisation, "protocol": current,
        "rules": _rules(current), "base": current, "own": None, "form": form, "schools": schools,
        "reminders": parent_reminders(current), "checklist": host_checklist(current),
        "is_headteacher_somewhere": Role.HEADTEACHER in scope.roles,
    })

