"""The risk register's outputs: a version's PDF, the register's CSV, the heat maps (services in outputs.py).

Everyone who reads an assessment may download it: teachers and office read their school's, the DPO and the
SIRO read across the organisation; another school's assessment answers 404.
"""

from zoneinfo import ZoneInfo

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from lib.http import as_download
from schools.models import ALL_ROLES, Organisation, Role
from schools.scope import get_school_or_404, scope_for, scoped_get_or_404

from . import outputs
from .models import Assessment, AssessmentVersion, matrix_for

READ_ROLES = ALL_ROLES
ORGANISATION_EXPORT_ROLES = frozenset({Role.DPO, Role.SIRO, Role.ORG_ADMIN})
# The organisation's heat map lists every school's hazards: for the organisation's roles (DPO, SIRO, admin) and a
# headteacher of every school of it (`roles_for_whole_organisation`), never the head of one school among several.
ORGANISATION_HEATMAP_ROLES = frozenset({Role.DPO, Role.SIRO, Role.ORG_ADMIN, Role.HEADTEACHER})


def _version(request: HttpRequest, pk: int) -> AssessmentVersion:
    return scoped_get_or_404(
        request, AssessmentVersion.objects.select_related("assessment__school", "assessment__organisation"),
        roles=READ_ROLES, school_path="assessment__school", organisation_path="assessment__organisation", pk=pk,
    )


@login_required
@require_GET
def version_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    version = _version(request, pk)
    name = slugify(version.assessment.title)[:60] or "risk-assessment"
    if version.is_frozen:
        if not version.pdf:
            version = outputs.version_pdf_store(version=version, actor=request.user)
        content = outputs.stored_pdf_bytes(version)
        filename = f"{name}-v{version.number}.pdf"
    else:
        content = outputs.version_pdf_render(version)
        filename = f"{name}-v{version.number}-draft.pdf"
    return as_download(HttpResponse(content, content_type="application/pdf"), filename)


def _csv_response(content: str, filename: str) -> HttpResponse:
    return as_download(HttpResponse(content.encode("utf-8"), content_type="text/csv; charset=utf-8"), filename)


@login_required
@require_GET
def school_register_csv(request: HttpRequest, school_pk: int) -> HttpResponse:
    school = get_school_or_404(request, school_pk, roles=READ_ROLES)
    content = outputs.register_csv(assessments=outputs.assessments_of_school(school), actor=request.user,
                                   school=school)
    slug = slugify(school.slug) or f"school-{school.pk}"
    return _csv_response(content, f"risk-register-{slug}-{outputs.now_for_filename(school.tz)}.csv")


@login_required
@require_GET
def organisation_register_csv(request: HttpRequest, organisation_pk: int) -> HttpResponse:
    scope = scope_for(request)
    if organisation_pk not in scope.organisation_ids:
        raise Http404
    organisation = get_object_or_404(Organisation, pk=organisation_pk)
    if not scope.roles_in_organisation(organisation.pk) & ORGANISATION_EXPORT_ROLES:
        raise PermissionDenied
    content = outputs.register_csv(assessments=Assessment.objects.filter(organisation=organisation),
                                   actor=request.user, organisation=organisation)
    slug = slugify(organisation.slug) or f"organisation-{organisation.pk}"
    today = outputs.now_for_filename(ZoneInfo(organisation.time_zone))
    return _csv_response(content, f"risk-register-{slug}-{today}.csv")


def _selected_cell(request: HttpRequest, matrix) -> tuple[str, int, int] | None:
    """The clicked cell from the query string, or None (an unknown or off-matrix value is ignored)."""
    kind = request.GET.get("kind")
    try:
        likelihood, severity = int(request.GET.get("likelihood", "")), int(request.GET.get("severity", ""))
    except ValueError:
        return None
    if kind not in outputs.KINDS or likelihood not in matrix.levels or severity not in matrix.levels:
        return None
    return kind, likelihood, severity


def _cell(request: HttpRequest, hazards, matrix) -> dict | None:
    """The clicked cell with its hazards, or None."""
    selected = _selected_cell(request, matrix)
    if not selected:
        return None
    kind, likelihood, severity = selected
    rating = matrix.rating(likelihood, severity)
    return {
        "kind": kind, "kind_title": outputs.KINDS[kind], "likelihood": likelihood, "severity": severity,
        "likelihood_label": matrix.likelihood_label(likelihood), "severity_label": matrix.severity_label(severity),
        "band": matrix.band(rating), "rating": rating,
        "hazards": list(outputs.cell_hazards(hazards, kind=kind, likelihood=likelihood, severity=severity)),
    }


def _heatmap(request, *, hazards, matrix, context: dict, template="riskassess/outputs/heatmap.html"):
    return render(request, template, {
        **context, "grids": outputs.heat_grids(hazards, matrix), "matrix": matrix,
        "severity_labels": list(enumerate(matrix.severity_labels, start=1)), "cell": _cell(request, hazards, matrix),
        "active_nav": "risks",
    })


@login_required
@require_GET
def version_heatmap(request: HttpRequest, pk: int) -> HttpResponse:
    version = _version(request, pk)
    return _heatmap(request, hazards=version.hazards.all(), matrix=version.get_matrix(), context={
        "version": version, "assessment": version.assessment, "school": version.assessment.school,
    })


@login_required
@require_GET
def school_heatmap(request: HttpRequest, school_pk: int) -> HttpResponse:
    school = get_school_or_404(request, school_pk, roles=READ_ROLES)
    matrix = outputs.school_matrix(school)
    hazards, versions, other_matrix = outputs.school_current_hazards(school, matrix)
    may_see_organisation = bool(scope_for(request).roles_for_whole_organisation(school.organisation_id)
                                & ORGANISATION_HEATMAP_ROLES)
    return _heatmap(request, hazards=hazards, matrix=matrix, context={
        "school": school, "version_count": versions, "other_matrix_count": other_matrix,
        "organisation_heatmap": school.organisation if may_see_organisation else None,
    })


@login_required
@require_GET
def organisation_heatmap(request: HttpRequest, organisation_pk: int) -> HttpResponse:
    """Every current approved version of the organisation (its schools' and its own), for those who look across
    it. Versions approved on an earlier matrix are shown on their own grids, never added to the current one."""
    scope = scope_for(request)
    if organisation_pk not in scope.organisation_ids:
        raise Http404
    organisation = get_object_or_404(Organisation, pk=organisation_pk)
    if not scope.roles_for_whole_organisation(organisation.pk) & ORGANISATION_HEATMAP_ROLES:
        raise PermissionDenied
    current = matrix_for(organisation)
    groups = outputs.heat_groups(outputs.organisation_current_versions(organisation), current)
    chosen = request.GET.get("matrix") or (groups[0].key if groups else "")
    shown = []
    earlier = [group for group in groups if not group.current]
    for group in groups:
        hazards = group.hazards
        size = f"{group.matrix.size}×{group.matrix.size}"
        if group.current:
            label = f"the current {size} matrix"
        else:
            label = f"an earlier {size} matrix" + (f" ({earlier.index(group) + 1} of {len(earlier)})"
                                                    if len(earlier) > 1 else "")
        shown.append({
            "group": group, "label": label, "grids": outputs.heat_grids(hazards, group.matrix),
            "severity_labels": list(enumerate(group.matrix.severity_labels, start=1)),
            "cell": _cell(request, hazards, group.matrix) if group.key == chosen else None,
        })
    cell = next((item["cell"] for item in shown if item["cell"]), None)
    return render(request, "riskassess/outputs/organisation_heatmap.html", {
        "organisation": organisation, "groups": shown, "current": current, "cell": cell,
        "version_count": sum(len(group.version_ids) for group in groups),
        "mixed": len(groups) > 1 or any(not group.current for group in groups), "active_nav": "risks",
    })
