from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from consent.models import Group
from consent.views_staff import registry_tools
from lib.refusal import Refused

from .activity import AUDIT_READERS, activity_rows, audit_entries_for
from .forms import AuditFilterForm, OrganisationSettingsForm
from .home import home_page
from .models import Membership, Organisation
from .scope import get_school_or_404, scope_for, staff_required
from .settings_page import may_change_settings, organisation_settings_save


@login_required
def help_index(request: HttpRequest) -> HttpResponse:
    return redirect("schools:glossary")


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("schools:dashboard")
    return redirect("accounts:login")


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The home page: each of the person's roles has its section (`schools.home`)."""
    scope = scope_for(request)
    chosen = request.GET.get("school", "")
    home = home_page(request.user, scope, coverage_school=int(chosen) if chosen.isdigit() else None)
    request._needs_you = home.needs_you  # the navigation bar's count, without asking twice
    recent = []
    if scope.has_any_role(AUDIT_READERS):
        # Pupils and parents named from the live record for the reader's scope; the trail keeps ids only.
        # Sign-ins and second-factor checks stay on the audit page: the home page shows what changed.
        changes = audit_entries_for(scope).exclude(action__startswith="auth.")
        recent = activity_rows(list(changes.order_by("-seq")[:8]), scope)
    return render(
        request,
        "schools/dashboard.html",
        {
            "active_nav": "dashboard",
            "home": home,
            "recent": recent,
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


@staff_required(roles=AUDIT_READERS, refusal="The audit trail is for headteachers, the DPO, the SIRO and the "
                                              "organisation's admin.")
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


@staff_required()
@require_http_methods(["GET", "POST"])
def organisation_settings(request: HttpRequest, organisation_pk: int) -> HttpResponse:
    scope = scope_for(request)
    organisation = get_object_or_404(Organisation.objects.filter(pk__in=scope.organisation_ids), pk=organisation_pk)
    if not may_change_settings(scope, organisation.pk):
        raise Refused("Only the organisation's admin changes the organisation's settings.")
    initial = {"coverage_warning_percent": organisation.coverage_warning_percent,
               "digest_hour": organisation.digest_hour}
    form = OrganisationSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        changed = organisation_settings_save(organisation=organisation, actor=request.user, **form.cleaned_data)
        messages.success(request, "Saved." if changed else "Nothing changed.")
        return redirect("schools:organisation-settings", organisation_pk=organisation.pk)
    return render(request, "schools/organisation_settings.html",
                  {"active_nav": "dashboard", "organisation": organisation, "form": form})
