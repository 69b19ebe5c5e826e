from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from consent.models import Group, Guardian
from consent.views_staff import registry_tools
from outbox.models import OutboxMessage
from outbox.services import OUTBOX_ROLES, outbox_visible_to

from .activity import AUDIT_READERS, activity_rows, audit_entries_for
from .audit import action_label
from .forms import AuditFilterForm
from .models import Membership, Role, School
from .scope import get_school_or_404, scope_for, staff_required


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("schools:dashboard")
    return redirect("accounts:login")


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request)
    schools = (
        School.objects.filter(pk__in=scope.school_ids)
        .select_related("organisation")
        .annotate(
            pupil_count=Count("pupils", filter=Q(pupils__left_on__isnull=True), distinct=True),
        )
        .order_by("organisation__name", "name")
    )
    # One query per count, whatever the number of schools, rather than one per school.
    guardian_counts = dict(
        Guardian.objects.filter(school__in=scope.school_ids)
        .values_list("school")
        .annotate(n=Count("id"))
        .values_list("school", "n")
    )
    group_counts = dict(
        Group.objects.filter(school__in=scope.school_ids)
        .values_list("school")
        .annotate(n=Count("id"))
        .values_list("school", "n")
    )
    cards = [
        {
            "school": school,
            "roles": sorted(Role(r).label for r in scope.roles_at_school(school.pk)),
            "pupils": school.pupil_count,
            "guardians": guardian_counts.get(school.pk, 0),
            "groups": group_counts.get(school.pk, 0),
        }
        for school in schools
    ]
    recent = []
    if scope.has_any_role(AUDIT_READERS):
        recent = [
            (entry, action_label(entry.action))
            for entry in _audit_entries_for(scope).order_by("-seq")[:8]
        ]
    email_problems = None
    if scope.has_any_role(OUTBOX_ROLES):
        email_problems = outbox_visible_to(scope).aggregate(
            failed=Count("id", filter=Q(status=OutboxMessage.Status.FAILED)),
            possible_duplicates=Count("id", filter=Q(possible_duplicate__gt=0)),
        )
    organisation_roles = Membership.objects.filter(user=request.user, school__isnull=True).select_related(
        "organisation"
    )
    return render(
        request,
        "schools/dashboard.html",
        {
            "active_nav": "dashboard",
            "cards": cards,
            "organisation_roles": organisation_roles,
            "recent": recent,
            "email_problems": email_problems,
            "has_memberships": bool(scope.roles),
        },
    )


@login_required
def school_detail(request: HttpRequest, pk: int) -> HttpResponse:
    school = get_school_or_404(request, pk)
    groups = (
        Group.objects.filter(school=school)
        .annotate(pupil_count=Count("pupils", filter=Q(pupils__left_on__isnull=True)))
        .order_by("kind", "name")
    )
    staff = (
        Membership.objects.filter(Q(school=school) | Q(school__isnull=True, organisation=school.organisation))
        .select_related("user")
        .order_by("user__last_name", "user__first_name", "role")
    )
    return render(
        request,
        "schools/school_detail.html",
        {"active_nav": "dashboard", "school": school, "groups": groups, "staff": staff,
         **registry_tools(request, school)},
    )


def _audit_entries_for(scope):
    # The dashboard's name for it; the rule itself lives in schools/activity.py beside the feed.
    return audit_entries_for(scope)


@staff_required(roles=AUDIT_READERS)
def audit_list(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request)
    entries = audit_entries_for(scope)
    form = AuditFilterForm(request.GET or None)
    if form.is_valid():
        entries = form.apply(entries)
    page = Paginator(entries.order_by("-seq"), 50).get_page(request.GET.get("page"))
    rows = activity_rows(page, scope)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "schools/audit_list.html",
        {
            "active_nav": "audit",
            "form": form,
            "page": page,
            "rows": rows,
            "query": query.urlencode(),
        },
    )


@login_required
def glossary(request: HttpRequest) -> HttpResponse:
    """The words Gatehouse uses, in plain language: for every member of staff, whatever their role."""
    return render(request, "schools/glossary.html", {"active_nav": "glossary"})
