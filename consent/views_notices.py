"""Purposes and their notices: the list, the history of published versions, each version as parents read
it, a comparison of two versions, the draft editor, its preview and publishing.

Purposes belong to an organisation: every member of its staff reads them (another organisation's answer
404); the headteacher of any of its schools and the organisation admin write them (403 for the rest).
Publishing asks the publisher to confirm who they are, shows what will happen, then calls the service.
"""

import contextlib
from datetime import date
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Exists, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.reauth import confirm_page_url, identity_confirmation_consume, identity_recently_confirmed
from schools.models import Organisation, School
from schools.scope import scope_for, scoped_get_or_404, staff_required

from . import notice_template
from .forms_notices import (
    MATERIAL,
    MINOR,
    CompareForm,
    NoticeDraftForm,
    PublishForm,
    PurposeCreateForm,
    PurposeSettingsForm,
)
from .models import ConsentState, ConsentStatus, Notice, Purpose
from .notices import (
    NOTICE_EDITOR_ROLES,
    SECTIONS,
    DraftConflict,
    notice_diff,
    notice_draft,
    notice_draft_discard,
    notice_draft_publish,
    notice_draft_save,
    notice_publish_plan,
    organisation_today,
    purpose_create,
    purpose_update,
)

PAGE_SIZE = 50
NAV = "notices"


def _purpose(request: HttpRequest, pk: int, *, editors_only: bool = False) -> Purpose:
    kwargs = {"roles": NOTICE_EDITOR_ROLES} if editors_only else {}
    return scoped_get_or_404(
        request, Purpose.objects.select_related("organisation"),
        school_path=None, organisation_path="organisation", pk=pk, **kwargs,
    )


def _may_edit(request: HttpRequest, organisation_id: int) -> bool:
    return bool(scope_for(request).roles_in_organisation(organisation_id) & NOTICE_EDITOR_ROLES)


def _editable_organisations(request: HttpRequest) -> list[int]:
    scope = scope_for(request)
    return sorted(oid for oid in scope.organisation_ids if scope.roles_in_organisation(oid) & NOTICE_EDITOR_ROLES)


def _add_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


def _texts(notice) -> dict[str, str]:
    return {key: getattr(notice, key) for key, _ in SECTIONS}


# --- Purposes --------------------------------------------------------------------------------------------


@staff_required()
@require_safe
def purpose_list(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request)
    published = Notice.objects.filter(purpose=OuterRef("pk"), published_at__isnull=False).order_by("-version")
    renewals = (
        ConsentStatus.objects.filter(purpose=OuterRef("pk"), state=ConsentState.GIVEN, renewal_needed=True)
        .order_by().values("purpose").annotate(n=Count("pk")).values("n")
    )
    purposes = (
        scope.filter(Purpose.objects.select_related("organisation"), school_path=None, organisation_path="organisation")
        .annotate(
            current_notice_id=Subquery(published.values("pk")[:1]),
            has_draft=Exists(Notice.objects.filter(purpose=OuterRef("pk"), published_at__isnull=True)),
            renewal_count=Coalesce(Subquery(renewals, output_field=IntegerField()), Value(0)),
            renewal_deadline=Subquery(published.filter(material_change=True).values("renewal_deadline")[:1]),
        )
        .order_by("organisation__name", "name", "pk")
    )
    page = Paginator(purposes, PAGE_SIZE).get_page(request.GET.get("page"))
    current = {
        n.pk: n for n in Notice.objects.filter(pk__in=[p.current_notice_id for p in page.object_list])
        .select_related("published_by")
    }
    editable = set(_editable_organisations(request))
    rows = [
        {
            "purpose": p,
            "notice": current.get(p.current_notice_id),
            "may_edit": p.organisation_id in editable,
            "deadline_passed": bool(p.renewal_deadline and p.renewal_deadline < organisation_today(p.organisation)),
        }
        for p in page.object_list
    ]
    return render(request, "consent/notices/purposes.html", {
        "active_nav": NAV,
        "page": page,
        "rows": rows,
        "may_add": bool(editable),
        "several_organisations": len(scope.organisation_ids) > 1,
    })


@staff_required(NOTICE_EDITOR_ROLES)
@require_http_methods(["GET", "POST"])
def purpose_add(request: HttpRequest) -> HttpResponse:
    organisations = Organisation.objects.filter(pk__in=_editable_organisations(request)).order_by("name")
    if not organisations:
        raise PermissionDenied
    form = PurposeCreateForm(request.POST or None, organisations=organisations)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            purpose = purpose_create(
                organisation=data["organisation"], name=data["name"], actor=request.user,
                reminder_interval_days=data["reminder_interval_days"], max_reminders=data["max_reminders"],
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(
                request,
                f"“{purpose.name}” added. Its first draft starts from the federation's letter: edit it, "
                "preview it and publish it before parents are asked.",
            )
            return redirect("consent:notice-edit", pk=purpose.pk)
    return render(request, "consent/notices/purpose_form.html", {
        "active_nav": NAV, "form": form, "purpose": None,
    })


@staff_required()
@require_http_methods(["GET", "POST"])
def purpose_settings(request: HttpRequest, pk: int) -> HttpResponse:
    purpose = _purpose(request, pk, editors_only=True)
    form = PurposeSettingsForm(request.POST or None, initial={
        "reminder_interval_days": purpose.reminder_interval_days, "max_reminders": purpose.max_reminders,
    })
    if request.method == "POST" and form.is_valid():
        before = (purpose.reminder_interval_days, purpose.max_reminders)
        try:
            purpose = purpose_update(purpose=purpose, actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            if before == (purpose.reminder_interval_days, purpose.max_reminders):
                messages.info(request, "Nothing changed.")
            else:
                messages.success(request, f"Reminder settings of “{purpose.name}” saved.")
            return redirect("consent:purposes")
    return render(request, "consent/notices/purpose_form.html", {
        "active_nav": NAV, "form": form, "purpose": purpose,
    })


# --- Published versions ------------------------------------------------------------------------------------


@staff_required()
@require_safe
def notice_history(request: HttpRequest, pk: int) -> HttpResponse:
    purpose = _purpose(request, pk)
    notices = purpose.notices.filter(published_at__isnull=False).select_related("published_by").order_by("-version")
    page = Paginator(notices, PAGE_SIZE).get_page(request.GET.get("page"))
    may_edit = _may_edit(request, purpose.organisation_id)
    return render(request, "consent/notices/history.html", {
        "active_nav": NAV,
        "purpose": purpose,
        "page": page,
        "current": purpose.current_notice(),
        "draft": notice_draft(purpose) if may_edit else None,
        "has_draft": purpose.notices.filter(published_at__isnull=True).exists(),
        "may_edit": may_edit,
        "today": organisation_today(purpose.organisation),
    })


def _school_for_header(request: HttpRequest, organisation_id: int) -> School | None:
    """Parents see their own school's name at the top: show one of the user's schools of the organisation."""
    school_ids = [sid for sid, oid in scope_for(request).organisation_by_school.items() if oid == organisation_id]
    return School.objects.filter(pk__in=school_ids).order_by("name").first()


@staff_required()
@require_safe
def notice_detail(request: HttpRequest, pk: int) -> HttpResponse:
    notice = scoped_get_or_404(
        request,
        Notice.objects.filter(published_at__isnull=False).select_related("purpose__organisation", "published_by"),
        school_path=None, organisation_path="purpose__organisation", pk=pk,
    )
    return render(request, "consent/notices/notice_detail.html", {
        "notice": notice,
        "purpose": notice.purpose,
        "school": _school_for_header(request, notice.purpose.organisation_id),
        "current": notice.purpose.current_notice(),
    })


@staff_required()
@require_safe
def notice_compare(request: HttpRequest, pk: int) -> HttpResponse:
    purpose = _purpose(request, pk)
    versions = list(
        purpose.notices.filter(published_at__isnull=False).order_by("version").values_list("version", flat=True)
    )
    form, sections, old, new = None, None, None, None
    if len(versions) >= 2:
        defaults = {"old": versions[-2], "new": versions[-1]}
        bound = "old" in request.GET or "new" in request.GET
        form = CompareForm({**defaults, **request.GET.dict()} if bound else None, versions=versions, initial=defaults)
        if not bound or form.is_valid():
            chosen = form.cleaned_data if bound else defaults
            by_version = {n.version: n for n in purpose.notices.filter(version__in=[chosen["old"], chosen["new"]])
                          .select_related("published_by")}
            old, new = by_version[chosen["old"]], by_version[chosen["new"]]
            sections = notice_diff(old, new)
    return render(request, "consent/notices/compare.html", {
        "active_nav": NAV, "purpose": purpose, "form": form, "sections": sections, "old": old, "new": new,
        "versions": versions,
    })


# --- The draft: edit, discard, preview, publish ----------------------------------------------------------


@staff_required()
@require_http_methods(["GET", "POST"])
def notice_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Opening the editor writes nothing: the draft is created by the first save."""
    purpose = _purpose(request, pk, editors_only=True)
    draft = notice_draft(purpose)
    current = purpose.current_notice()
    if draft is not None:
        initial, base = _texts(draft), draft.compute_sha256()
    elif current is not None:
        initial, base = _texts(current), ""
    else:
        initial = {"letter": notice_template.LETTER, "protocol": notice_template.PROTOCOL,
                   "privacy_notice": notice_template.PRIVACY_NOTICE}
        base = ""
    form = NoticeDraftForm(request.POST or None, initial={**initial, "base_sha256": base})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            draft = notice_draft_save(
                purpose=purpose, actor=request.user, letter=data["letter"], protocol=data["protocol"],
                privacy_notice=data["privacy_notice"], base_sha256=data["base_sha256"],
            )
        except DraftConflict as conflict:
            # Keep what they typed; a second save then knowingly replaces the newer draft.
            latest = notice_draft(purpose)
            form = NoticeDraftForm({**request.POST.dict(), "base_sha256": latest.compute_sha256() if latest else ""})
            form.is_valid()
            form.add_error(None, f"{conflict.messages[0]} Your text is below: save again to replace it, "
                                 "or open the editor again to see theirs.")
            draft = latest
        except ValidationError as error:
            _add_errors(form, error)
        else:
            if request.POST.get("action") == "preview":
                return redirect("consent:notice-preview", pk=purpose.pk)
            messages.success(request, "Draft saved. Parents still see the published version until you publish.")
            return redirect("consent:notice-edit", pk=purpose.pk)
    return render(request, "consent/notices/edit.html", {
        "active_nav": NAV, "purpose": purpose, "form": form, "draft": draft, "current": current,
    })


@staff_required()
@require_POST
def notice_discard(request: HttpRequest, pk: int) -> HttpResponse:
    purpose = _purpose(request, pk, editors_only=True)
    if notice_draft_discard(purpose=purpose, actor=request.user):
        messages.success(request, "Draft discarded. The published versions are unchanged.")
    else:
        messages.info(request, "There was no draft to discard: it was already published or discarded.")
    return redirect("consent:notice-history", pk=purpose.pk)


def _next_version(purpose: Purpose) -> int:
    last = purpose.notices.filter(published_at__isnull=False).order_by("-version").values_list("version", flat=True)
    return (last.first() or 0) + 1


@staff_required()
@require_safe
def notice_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The draft exactly as parents will read it on their personal page, with nothing that records consent."""
    purpose = _purpose(request, pk, editors_only=True)
    draft = notice_draft(purpose)
    if draft is None:
        messages.info(request, "There is no draft to preview: edit a new version first.")
        return redirect("consent:notice-history", pk=purpose.pk)
    today = organisation_today(purpose.organisation)
    current = purpose.current_notice()
    return render(request, "consent/notices/preview.html", {
        "purpose": purpose,
        "notice": draft,
        "version": _next_version(purpose),
        "school": _school_for_header(request, purpose.organisation_id),
        "current": current,
        "unchanged": current is not None and current.sha256 == draft.compute_sha256(),
        "form": PublishForm(initial={"draft_sha256": draft.compute_sha256()}, today=today),
    })


def _publish_initial(request: HttpRequest, draft: Notice) -> dict:
    # After "confirm it's you" the browser comes back with GET: keep the choice made on the preview page.
    initial = {"draft_sha256": draft.compute_sha256()}
    if request.GET.get("change") in (MINOR, MATERIAL):
        initial["change"] = request.GET["change"]
    with contextlib.suppress(ValueError):
        initial["renewal_deadline"] = date.fromisoformat(request.GET.get("renewal_deadline", ""))
    return initial


@staff_required()
@require_http_methods(["GET", "POST"])
@never_cache
def notice_publish(request: HttpRequest, pk: int) -> HttpResponse:
    """Two POSTs: the first shows what publishing will do, the second (with `confirm`) publishes."""
    purpose = _purpose(request, pk, editors_only=True)
    url = reverse("consent:notice-publish", kwargs={"pk": purpose.pk})
    if not identity_recently_confirmed(request):
        carried = {k: request.POST[k] for k in ("change", "renewal_deadline") if request.POST.get(k)}
        return redirect(confirm_page_url(f"{url}?{urlencode(carried)}" if carried else url))
    draft = notice_draft(purpose)
    if draft is None:
        messages.info(request, "There is no draft to publish: it was published or discarded meanwhile.")
        return redirect("consent:notice-history", pk=purpose.pk)
    today = organisation_today(purpose.organisation)
    form = PublishForm(request.POST or None, today=today, initial=_publish_initial(request, draft))
    plan = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        arguments = {"purpose": purpose, "draft_sha256": data["draft_sha256"],
                     "material_change": form.material_change, "renewal_deadline": data["renewal_deadline"]}
        try:
            if "confirm" in request.POST:
                notice = notice_draft_publish(actor=request.user, **arguments)
            else:
                plan = notice_publish_plan(**arguments)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            if plan is None:
                # One confirmation per publication, as for a signature.
                identity_confirmation_consume(request)
                messages.success(request, _published_message(notice))
                return redirect("consent:notice-history", pk=purpose.pk)
    current = purpose.current_notice()
    return render(request, "consent/notices/publish.html", {
        "active_nav": NAV,
        "purpose": purpose,
        "draft": draft,
        "current": current,
        "version": _next_version(purpose),
        "form": form,
        "plan": plan,
        "sections": notice_diff(current, draft) if current else None,
        "time_zone": purpose.organisation.time_zone,
    })


def _published_message(notice: Notice) -> str:
    if not notice.material_change:
        return f"Version {notice.version} published. Parents see it from now on; every consent stays valid."
    flagged = ConsentStatus.objects.filter(
        purpose_id=notice.purpose_id, state=ConsentState.GIVEN, renewal_needed=True,
        last_event__notice_version__lt=notice.version,
    ).count()
    deadline = notice.renewal_deadline.strftime("%-d %B %Y")
    return (
        f"Version {notice.version} published as a material change. {flagged} consent{'s' if flagged != 1 else ''} "
        f"now need{'' if flagged != 1 else 's'} renewing; any not renewed by the end of {deadline} lapse."
    )
