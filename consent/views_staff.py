"""Staff pages of the consent registry: pupils, guardians, consent history and staff-recorded consent.

Every object is loaded through the user's scope: another school's pupil, guardian or event answers 404;
inside the scope, only the office, the headteacher and the organisation admin may change anything (403).
"""

import re
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import BooleanField, Case, CharField, Exists, OuterRef, Prefetch, Q, QuerySet, Value, When
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from lib.http import as_download
from schools.audit import audit_log
from schools.models import Role, School
from schools.scope import get_school_or_404, scope_for, scoped_get_or_404, staff_required

from .figures import Figures, consent_figures
from .forms import ConsentRecordForm, GuardianContactForm, RegistryFilterForm
from .models import (
    ConsentEvent,
    ConsentState,
    ConsentStatus,
    Group,
    Guardian,
    GuardianLink,
    Guardianship,
    Pupil,
    Purpose,
)
from .requests import REQUEST_ROLES, guardian_requests_panel
from .services import RECORDING_ROLES, consent_record_by_staff, pupil_consent_state, pupils_consent_states

EDIT_ROLES = frozenset({Role.HEADTEACHER, Role.OFFICE, Role.ORG_ADMIN})
RENEWAL = "renewal"
PAGE_SIZE = 50

# Text, never colour alone: the badge says what it means.
BADGES: dict[str, tuple[str, str]] = {
    ConsentState.GIVEN: ("Consent given", "text-bg-success"),
    RENEWAL: ("Renewal needed", "text-bg-warning"),
    ConsentState.REFUSED: ("Refused", "text-bg-danger"),
    ConsentState.WITHDRAWN: ("Withdrawn", "text-bg-danger"),
    ConsentState.LAPSED: ("Lapsed", "text-bg-secondary"),
    ConsentState.NONE: ("No answer", "text-bg-light border"),
}


def badge(state: str, renewal_needed: bool = False) -> dict[str, str]:
    key = RENEWAL if state == ConsentState.GIVEN and renewal_needed else state
    label, css = BADGES[key]
    return {"key": key, "label": label, "css": css}


def purpose_for_school(school: School, request: HttpRequest | None = None) -> Purpose | None:
    """The purpose a page is about: the one chosen with `?purpose=<id>` (or a posted `purpose`) among the
    organisation's, otherwise its first (live video lessons). None when it has none yet."""
    purposes = Purpose.objects.filter(organisation_id=school.organisation_id).order_by("id")
    wanted = (request.POST.get("purpose") or request.GET.get("purpose") or "") if request is not None else ""
    if re.fullmatch(r"[0-9]{1,18}", wanted):
        chosen = purposes.filter(pk=int(wanted)).first()
        if chosen is not None:
            return chosen
    return purposes.first()


def purpose_choices(school: School, current: Purpose | None) -> list[dict]:
    """The organisation's purposes for the picker on registry pages (shown when there are several)."""
    return [
        {"purpose": p, "current": current is not None and p.pk == current.pk}
        for p in Purpose.objects.filter(organisation_id=school.organisation_id).order_by("id")
    ]


def _status_exists(purpose: Purpose, **conditions) -> Exists:
    # Only statuses of current guardians count, as in `pupils_consent_states`: still linked to the pupil,
    # and not erased (an erased parent's decisions stay as evidence but no longer decide anything).
    return Exists(
        ConsentStatus.objects.filter(
            purpose=purpose, pupil=OuterRef("pk"), guardian__guardianships__pupil=OuterRef("pk"),
            guardian__archived_at__isnull=True, **conditions
        )
    )


def with_effective_state(pupils: QuerySet, purpose: Purpose) -> QuerySet:
    """Annotate `effective_state` and `renewal_needed` in SQL, mirroring `services.effective_state`,
    so the list can filter and count across the whole school without loading every pupil."""
    refused = _status_exists(purpose, state=ConsentState.REFUSED)
    withdrawn = _status_exists(purpose, state=ConsentState.WITHDRAWN)
    given = _status_exists(
        purpose, state=ConsentState.GIVEN, guardian__guardianships__parental_responsibility=True
    )
    given_current = _status_exists(
        purpose, state=ConsentState.GIVEN, guardian__guardianships__parental_responsibility=True,
        renewal_needed=False,
    )
    lapsed = _status_exists(purpose, state=ConsentState.LAPSED)
    return pupils.annotate(
        effective_state=Case(
            When(refused, then=Value(ConsentState.REFUSED)),
            When(withdrawn, then=Value(ConsentState.WITHDRAWN)),
            When(given, then=Value(ConsentState.GIVEN)),
            When(lapsed, then=Value(ConsentState.LAPSED)),
            default=Value(ConsentState.NONE),
            output_field=CharField(),
        ),
        renewal_needed=Case(
            When(~refused & ~withdrawn & given & ~given_current, then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        ),
    )


def registry_tools(request: HttpRequest, school: School) -> dict[str, bool]:
    """Which of the school's registry tools this user may use: the buttons on the pupil list and the
    school page. (Imported here, not at the top: those view modules import this one.)"""
    from .views_exports import EXPORT_ROLES
    from .views_imports import IMPORT_ROLES

    roles = scope_for(request).roles_at_school(school.pk)
    return {
        "may_import": bool(roles & IMPORT_ROLES),
        "may_request": bool(roles & REQUEST_ROLES),
        "may_export": bool(roles & EXPORT_ROLES),
    }


def filtered_pupils(*, school: School, purpose: Purpose | None, filters: dict) -> QuerySet:
    """The pupils the list shows for these filters, every page; the register exports use the same."""
    pupils = Pupil.objects.filter(school=school)
    if not filters.get("leavers"):
        pupils = pupils.filter(left_on__isnull=True)
    if filters.get("group"):
        pupils = pupils.filter(groups=filters["group"])
    for word in (filters.get("q") or "").split():
        pupils = pupils.filter(Q(first_name__icontains=word) | Q(last_name__icontains=word) | Q(mis_id__iexact=word))
    status = filters.get("status")
    # Only to filter: the page reads each shown pupil's state with `pupils_consent_states`, and annotating
    # every row would make the page's count evaluate five subqueries per pupil of the school.
    if purpose is not None and (status or filters.get("renewal")):
        pupils = with_effective_state(pupils, purpose)
        if status == RENEWAL or filters.get("renewal"):
            pupils = pupils.filter(renewal_needed=True)
        if status and status != RENEWAL:
            pupils = pupils.filter(effective_state=status)
    return pupils.order_by("last_name", "first_name", "pk")


def group_counts(school: School, purpose: Purpose | None) -> list[dict]:
    """Per group: pupils on roll, consented, refused, withdrawn, lapsed, no answer, renewal needed — two
    queries, counted in one pass (`consent.figures`)."""
    by_group = consent_figures(school_ids=[school.pk], purpose=purpose, by="group", include_archived=True)
    result = []
    for group in Group.objects.filter(school=school).order_by("kind", "name"):
        figures = by_group.get(group.pk, Figures())
        result.append({
            "group": group,
            "total": figures.total,
            "consented": figures.given,
            "refused": figures.refused,
            "withdrawn": figures.withdrawn,
            "lapsed": figures.lapsed,
            "no_answer": figures.no_answer,
            "renewal": figures.renewal,
        })
    return result


@staff_required()
def pupil_list(request: HttpRequest, school_pk: int) -> HttpResponse:
    school = get_school_or_404(request, school_pk)
    purpose = purpose_for_school(school, request)
    form = RegistryFilterForm(request.GET or None, school=school)
    filters = form.cleaned_data if form.is_valid() else {}
    pupils = filtered_pupils(school=school, purpose=purpose, filters=filters)
    pupils = pupils.prefetch_related(Prefetch("groups", queryset=Group.objects.order_by("name")))
    page = Paginator(pupils.order_by("last_name", "first_name", "pk"), PAGE_SIZE).get_page(request.GET.get("page"))
    states = pupils_consent_states(pupils=page.object_list, purpose=purpose) if purpose else {}
    rows = [
        {"pupil": p, "badge": badge(states[p.pk].state, states[p.pk].renewal_needed) if purpose else None}
        for p in page.object_list
    ]
    query = urlencode([(k, v) for k, v in request.GET.items() if k != "page" and v])
    return render(request, "consent/staff/pupil_list.html", {
        "active_nav": "dashboard",
        **registry_tools(request, school),
        "purposes": purpose_choices(school, purpose),
        "selected_group": filters.get("group"),
        "school": school,
        "purpose": purpose,
        "form": form,
        "page": page,
        "rows": rows,
        "query": query,
        "filtered": bool(query),
        "has_pupils": Pupil.objects.filter(school=school).exists(),
        "groups": group_counts(school, purpose),
    })


@staff_required()
def pupil_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pupil = scoped_get_or_404(request, Pupil.objects.select_related("school"), pk=pk)
    purpose = purpose_for_school(pupil.school)
    consent = pupil_consent_state(pupil=pupil, purpose=purpose) if purpose else None
    guardianships = pupil.guardianships.select_related("guardian").order_by("guardian__last_name")
    decisions = {d.guardian.pk: d for d in consent.decisions} if consent else {}
    guardians = [
        {"link": g, "decision": decisions.get(g.guardian_id),
         "badge": badge(decisions[g.guardian_id].state, decisions[g.guardian_id].renewal_needed)
         if g.guardian_id in decisions else None}
        for g in guardianships
    ]
    events = (
        ConsentEvent.objects.filter(pupil=pupil)
        .select_related("guardian", "recorded_by", "purpose")
        .order_by("-created_at", "-id")
    )
    scope_roles = scope_for(request).roles_at_school(pupil.school_id)
    return render(request, "consent/staff/pupil_detail.html", {
        "active_nav": "dashboard",
        "pupil": pupil,
        "school": pupil.school,
        "purpose": purpose,
        "consent": consent,
        "badge": badge(consent.state, consent.renewal_needed) if consent else None,
        "guardians": guardians,
        "groups": pupil.groups.order_by("name"),
        "events": events,
        "may_record": bool(scope_roles & RECORDING_ROLES) and purpose is not None,
    })


@staff_required()
def event_detail(request: HttpRequest, pk: int) -> HttpResponse:
    event = scoped_get_or_404(
        request,
        ConsentEvent.objects.select_related("pupil__school", "guardian", "recorded_by", "notice", "purpose"),
        school_path="pupil__school",
        pk=pk,
    )
    guardianship = Guardianship.objects.filter(guardian=event.guardian, pupil=event.pupil).first()
    return render(request, "consent/staff/event_detail.html", {
        "active_nav": "dashboard",
        "event": event,
        "pupil": event.pupil,
        "school": event.pupil.school,
        "guardianship": guardianship,
        "hash_verifies": event.notice.hash_verifies() and event.notice.sha256 == event.notice_sha256,
    })


@staff_required()
def event_attachment(request: HttpRequest, pk: int) -> FileResponse:
    event = scoped_get_or_404(request, ConsentEvent.objects.all(), school_path="pupil__school", pk=pk)
    if not event.attachment:
        raise Http404
    filename = event.attachment.name.rsplit("/", 1)[-1]
    # Always a download, never rendered inline: a saved email or PDF from outside is untrusted content.
    return as_download(FileResponse(event.attachment.open("rb")), filename)


@staff_required()
def guardian_detail(request: HttpRequest, pk: int) -> HttpResponse:
    guardian = scoped_get_or_404(request, Guardian.objects.select_related("school"), pk=pk)
    guardianships = guardian.guardianships.select_related("pupil").order_by("pupil__last_name", "pupil__first_name")
    purpose = purpose_for_school(guardian.school)
    states = pupils_consent_states(pupils=[g.pupil_id for g in guardianships], purpose=purpose) if purpose else {}
    children = [
        {"link": g, "badge": badge(states[g.pupil_id].state, states[g.pupil_id].renewal_needed) if purpose else None}
        for g in guardianships
    ]
    scope_roles = scope_for(request).roles_at_school(guardian.school_id)
    # The requests panel links to the outbox, which only these roles may open.
    may_see_requests = bool(scope_roles & REQUEST_ROLES)
    return render(request, "consent/staff/guardian_detail.html", {
        "active_nav": "dashboard",
        "guardian": guardian,
        "school": guardian.school,
        "children": children,
        "may_edit": bool(scope_roles & EDIT_ROLES),
        "may_see_requests": may_see_requests,
        **(guardian_requests_panel(guardian=guardian, purpose=purpose) if may_see_requests else {}),
    })


@login_required
@require_http_methods(["GET", "POST"])
def guardian_edit(request: HttpRequest, pk: int) -> HttpResponse:
    guardian = scoped_get_or_404(request, Guardian.objects.select_related("school"), roles=EDIT_ROLES, pk=pk)
    form = GuardianContactForm(request.POST or None, instance=guardian, school=guardian.school)
    if request.method == "POST" and form.is_valid():
        if form.changed_data:
            with transaction.atomic():
                form.save()
                revoked = 0
                if "email" in form.changed_data:
                    # Links went to the old address: they stop working, and the next email brings a new one.
                    revoked = GuardianLink.objects.filter(guardian=guardian, revoked_at__isnull=True).update(
                        revoked_at=timezone.now()
                    )
                # Field names only: the audit trail must not become a second copy of parents' contact details.
                audit_log(actor=request.user, action="registry.guardian_updated", obj=guardian,
                          school=guardian.school, data={"changed": sorted(form.changed_data), "links_revoked": revoked})
            messages.success(request, f"Contact details of {guardian} saved.")
        else:
            messages.info(request, "Nothing changed.")
        return redirect("consent:guardian", pk=guardian.pk)
    return render(request, "consent/staff/guardian_edit.html", {
        "active_nav": "dashboard", "guardian": guardian, "school": guardian.school, "form": form,
    })


@login_required
@require_http_methods(["GET", "POST"])
def consent_record(request: HttpRequest, pk: int) -> HttpResponse:
    pupil = scoped_get_or_404(request, Pupil.objects.select_related("school"), roles=RECORDING_ROLES, pk=pk)
    purpose = purpose_for_school(pupil.school)
    notice = purpose.current_notice() if purpose else None
    if notice is None:
        messages.error(request, "Publish the consent notice before recording decisions.")
        return redirect("consent:pupil", pk=pupil.pk)
    form = ConsentRecordForm(request.POST or None, request.FILES or None, pupil=pupil,
                             initial={"received_on": timezone.now().astimezone(pupil.school.tz).date()})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            consent_record_by_staff(
                staff=request.user, guardian=data["guardian"], pupil=pupil, notice=notice,
                kind=data["kind"], channel=data["channel"], received_on=data["received_on"],
                note=data["note"], attachment=data["attachment"] or None, attestation=data["attestation"],
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            kind = ConsentEvent.Kind(data["kind"]).label.lower()
            messages.success(request, f"Recorded: {kind} by {data['guardian']} for {pupil}.")
            return redirect("consent:pupil", pk=pupil.pk)
    return render(request, "consent/staff/consent_record.html", {
        "active_nav": "dashboard", "pupil": pupil, "school": pupil.school, "form": form, "notice": notice,
    })


def _add_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)
