"""The PIA's outputs pages: a version's PDF, the privacy notice text for parents (and adopting it as a consent
notice draft), the organisation's platforms with their approval, and the action plan of signed PIAs.

Reading follows the PIA's rule: headteacher and office read every PIA covering their school, the DPO, SIRO and
organisation admin every PIA of their organisation, teachers only signed (and superseded) versions; another
organisation's PIA answers 404. Platforms and the action plan of signed PIAs are read by everyone in the
organisation.
"""

from datetime import timedelta
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import F, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from consent.models import Purpose
from lib.http import as_download
from schools.models import ALL_ROLES, Organisation, School
from schools.scope import scope_for, scoped_get_or_404, staff_required

from . import outputs, platforms
from .editing import may_read_version
from .forms_outputs import NoticeAdoptForm, PlatformForm
from .models import Action, PiaVersion, Platform
from .reminders import ACTION_SOON_DAYS, action_mark_done, action_state, may_mark_done, pia_today

Status = PiaVersion.Status
PER_PAGE = 50


def _version(request: HttpRequest, pk: int) -> PiaVersion:
    version = scoped_get_or_404(
        request, PiaVersion.objects.select_related("pia__school", "pia__organisation"), roles=ALL_ROLES,
        school_path="pia__school", organisation_path="pia__organisation", pk=pk,
    )
    if not may_read_version(scope_for(request), version):
        raise PermissionDenied
    return version


# --- The PDF -------------------------------------------------------------------------------------------


@staff_required(ALL_ROLES)
@require_GET
def version_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    """A signed version's stored PDF (stored on its first download); any other version rendered live, marked
    DRAFT."""
    version = _version(request, pk)
    content = outputs.version_pdf_bytes(version=version, actor=request.user)
    return as_download(HttpResponse(content, content_type="application/pdf"), outputs.version_pdf_filename(version))


# --- The privacy notice --------------------------------------------------------------------------------


@staff_required(ALL_ROLES)
@require_http_methods(["GET", "HEAD", "POST"])
def notice(request: HttpRequest, pk: int) -> HttpResponse:
    """The parent-facing privacy notice text of a signed version (to copy), and "adopt as a new draft of the
    consent notice" for those who edit consent notices."""
    version = _version(request, pk)
    pia = version.pia
    may_adopt = outputs.may_adopt_notice(scope_for(request), version)
    form = None
    if may_adopt:
        form = NoticeAdoptForm(request.POST if request.method == "POST" else None, organisation=pia.organisation)
    if request.method == "POST":
        if not may_adopt:
            if version.status != PiaVersion.Status.SIGNED:
                messages.error(request, "Only the current signed version's privacy notice can be adopted.")
                return redirect("pia:notice", pk=version.pk)
            raise PermissionDenied
        if form.is_valid():
            purpose = form.cleaned_data["purpose"]
            try:
                draft = outputs.notice_adopt(version=version, purpose=purpose, actor=request.user,
                                             replace_draft=form.cleaned_data["replace_draft"])
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, f"The privacy notice of “{purpose.name}” now has a draft with this text. "
                                          f"Check it, then publish it from the notice's page.")
                return redirect(reverse("consent:notice-edit", args=[draft.purpose_id]))
    text = outputs.notice_text(version) if version.is_frozen_for_good else ""
    return render(request, "pia/outputs/notice.html", {
        "version": version, "pia": pia, "text": text, "form": form, "may_adopt": may_adopt,
        "has_purposes": may_adopt and Purpose.objects.filter(organisation=pia.organisation).exists(),
        "active_nav": "pia",
    })


# --- Platforms -----------------------------------------------------------------------------------------


@staff_required(ALL_ROLES)
@require_GET
def platform_list(request: HttpRequest) -> HttpResponse:
    """Every platform of the user's organisations with its approval and the reasons it is not approved."""
    scope = scope_for(request)
    groups = []
    for organisation in Organisation.objects.filter(pk__in=scope.organisation_ids).order_by("name"):
        groups.append({
            "organisation": organisation,
            "rows": platforms.platforms_with_status(organisation=organisation),
            "may_manage": platforms.may_manage(scope, organisation.pk),
        })
    return render(request, "pia/outputs/platforms.html", {"groups": groups, "active_nav": "pia"})


def _organisation(request: HttpRequest, organisation_pk: int) -> Organisation:
    scope = scope_for(request)
    if organisation_pk not in scope.organisation_ids:
        raise Http404
    organisation = get_object_or_404(Organisation, pk=organisation_pk)
    if not platforms.may_manage(scope, organisation.pk):
        raise PermissionDenied
    return organisation


def _platform_form_page(request: HttpRequest, organisation: Organisation, platform: Platform | None):
    initial = {"name": platform.name, "kind": platform.kind, "pia": platform.pia_id} if platform else None
    form = PlatformForm(request.POST if request.method == "POST" else None, initial=initial,
                        organisation=organisation, scope=scope_for(request))
    if request.method == "POST" and form.is_valid():
        try:
            saved = platforms.platform_save(organisation=organisation, actor=request.user, platform=platform,
                                            **form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            status = platforms.platform_status(platform=saved)
            verdict = "approved" if status.ok else "not approved: " + " ".join(status.reasons)
            messages.success(request, f"{saved.name} is {'registered' if platform is None else 'saved'} — {verdict}")
            return redirect("pia:platforms")
    return render(request, "pia/outputs/platform_form.html", {
        "form": form, "organisation": organisation, "platform": platform, "active_nav": "pia",
    })


def _add_errors(form, error: ValidationError) -> None:
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        form.add_error(field if field in form.fields else None, errors)


@staff_required(ALL_ROLES)
@require_http_methods(["GET", "HEAD", "POST"])
def platform_new(request: HttpRequest, organisation_pk: int) -> HttpResponse:
    return _platform_form_page(request, _organisation(request, organisation_pk), None)


def _platform(request: HttpRequest, pk: int) -> Platform:
    platform = scoped_get_or_404(request, Platform.objects.select_related("organisation"), roles=ALL_ROLES,
                                 school_path=None, organisation_path="organisation", pk=pk)
    if not platforms.may_manage(scope_for(request), platform.organisation_id):
        raise PermissionDenied
    return platform


@staff_required(ALL_ROLES)
@require_http_methods(["GET", "HEAD", "POST"])
def platform_edit(request: HttpRequest, pk: int) -> HttpResponse:
    platform = _platform(request, pk)
    return _platform_form_page(request, platform.organisation, platform)


@staff_required(ALL_ROLES)
@require_POST
def platform_remove(request: HttpRequest, pk: int) -> HttpResponse:
    platform = _platform(request, pk)
    try:
        platforms.platform_remove(platform=platform, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"{platform.name} is no longer on the list of platforms.")
    return redirect("pia:platforms")


# --- The action plan -----------------------------------------------------------------------------------

STATES = {
    "open": "Open",
    "overdue": "Overdue",
    "soon": f"Due within {ACTION_SOON_DAYS} days",
    "done": "Done",
    "all": "All",
}


def _zones(scope) -> set[str]:
    return (set(School.objects.filter(pk__in=scope.school_ids).values_list("time_zone", flat=True))
            | set(Organisation.objects.filter(pk__in=scope.organisation_ids).values_list("time_zone", flat=True)))


def _due(lookup: str, zones: set[str], now, days: int = 0) -> Q:
    """`due_on <lookup> today + days`, today counted in each action's own PIA's time zone (`pia_tz`), so the
    page filters and paginates in the database and agrees with the reminders."""
    branches = Q(pk__in=[])
    for name in sorted(zones):
        today = timezone.localdate(now, ZoneInfo(name)) + timedelta(days=days)
        branches |= Q(version__pia__school__time_zone=name, **{f"due_on__{lookup}": today})
        branches |= Q(version__pia__school__isnull=True, version__pia__organisation__time_zone=name,
                      **{f"due_on__{lookup}": today})
    return branches


@staff_required(ALL_ROLES)
@require_GET
def action_list(request: HttpRequest) -> HttpResponse:
    """The action plans of the current signed PIAs in the user's scope: open ones first, soonest due first."""
    scope = scope_for(request)
    state = request.GET.get("state", "open")
    if state not in STATES:
        state = "open"
    now = timezone.now()
    zones = _zones(scope)
    actions = (
        scope.filter(Action.objects.filter(version__status=Status.SIGNED), school_path="version__pia__school",
                     organisation_path="version__pia__organisation")
        .select_related("version__pia__school", "version__pia__organisation", "responsible_user", "completion")
        .order_by(F("completion__id").asc(nulls_first=True), F("due_on").asc(nulls_last=True), "version__pia__title",
                  "position", "pk")
    )
    if state == "open":
        actions = actions.filter(completion__isnull=True)
    elif state == "overdue":
        actions = actions.filter(completion__isnull=True).filter(_due("lt", zones, now))
    elif state == "soon":
        actions = actions.filter(completion__isnull=True).filter(_due("gte", zones, now),
                                                                  _due("lte", zones, now, ACTION_SOON_DAYS))
    elif state == "done":
        actions = actions.filter(completion__isnull=False)
    page = Paginator(actions, PER_PAGE).get_page(request.GET.get("page"))
    for action in page:
        today = pia_today(action.version.pia, now)
        action.state = action_state(action, today)
        action.days = abs((action.due_on - today).days) if action.due_on else None
        action.may_mark_done = action.state != "done" and may_mark_done(scope, action)
    return render(request, "pia/outputs/actions.html", {
        "page": page, "rows": page.object_list, "state": state, "states": STATES, "state_label": STATES[state],
        "soon_days": ACTION_SOON_DAYS,
        "query": f"state={state}", "active_nav": "pia",
    })


@staff_required(ALL_ROLES)
@require_POST
def action_done(request: HttpRequest, pk: int) -> HttpResponse:
    action = scoped_get_or_404(
        request, Action.objects.select_related("version__pia__school", "version__pia__organisation"),
        roles=ALL_ROLES, school_path="version__pia__school", organisation_path="version__pia__organisation", pk=pk,
    )
    scope = scope_for(request)
    if not may_read_version(scope, action.version):
        raise PermissionDenied
    if not may_mark_done(scope, action):
        raise PermissionDenied
    try:
        action_mark_done(action=action, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Marked done: “{action.action[:80]}” ({action.version.pia.title}).")
    return redirect(f"{reverse('pia:actions')}?state={request.POST.get('state', 'open')}"
                    if request.POST.get("state") in STATES else reverse("pia:actions"))
