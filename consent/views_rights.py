"""Staff pages of parents' rights: the requests queue, one request with its history and actions, and
requests recorded by the office.

The headteacher, the office, the DPO and the organisation admin see and act on the requests of their
schools (`RIGHTS_ROLES`); a teacher or the SIRO gets 403; another school's request answers 404.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import BooleanField, Case, Count, Q, Value, When
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.dateformat import format as date_format
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from lib.http import as_download
from outbox.models import OutboxMessage
from schools.activity import activity_rows
from schools.models import AuditEntry, School
from schools.scope import StaffScope, scope_for, scoped_get_or_404, staff_required

from .forms_rights import (
    GuardianSearchForm,
    RightsQueueFilterForm,
    RightsRecordForm,
    RightsResponseForm,
    RightsStatusForm,
)
from .models import Guardian, RightsRequest
from .rights import (
    DOWNLOAD_FORMATS,
    RIGHTS_ROLES,
    guardian_data_download,
    rights_request_record_by_staff,
    rights_request_respond,
    rights_request_status_change,
    school_today,
)

Status = RightsRequest.Status
PAGE_SIZE = 50
SEARCH_LIMIT = 25


def _schools(request: HttpRequest):
    return School.objects.filter(pk__in=scope_for(request).schools_where(RIGHTS_ROLES)).order_by("name")


def _overdue(schools) -> Q:
    """Still open past the due date, where "today" is each school's own: one condition per time zone."""
    condition = Q(pk__in=[])
    for time_zone in set(schools.values_list("time_zone", flat=True)):
        today = school_today(School(time_zone=time_zone))
        condition |= Q(school__time_zone=time_zone, due_on__lt=today)
    return Q(status__in=RightsRequest.ACTIVE) & condition


@staff_required(RIGHTS_ROLES)
def rights_queue(request: HttpRequest) -> HttpResponse:
    schools = _schools(request)
    form = RightsQueueFilterForm(request.GET or None, schools=schools)
    filters = form.cleaned_data if form.is_valid() else {}
    overdue = _overdue(schools)
    every = RightsRequest.objects.filter(school__in=schools)
    rows = every
    status = filters.get("status") or "active"
    if status == "active":
        rows = rows.filter(status__in=RightsRequest.ACTIVE)
    elif status != "all":
        rows = rows.filter(status=status)
    if filters.get("kind"):
        rows = rows.filter(kind=filters["kind"])
    if filters.get("school"):
        rows = rows.filter(school=filters["school"])
    if filters.get("overdue"):
        rows = rows.filter(overdue)
    rows = (
        rows.annotate(overdue=Case(When(overdue, then=Value(True)), default=Value(False), output_field=BooleanField()))
        .select_related("school", "pupil")
        .order_by("due_on", "received_at", "pk")
    )
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    counts = every.aggregate(
        open=Count("pk", filter=Q(status=Status.OPEN)),
        in_progress=Count("pk", filter=Q(status=Status.IN_PROGRESS)),
        completed=Count("pk", filter=Q(status=Status.COMPLETED)),
        refused=Count("pk", filter=Q(status=Status.REFUSED)),
        overdue=Count("pk", filter=overdue),
    )
    query = urlencode([(k, v) for k, v in request.GET.items() if k != "page" and v])
    return render(request, "consent/rights/queue.html", {
        "active_nav": "rights",
        "form": form,
        "page": page,
        "query": query,
        "filtered": bool(query),
        "counts": counts,
        "several_schools": len(schools) > 1,
    })


def _history_details(entry: AuditEntry) -> str:
    data = entry.data
    if entry.action == "rights.status_changed":
        change = f"{Status(data['from']).label} → {Status(data['to']).label}"
        return f"{change}: {data['reason']}" if data.get("reason") else change
    if entry.action == "rights.responded":
        return "Emailed to the guardian" if data.get("emailed") else "Not emailed (no address): sent by post"
    if entry.action == "rights.data_downloaded":
        return f"{data.get('format', '').upper()} copy"
    return ""


def _history(rights_request: RightsRequest, scope: StaffScope) -> list[dict]:
    """The request's audit entries, and the guardian's restriction it led to, oldest first; the parent is
    named from the registry while their record is there (the entries keep their number only)."""
    entries = AuditEntry.objects.filter(
        Q(object_type=RightsRequest._meta.label_lower, object_id=str(rights_request.pk))
        | Q(action="rights.contact_suppressed", data__rights_request=rights_request.pk)
    ).order_by("seq")
    return [{"entry": row.entry, "actor": row.actor, "label": row.action, "details": _history_details(row.entry)}
            for row in activity_rows(entries, scope)]


def _detail(request: HttpRequest, rights_request: RightsRequest, *, status_form=None, response_form=None
            ) -> HttpResponse:
    emails = (
        OutboxMessage.objects.filter(related_type=RightsRequest._meta.label_lower, related_id=str(rights_request.pk))
        .only("template", "recipient", "subject", "status", "created_at", "sent_at").order_by("created_at", "id")
    )
    return render(request, "consent/rights/request_detail.html", {
        "active_nav": "rights",
        "rights_request": rights_request,
        "school": rights_request.school,
        "guardian": rights_request.guardian,
        "overdue": rights_request.is_overdue(school_today(rights_request.school)),
        "history": _history(rights_request, scope_for(request)),
        "emails": emails,
        "status_form": status_form or RightsStatusForm(),
        "response_form": response_form or RightsResponseForm(initial={"then": ""}),
        "may_export": rights_request.kind == RightsRequest.Kind.ACCESS and rights_request.guardian is not None,
    })


def _load(request: HttpRequest, pk: int) -> RightsRequest:
    return scoped_get_or_404(
        request,
        RightsRequest.objects.select_related("school__organisation", "guardian", "pupil", "responded_by",
                                             "recorded_by"),
        roles=RIGHTS_ROLES,
        pk=pk,
    )


@login_required
@require_safe
def rights_request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail(request, _load(request, pk))


def _add_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


@login_required
@require_POST
def rights_request_status(request: HttpRequest, pk: int) -> HttpResponse:
    rights_request = _load(request, pk)
    form = RightsStatusForm(request.POST)
    if form.is_valid():
        try:
            rights_request = rights_request_status_change(
                rights_request=rights_request, status=form.cleaned_data["status"],
                reason=form.cleaned_data["reason"], actor=request.user,
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            status_label = rights_request.get_status_display().lower()
            messages.success(request, f"Request #{rights_request.pk} is now {status_label}.")
            if rights_request.kind == RightsRequest.Kind.SUPPRESSION and rights_request.status == Status.COMPLETED:
                messages.info(request, "The guardian's data is now restricted: Gatehouse sends them nothing but "
                                       "answers to their requests.")
            return redirect("consent:rights-request", pk=rights_request.pk)
    return _detail(request, rights_request, status_form=form)


@login_required
@require_POST
def rights_request_response(request: HttpRequest, pk: int) -> HttpResponse:
    rights_request = _load(request, pk)
    form = RightsResponseForm(request.POST)
    if form.is_valid():
        try:
            result = rights_request_respond(
                rights_request=rights_request, response=form.cleaned_data["response"],
                status=form.cleaned_data["then"], actor=request.user,
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            if result.emailed:
                messages.success(request, "Answer saved and emailed to the guardian.")
            else:
                messages.warning(request, "Answer saved. The guardian has no email address: send it by post.")
            return redirect("consent:rights-request", pk=rights_request.pk)
    return _detail(request, rights_request, response_form=form)


@login_required
@require_POST
def rights_request_export(request: HttpRequest, pk: int) -> HttpResponse:
    """The same copy the parent downloads from their link, for an access request received otherwise.
    A POST, audited (`rights.data_downloaded`, naming the member of staff)."""
    rights_request = _load(request, pk)
    if rights_request.kind != RightsRequest.Kind.ACCESS or rights_request.guardian is None:
        raise Http404
    fmt = request.POST.get("format", "json")
    if fmt not in DOWNLOAD_FORMATS:
        return HttpResponse("Choose JSON or PDF.", status=400, content_type="text/plain")
    data = guardian_data_download(guardian=rights_request.guardian, fmt=fmt, actor=request.user,
                                  rights_request=rights_request)
    return as_download(HttpResponse(data.content, content_type=data.content_type), data.filename)


@staff_required(RIGHTS_ROLES)
def rights_new(request: HttpRequest) -> HttpResponse:
    """Recording a request received by letter, email or phone starts by finding the guardian."""
    schools = _schools(request)
    form = GuardianSearchForm(request.GET or None)
    guardians = []
    if form.is_valid():
        # Guardians the retention schedule has erased have nothing left to ask about.
        found = Guardian.objects.filter(school__in=schools, archived_at__isnull=True)
        for word in form.cleaned_data["q"].split():
            found = found.filter(
                Q(first_name__icontains=word) | Q(last_name__icontains=word)
                | Q(email__iexact=word) | Q(mis_id__iexact=word)
            )
        guardians = list(
            found.select_related("school").annotate(children=Count("guardianships"))
            .order_by("last_name", "first_name", "pk")[:SEARCH_LIMIT + 1]
        )
    return render(request, "consent/rights/new.html", {
        "active_nav": "rights",
        "form": form,
        "guardians": guardians[:SEARCH_LIMIT],
        "more": len(guardians) > SEARCH_LIMIT,
        "several_schools": len(schools) > 1,
    })


@login_required
@require_http_methods(["GET", "POST"])
def rights_record(request: HttpRequest, pk: int) -> HttpResponse:
    guardian = scoped_get_or_404(request, Guardian.objects.select_related("school"), roles=RIGHTS_ROLES, pk=pk)
    form = RightsRecordForm(request.POST or None, guardian=guardian,
                            initial={"received_on": school_today(guardian.school), "acknowledge": bool(guardian.email)})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            rights_request = rights_request_record_by_staff(
                staff=request.user, guardian=guardian, kind=data["kind"], channel=data["channel"],
                received_on=data["received_on"], details=data["details"], pupil=data["pupil"],
                acknowledge=bool(data["acknowledge"]),
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, f"Request recorded: due by {date_format(rights_request.due_on, 'j F Y')}.")
            return redirect("consent:rights-request", pk=rights_request.pk)
    return render(request, "consent/rights/record.html", {
        "active_nav": "rights", "guardian": guardian, "school": guardian.school, "form": form,
    })
