"""Reviews due, actions overdue (with "mark done"), and the organisation's matrix with its re-mapping preview."""

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import F, OuterRef, Q, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from schools.models import ALL_ROLES, Organisation, Role
from schools.scope import scope_for, scoped_get_or_404, staff_required

from .matrix_change import MATRICES, SCORE_MAPS, matrix_change, matrix_change_preview
from .models import Assessment, AssessmentVersion, Hazard, matrix_for
from .reminders import ACTION_SOON_DAYS, REVIEW_SOON_DAYS, action_mark_done
from .services import EDIT_ROLES

Status = AssessmentVersion.Status
PER_PAGE = 50


def _page(request: HttpRequest, items):
    return Paginator(items, PER_PAGE).get_page(request.GET.get("page"))


@staff_required(ALL_ROLES)
def reviews_due(request: HttpRequest) -> HttpResponse:
    """Assessments whose approved version is due for review within 30 days or overdue, or flagged after an
    incident; soonest first (flagged ones without a date first)."""
    today = timezone.localdate()
    horizon = today + timedelta(days=REVIEW_SOON_DAYS)
    approved = AssessmentVersion.objects.filter(assessment=OuterRef("pk"), status=Status.APPROVED)
    assessments = (
        scope_for(request).filter(Assessment.objects.all(), school_path="school", organisation_path="organisation")
        .annotate(review_on=Subquery(approved.values("review_on")[:1]),
                  approved_number=Subquery(approved.values("number")[:1]),
                  approved_at=Subquery(approved.values("approved_at")[:1]))
        .filter(Q(review_on__lte=horizon) | Q(review_flagged_at__isnull=False))
        .select_related("school", "organisation")
        .order_by(F("review_on").asc(nulls_first=True), "school__name", "title", "pk")
    )
    page = _page(request, assessments)
    for assessment in page:
        assessment.overdue = assessment.review_on is not None and assessment.review_on < today
        assessment.days = (assessment.review_on - today).days if assessment.review_on else None
    return render(request, "riskassess/reviews/reviews_due.html", {
        "page": page, "rows": page.object_list, "today": today, "soon_days": REVIEW_SOON_DAYS,
        "active_nav": "risks",
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


def _may_mark_done(request: HttpRequest, hazard: Hazard) -> bool:
    scope = scope_for(request)
    assessment = hazard.version.assessment
    if hazard.action_owner_id == request.user.pk:
        return True
    if assessment.school_id:
        return bool(scope.roles_at_school(assessment.school_id) & EDIT_ROLES)
    return bool(scope.roles_in_organisation(assessment.organisation_id) & EDIT_ROLES)


@staff_required(ALL_ROLES)
def actions_overdue(request: HttpRequest) -> HttpResponse:
    """Open further actions past their due date (paginated), and below them those due within a week (the ones
    the "due soon" reminder is about), so an owner can mark either done."""
    today = timezone.localdate()
    page = _page(request, _open_actions(request).filter(action_due_on__lt=today))
    soon = list(_open_actions(request).filter(action_due_on__gte=today,
                                             action_due_on__lte=today + timedelta(days=ACTION_SOON_DAYS))[:PER_PAGE])
    for hazard in [*page, *soon]:
        hazard.days = abs((hazard.action_due_on - today).days)
        hazard.may_mark_done = _may_mark_done(request, hazard)
    return render(request, "riskassess/reviews/actions_overdue.html", {
        "page": page, "rows": page.object_list, "soon": soon, "soon_days": ACTION_SOON_DAYS, "today": today,
        "active_nav": "risks",
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
    """Everyone in the organisation reads its matrix; the organisation admin previews and confirms a change
    (GET ?size=5 previews without changing anything; POST confirms)."""
    organisation, may_change = _organisation_or_404(request, organisation_pk)
    current = matrix_for(organisation)
    if request.method == "POST":
        if not may_change:
            raise PermissionDenied
        try:
            size = int(request.POST.get("size", ""))
            matrix_change(organisation=organisation, size=size, actor=request.user)
        except (ValueError, ValidationError) as error:
            message = " ".join(error.messages) if isinstance(error, ValidationError) else "Choose 3×3 or 5×5."
            messages.error(request, message + " Nothing was changed.")
        else:
            messages.success(request, f"{organisation.name} now uses the {size}×{size} matrix; open drafts were "
                                      "re-scored as previewed. Approved versions keep their matrix.")
            return redirect(reverse("riskassess:matrix", args=[organisation.pk]))
    elif request.method != "GET":
        return HttpResponse(status=405)
    proposed_size = request.GET.get("size")
    preview = proposed = mapping = None
    if proposed_size in ("3", "5") and int(proposed_size) != current.size:
        proposed = MATRICES[int(proposed_size)]
        preview = matrix_change_preview(organisation=organisation, size=proposed.size)
        mapping = sorted(SCORE_MAPS[(current.size, proposed.size)].items())
    elif proposed_size is not None and proposed_size != str(current.size):
        messages.error(request, "Choose 3×3 or 5×5.")
    return render(request, "riskassess/reviews/matrix.html", {
        "organisation": organisation, "current": current, "current_grid": _matrix_table(current),
        "may_change": may_change, "proposed": proposed, "proposed_grid": _matrix_table(proposed) if proposed else None,
        "preview": preview, "mapping": mapping, "other_size": 5 if current.size == 3 else 3,
        "active_nav": "risks",
    })
