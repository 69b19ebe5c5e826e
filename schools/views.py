from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from consent.models import Group, Guardian
from consent.views_staff import registry_tools
from outbox.models import OutboxMessage
from outbox.services import OUTBOX_ROLES, outbox_visible_to

from .audit import action_label
from .forms import AuditFilterForm
from .models import AuditEntry, Membership, Role, School
from .scope import get_school_or_404, scope_for, staff_required

AUDIT_READERS = {Role.HEADTEACHER, Role.DPO, Role.SIRO, Role.ORG_ADMIN}


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
    """Headteachers see their schools' entries; organisation roles also see organisation-wide ones;
    everyone sees what they did themselves (e.g. their own sign-ins, filed organisation-wide when they
    work at several schools)."""
    readable_schools = scope.schools_where(AUDIT_READERS)
    org_ids = [oid for oid, roles in scope.roles_by_organisation.items() if roles & AUDIT_READERS]
    return AuditEntry.objects.filter(
        Q(school_id__in=readable_schools)
        | Q(school_id__isnull=True, organisation_id__in=org_ids)
        | Q(actor_kind=AuditEntry.ActorKind.STAFF, actor_id=scope.user_id)
    )


# Objects recorded by number (pupils, parents, consent events) link to their page, where the reader's
# scope decides what they may see (and a deleted object answers 404).
AUDIT_OBJECT_PAGES = {
    "consent.pupil": "consent:pupil",
    "consent.guardian": "consent:guardian",
    "consent.consentevent": "consent:event",
}


def _audit_object_url(entry: AuditEntry) -> str:
    name = AUDIT_OBJECT_PAGES.get(entry.object_type)
    return reverse(name, kwargs={"pk": entry.object_id}) if name and entry.object_id.isdigit() else ""


@staff_required(roles=AUDIT_READERS)
def audit_list(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request)
    entries = _audit_entries_for(scope)
    form = AuditFilterForm(request.GET or None)
    if form.is_valid():
        entries = form.apply(entries)
    page = Paginator(entries.order_by("-seq"), 50).get_page(request.GET.get("page"))
    school_names = dict(School.objects.filter(pk__in=scope.school_ids).values_list("pk", "name"))
    rows = [
        (entry, action_label(entry.action), school_names.get(entry.school_id), _audit_object_url(entry))
        for entry in page
    ]
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
