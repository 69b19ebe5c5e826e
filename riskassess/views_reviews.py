"""Reviews due, actions overdue (with "mark done"), and the organisation's matrix with its re-mapping preview."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import F, OuterRef, Q, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from schools.models import ALL_ROLES, Organisation, Role, School
from schools.scope import scope_for, scoped_get_or_404, staff_required

from .forms_matrix import MatrixForm
from .matrix_change import matrix_change, matrix_change_preview
from .models import Assessment, AssessmentVersion, Hazard, matrix_for
from .reminders import ACTION_SOON_DAYS, REVIEW_SOON_DAYS, action_mark_done, assessment_today, local_date_filter
from .services import EDIT_ROLES, acting_roles

Status = AssessmentVersion.Status
PER_PAGE = 50


def _page(request: HttpRequest, items):
    return Paginator(items, PER_PAGE).get_page(request.GET.get("page"))


def _zones(request: HttpRequest) -> set[str]:
    """The time zones of the schools and organisations in the user's scope (a handful)."""
    scope = scope_for(request)
    return (set(School.objects.filter(pk__in=scope.school_ids).values_list("time_zone", flat=True))
            | set(Organisation.objects.filter(pk__in=scope.organisation_ids).values_list("time_zone", flat=True)))


@staff_required(ALL_ROLES)
def reviews_due(request: HttpRequest) -> HttpResponse:
    """Assessments whose approved version is due for review within 30 days or overdue, or flagged after an
    incident; soonest first (flagged ones without a date first). Days are counted in each assessment's own
    time zone (`reminders.assessment_tz`), as the reminders count them."""
    now = timezone.now()
    approved = AssessmentVersion.objects.filter(assessment=OuterRef("pk"), status=Status.APPROVED)
    due_soon = local_date_filter(assessment_path="", lookup="review_on__lte", zones=_zones(request), now=now,
                                 days=REVIEW_SOON_DAYS)
    assessments = (
        scope_for(request).filter(Assessment.objects.all(), school_path="school", organisation_path="organisation")
        .annotate(review_on=Subquery(approved.values("review_on")[:1]),
                  approved_number=Subquery(approved.values("number")[:1]),
                  approved_at=Subquery(approved.values("approved_at")[:1]))
        .filter(due_soon | Q(review_flagged_at__isnull=False))
        .select_related("school", "organisation")
        .order_by(F("review_on").asc(nulls_first=True), "school__name", "title", "pk")
    )
    page = _page(request, assessments)
    for assessment in page:
        today = assessment_today(assessment, now)
        assessment.overdue = assessment.review_on is not None and assessment.review_on < today
        assessment.days = (assessment.review_on - today).days if assessment.review_on else None
    return render(request, "riskassess/reviews/reviews_due.html", {
        "page": page, "rows": page.object_list, "soon_days": REVIEW_SOON_DAYS, "active_nav": "risks",
    })


def _open_actions(request: HttpRequest):
    return (
        scope_for(request).filter(Hazard.objects.all(), school_path="version__assessment__school",
                                  organisation_path="version__assessment__organisation")
        .filter(version__status=Status.APPROVED, action_due_on__isnull=False, action_done_on__isnull=True)
        .exclude(further_action="")
        .select_related("version__assessment__school", "version__assessment__organisation", "action_owner")
        .order_by("action_due_on", "version__assessment__title", "position", "pk")
    )


def _may_mark_done(request: HttpRequest, hazard: Hazard, cache: dict | None = None) -> bool:
    """The action's owner, or whoever may edit its assessment (for an organisation-wide one: the organisation
    admin or a headteacher of every school, as `services.acting_roles` says). `cache` keeps the answer per
    school or organisation for a page of rows."""
    if hazard.action_owner_id == request.user.pk:
        return True
    assessment = hazard.version.assessment
    key = (assessment.school_id, assessment.organisation_id)
    cache = {} if cache is None else cache
    if key not in cache:
        cache[key] = bool(acting_roles(scope_for(request), assessment) & EDIT_ROLES)
    return cache[key]


@staff_required(ALL_ROLES)
def actions_overdue(request: HttpRequest) -> HttpResponse:
    """Open further actions past their due date (paginated), and below them those due within a week (the ones
    the "due soon" reminder is about), so an owner can mark either done. "Past" and "within a week" are
    counted in each assessment's own time zone, as the reminders count them."""
    now = timezone.now()
    zones = _zones(request)

    def local(lookup: str, days: int = 0) -> Q:
        return local_date_filter(assessment_path="version__assessment", lookup=lookup, zones=zones, now=now,
                                 days=days)

    page = _page(request, _open_actions(request).filter(local("action_due_on__lt")))
    soon = list(_open_actions(request).filter(local("action_due_on__gte"),
                                              local("action_due_on__lte", ACTION_SOON_DAYS))[:PER_PAGE])
    may: dict = {}
    for hazard in [*page, *soon]:
        hazard.days = abs((hazard.action_due_on - assessment_today(hazard.version.assessment, now)).days)
        hazard.may_mark_done = _may_mark_done(request, hazard, may)
    return render(request, "riskassess/reviews/actions_overdue.html", {
        "page": page, "rows": page.object_list, "soon": soon, "soon_days": ACTION_SOON_DAYS, "active_nav": "risks",
    })


@require_POST
@staff_required(ALL_ROLES)
def action_done(request: HttpRequest, pk: int) -> HttpResponse:
    hazard = scoped_get_or_404(
        request, Hazard.objects.select_related("version__assessment"), roles=ALL_ROLES,
        school_path="version__assessment__school", organisation_path="version__assessment__organisation", pk=pk,
    )
    if not _may_mark_done(request, hazard):
        raise PermissionDenied
    try:
        hazard = action_mark_done(hazard=hazard, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Marked done: “{hazard.further_action[:80]}” ({hazard.version.assessment.title}).")
    return redirect("riskassess:actions-overdue")


def _organisation_or_404(request: HttpRequest, organisation_pk: int) -> tuple[Organisation, bool]:
    scope = scope_for(request)
    if organisation_pk not in scope.organisation_ids:
        raise Http404
    organisation = get_object_or_404(Organisation, pk=organisation_pk)
    may_change = Role.ORG_ADMIN in scope.roles_by_organisation.get(organisation.pk, frozenset())
    return organisation, may_change


def _matrix_table(matrix) -> list[dict]:
    """Rows of the grid, highest likelihood first, as the seed's key shows it."""
    rows = []
    for likelihood in reversed(matrix.levels):
        cells = []
        for severity in matrix.levels:
            rating = matrix.rating(likelihood, severity)
            cells.append({"rating": rating, "band": matrix.band(rating)})
        rows.append({"score": likelihood, "label": matrix.likelihood_label(likelihood), "cells": cells})
    return rows


@staff_required(ALL_ROLES)
def matrix(request: HttpRequest, organisation_pk: int) -> HttpResponse:
    """Everyone in the organisation reads its matrix. The organisation admin fills in the form (the seed's 3×3,
    or a 5×5 with their own labels and bands) and previews (POST "preview": changes nothing), then confirms
    (POST "confirm", carrying the preview's fingerprint)."""
    organisation, may_change = _organisation_or_404(request, organisation_pk)
    current = matrix_for(organisation)
    form = preview = None
    if request.method == "POST":
        if not may_change:
            raise PermissionDenied
        form = MatrixForm(request.POST, current=current)
        if not form.is_valid():
            messages.error(request, "The matrix was not changed: correct what is marked below.")
        elif form.matrix == current:
            messages.info(request, "That is the matrix the organisation already uses: nothing to change.")
        elif request.POST.get("action") == "confirm":
            try:
                matrix_change(organisation=organisation, matrix=form.matrix, actor=request.user,
                              fingerprint=request.POST.get("fingerprint", ""))
            except ValidationError as error:
                messages.error(request, " ".join(error.messages) + " Nothing was changed.")
                preview = matrix_change_preview(organisation=organisation, matrix=form.matrix)
            else:
                size = form.matrix.size
                messages.success(request, f"{organisation.name} now uses the {size}×{size} matrix shown below; open "
                                          "drafts were re-scored as previewed. Approved versions, and PIAs in "
                                          "sign-off, keep their matrix.")
                return redirect(reverse("riskassess:matrix", args=[organisation.pk]))
        else:
            preview = matrix_change_preview(organisation=organisation, matrix=form.matrix)
    elif request.method != "GET":
        return HttpResponse(status=405)
    elif may_change:
        form = MatrixForm(current=current)
    return render(request, "riskassess/reviews/matrix.html", {
        "organisation": organisation, "current": current, "current_grid": _matrix_table(current),
        "may_change": may_change, "form": form, "preview": preview,
        "proposed_grid": _matrix_table(preview.new) if preview else None, "active_nav": "risks",
    })
