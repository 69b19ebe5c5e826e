"""The consent register's exports: the pupils the pupil list shows (same filters, all pages), as CSV or PDF.

Who may take a bulk copy of pupils' and parents' personal data: the headteacher (the controller's
representative at the school), the office (who keep the register), the organisation admin and the DPO
(who files the register as evidence). Teachers read the register on screen for their lessons but do
not take bulk copies of it, and the SIRO owns the risk, not the data: both get 403. Another school's
register does not exist for anyone (404).
"""

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from lib.http import as_download
from schools.audit import audit_log
from schools.models import Role, School
from schools.scope import get_school_or_404, scope_for

from .exports import csv_lines, register_pdf, register_rows
from .forms import STATUS_CHOICES, RegistryFilterForm
from .models import Guardianship, Purpose
from .views_staff import filtered_pupils, purpose_for_school

EXPORT_ROLES = frozenset({Role.HEADTEACHER, Role.OFFICE, Role.ORG_ADMIN, Role.DPO})
# WeasyPrint lays out the whole document in memory, in the request, at 10-25 ms a pupil on a 2-core
# machine (1,000 pupils: about 40 pages, 12-30 s, 300 MB). Past this the PDF is refused with a pointer
# to a group filter or the CSV, which streams any number of pupils.
PDF_MAX_ROWS = 1000


def may_export(request: HttpRequest, school: School) -> bool:
    """Whether to show the export buttons on the pupil list."""
    return bool(scope_for(request).roles_at_school(school.pk) & EXPORT_ROLES)


def _audit_filters(filters: dict) -> dict:
    # The search words may be a pupil's name: the audit trail records that a search narrowed the
    # export, never what was searched for.
    return {
        "status": filters.get("status") or "",
        "renewal": bool(filters.get("renewal")),
        "leavers": bool(filters.get("leavers")),
        "search": bool(filters.get("q")),
    }


def _describe_filters(filters: dict) -> list[str]:
    """The filters in words, printed on the PDF so that the document says what it covers."""
    described = []
    if filters.get("status"):
        described.append(f"Status: {dict(STATUS_CHOICES)[filters['status']]}")
    if filters.get("renewal"):
        described.append("Renewal needed only")
    if filters.get("q"):
        described.append(f"Search: “{filters['q']}”")
    described.append("Leavers included" if filters.get("leavers") else "Pupils on roll (leavers left out)")
    return described


@dataclass(frozen=True)
class Selection:
    school: School
    purpose: Purpose
    filters: dict
    pupil_ids: list[int]
    pupils: QuerySet

    @property
    def group(self):
        return self.filters.get("group")


def _selection(request: HttpRequest, school_pk: int) -> Selection | HttpResponse:
    """What to export (school, purpose, filters, pupils), or a redirect to the pupil list with a message."""
    school = get_school_or_404(request, school_pk, roles=EXPORT_ROLES)
    back = redirect("consent:pupils", school_pk=school.pk)
    purpose = purpose_for_school(school, request)
    if purpose is None:
        messages.error(request, f"Nothing has been set up yet for parents at {school.organisation} to agree to: "
                                "nothing to export.")
        return back
    form = RegistryFilterForm(request.GET or None, school=school)
    if form.is_bound and not form.is_valid():
        # Never widen an export silently: a group of another school or an unknown status is refused.
        messages.error(request, "These filters are not valid, so nothing was exported. Choose them again.")
        return back
    filters = form.cleaned_data if form.is_bound else {}
    pupils = filtered_pupils(school=school, purpose=purpose, filters=filters)
    return Selection(school=school, purpose=purpose, filters=filters,
                     pupil_ids=list(pupils.values_list("pk", flat=True)), pupils=pupils)


def _filename(school: School, group, extension: str) -> str:
    today = timezone.now().astimezone(school.tz).date().isoformat()
    parts = ["consent-register", slugify(school.slug) or f"school-{school.pk}"]
    if group is not None:
        parts.append(slugify(group.name) or f"group-{group.pk}")
    parts.append(today)
    return f"{'-'.join(parts)}.{extension}"


def _audit(request: HttpRequest, selection: Selection, *, fmt: str) -> None:
    school, group = selection.school, selection.group
    audit_log(actor=request.user, action="registry.exported", obj=school, school=school, data={
        "format": fmt, "school": school.pk, "group": group.pk if group else None,
        "filters": _audit_filters(selection.filters), "rows": len(selection.pupil_ids),
    })


@login_required
@require_GET
def register_csv(request: HttpRequest, school_pk: int) -> HttpResponse:
    selection = _selection(request, school_pk)
    if isinstance(selection, HttpResponse):
        return selection
    school = selection.school
    # As many guardian columns as the pupil with most guardians needs (one query, in the database).
    most = (
        Guardianship.objects.filter(pupil_id__in=selection.pupils.values("pk")).values("pupil_id")
        .annotate(n=Count("pk")).order_by("-n").values_list("n", flat=True).first()
    )
    _audit(request, selection, fmt="csv")
    rows = register_rows(selection.pupil_ids, purpose=selection.purpose, tz=school.tz)
    # Streamed in batches: 10,000 pupils never sit in memory at once, nor keep the client waiting.
    lines = (line.encode("utf-8") for line in csv_lines(rows, max_guardians=max(most or 0, 1)))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    return as_download(response, _filename(school, selection.group, "csv"))


@login_required
@require_GET
def register_pdf_view(request: HttpRequest, school_pk: int) -> HttpResponse:
    selection = _selection(request, school_pk)
    if isinstance(selection, HttpResponse):
        return selection
    school, group, count = selection.school, selection.group, len(selection.pupil_ids)
    if count > PDF_MAX_ROWS:
        messages.error(request, f"{count:,} pupils are too many for one PDF (at most {PDF_MAX_ROWS:,}): "
                                "choose a group or another filter, or download the CSV.")
        return redirect("consent:pupils", school_pk=school.pk)
    rows = list(register_rows(selection.pupil_ids, purpose=selection.purpose, tz=school.tz))
    pdf = register_pdf(rows=rows, context={
        "school": school,
        "organisation": school.organisation,
        "purpose": selection.purpose,
        "group": group,
        "scope_label": group.name if group else "whole school",
        "notice": selection.purpose.current_notice(),
        "filters": _describe_filters(selection.filters),
        "generated_at": timezone.now().astimezone(school.tz),
        "generated_by": request.user,
    })
    _audit(request, selection, fmt="pdf")
    return as_download(HttpResponse(pdf, content_type="application/pdf"), _filename(school, group, "pdf"))
