"""The risk register's assessment pages: the register, new from template or by copying, the assessment with
its hazard rows (edited while a draft), submit and approve, and the versions (view and compare).

Assessments load through the scope with both paths: my schools' assessments and my organisations'
organisation-wide ones. Teachers and the office read; the headteacher and the organisation admin write and
approve; the DPO and SIRO read across the organisation; another school's assessment answers 404.
"""

import json
import re
from datetime import date

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.reauth import confirm_page_url, identity_confirmation_consume, identity_recently_confirmed
from schools.models import Organisation, Role, School
from schools.scope import scope_for, scoped_get_or_404, staff_required

from .editing import RowErrors, RowsSaved, assessment_copy, assessment_start, hazard_rows_save, version_details_save
from .forms import CopyForm, HazardRowFormSet, NewFromTemplateForm, RegisterFilterForm, VersionDetailsForm
from .models import Assessment, AssessmentVersion
from .reminders import assessment_today, assessment_tz
from .services import (
    APPROVE_ROLES,
    EDIT_ROLES,
    HAZARD_FIELDS,
    approval_fingerprint,
    version_approve,
    version_revise,
    version_submit,
)
from .views_incident_review import review_context

NAV = "risks"
PAGE_SIZE = 50
Status = AssessmentVersion.Status
OPEN = (Status.DRAFT, Status.SUBMITTED)

ASSESSMENT_PATHS = {"school_path": "school", "organisation_path": "organisation"}
VERSION_PATHS = {"school_path": "assessment__school", "organisation_path": "assessment__organisation"}

# The columns of the seed's form, in its order, for the table and the comparison.
COLUMNS = (
    ("activity_element", "Activity element"), ("hazard", "Potential hazard"), ("who_affected", "Who is affected"),
    ("likelihood", "L"), ("severity", "S"), ("rating", "Rating"), ("band", "Band"),
    ("controls", "Actions taken to reduce or control the risk"), ("residual_likelihood", "Residual L"),
    ("residual_severity", "Residual S"), ("residual_rating", "Residual rating"), ("residual_band", "Residual band"),
    ("further_action", "Further action required"), ("action_owner", "Action owner"),
    ("action_due_on", "Due date"), ("initials", "Initials"),
)
COLUMN_LABELS = dict(COLUMNS)


def _where(assessment: Assessment) -> str:
    return assessment.school.name if assessment.school_id else f"{assessment.organisation.name} (organisation-wide)"


def _may(request: HttpRequest, assessment: Assessment, roles) -> bool:
    """May act (edit, approve) on the assessment: an organisation-wide one only with an organisation-wide role
    or as a headteacher of every school of the organisation. Reading goes through the scope as usual."""
    scope = scope_for(request)
    held = (scope.roles_at_school(assessment.school_id) if assessment.school_id
            else scope.roles_for_whole_organisation(assessment.organisation_id))
    return bool(held & frozenset(roles))


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


def _add_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for name, errors in error.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, error.messages)


# --- The register ----------------------------------------------------------------------------------------


@staff_required()
@require_http_methods(["GET"])
def assessment_list(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request)
    schools = list(School.objects.filter(pk__in=scope.school_ids).order_by("name"))
    form = RegisterFilterForm(request.GET or None, schools=schools)
    assessments = scope.filter(Assessment.objects.all(), **ASSESSMENT_PATHS)
    chosen = None
    if form.is_bound and form.is_valid() and form.cleaned_data["school"]:
        chosen = form.cleaned_data["school"]
        chosen_school = next(s for s in schools if s.pk == chosen)
        # The school's own assessments and the organisation-wide ones that cover it.
        assessments = assessments.filter(
            Q(school_id=chosen) | Q(school__isnull=True, organisation_id=chosen_school.organisation_id)
        )
    assessments = assessments.select_related("school", "organisation").prefetch_related(
        Prefetch("versions", queryset=AssessmentVersion.objects.filter(status=Status.APPROVED), to_attr="approved"),
        Prefetch("versions", queryset=AssessmentVersion.objects.filter(status__in=OPEN), to_attr="open"),
    ).order_by("school__name", "title", "pk")
    page = Paginator(assessments, PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    rows = []
    for assessment in page:
        today = assessment_today(assessment, now)  # the school's day (the organisation's for its own)
        approved = assessment.approved[0] if assessment.approved else None
        open_version = assessment.open[0] if assessment.open else None
        rows.append({
            "assessment": assessment, "where": _where(assessment), "approved": approved, "open": open_version,
            "overdue": bool(approved and approved.review_on and approved.review_on < today),
        })
    may_write = bool(scope.roles & EDIT_ROLES)
    # The register's tools: per school its heat map and CSV; per organisation its matrix, and its whole
    # register for those who read across it.
    organisations = [
        {"organisation": o, "may_export": bool(scope.roles_by_organisation.get(o.pk, frozenset())
                                             & {Role.DPO, Role.SIRO, Role.ORG_ADMIN})}
        for o in Organisation.objects.filter(pk__in=scope.organisation_ids).order_by("name")
    ]
    return render(request, "riskassess/assessments/list.html", {
        "active_nav": NAV, "rows": rows, "page": page, "form": form, "filtered": chosen is not None,
        "may_write": may_write, "tool_schools": schools, "tool_organisations": organisations,
    })


def _creation_targets(request: HttpRequest):
    scope = scope_for(request)
    schools = School.objects.filter(pk__in=scope.schools_where(EDIT_ROLES)).select_related("organisation")
    org_ids = [oid for oid, roles in scope.roles_by_organisation.items() if Role.ORG_ADMIN in roles]
    organisations = list(Organisation.objects.filter(pk__in=org_ids).order_by("name"))
    return schools.order_by("name"), organisations


@staff_required(EDIT_ROLES)
@require_http_methods(["GET", "POST"])
def assessment_new(request: HttpRequest) -> HttpResponse:
    schools, organisations = _creation_targets(request)
    initial = {"assessor_name": request.user.get_full_name() or request.user.get_username(),
               "assessed_on": timezone.localdate(), "review_interval_months": 12}
    form = NewFromTemplateForm(request.POST or None, schools=list(schools), organisations=organisations,
                               initial=initial)
    if request.method == "POST" and form.is_valid():
        school, organisation = form.target()
        data = form.cleaned_data
        try:
            assessment = assessment_start(
                school=school, organisation=organisation, actor=request.user, assessor_name=data["assessor_name"],
                assessed_on=data["assessed_on"], review_on=data["review_on"],
                review_interval_months=data["review_interval_months"],
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "Assessment started from the template: check each row, then submit it.")
            return redirect("riskassess:assessment", pk=assessment.pk)
    return render(request, "riskassess/assessments/new.html", {"active_nav": NAV, "form": form})


@staff_required(EDIT_ROLES)
@require_http_methods(["GET", "POST"])
def assessment_copy_view(request: HttpRequest) -> HttpResponse:
    schools, _ = _creation_targets(request)
    org_ids = set(schools.values_list("organisation_id", flat=True))
    sources = (
        Assessment.objects.filter(organisation_id__in=org_ids, school__isnull=False, versions__status=Status.APPROVED)
        .select_related("school").order_by("school__name", "title").distinct()
    )
    initial = {"assessor_name": request.user.get_full_name() or request.user.get_username(),
               "assessed_on": timezone.localdate(), "review_interval_months": 12}
    form = CopyForm(request.POST or None, schools=schools, sources=sources, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            assessment = assessment_copy(
                source=data["source"], school=data["school"], actor=request.user,
                assessor_name=data["assessor_name"], assessed_on=data["assessed_on"], review_on=data["review_on"],
                review_interval_months=data["review_interval_months"],
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, f"Copied from {data['source'].school.name}: version 1 is a draft to check "
                                      "and adapt to this school.")
            return redirect("riskassess:assessment", pk=assessment.pk)
    return render(request, "riskassess/assessments/copy.html", {
        "active_nav": NAV, "form": form, "has_sources": sources.exists(),
    })


# --- One assessment ----------------------------------------------------------------------------------------


def _rows(version: AssessmentVersion) -> list[dict]:
    """The version's rows as plain data: from the snapshot once frozen, otherwise from the live rows."""
    rows = _plain_rows(version)
    for row in rows:
        due = row.get("action_due_on")
        row["due_display"] = date.fromisoformat(due).strftime("%-d %b %Y") if due else ""
    return rows


def _plain_rows(version: AssessmentVersion) -> list[dict]:
    if version.is_frozen and version.snapshot:
        rows = [dict(row, id=None) for row in version.snapshot["hazards"]]
        bands = {band["label"]: band["key"] for band in version.snapshot["matrix"]["bands"]}
        for row in rows:
            row["band_key"] = bands.get(row["band"], "")
            row["residual_band_key"] = bands.get(row["residual_band"], "")
        return rows
    matrix = version.get_matrix()
    rows = []
    for hazard in version.hazards.select_related("action_owner").order_by("position", "id"):
        band = matrix.band(hazard.rating)
        residual = matrix.band(hazard.residual_rating) if hazard.residual_rating else None
        owner = hazard.action_owner
        rows.append({
            "id": hazard.pk, "position": hazard.position, "row_key": str(hazard.row_key),
            **{name: getattr(hazard, name) for name in HAZARD_FIELDS if name != "action_owner"},
            "rating": hazard.rating, "band": band.label, "band_key": band.key,
            "residual_rating": hazard.residual_rating, "residual_band": residual.label if residual else "",
            "residual_band_key": residual.key if residual else "",
            "action_owner": (owner.get_full_name() or owner.get_username()) if owner else "",
            "action_due_on": hazard.action_due_on.isoformat() if hazard.action_due_on else "",
        })
    return rows


def _version_context(request: HttpRequest, version: AssessmentVersion) -> dict:
    assessment = version.assessment
    matrix = version.get_matrix()
    return {
        "active_nav": NAV, "assessment": assessment, "version": version, "where": _where(assessment),
        "rows": _rows(version), "matrix": matrix, "tz": assessment_tz(assessment),
        "bands": [{"key": b.key, "label": b.label, "upper": b.upper,
                   "lower": (matrix.bands[i - 1].upper + 1) if i else 1} for i, b in enumerate(matrix.bands)],
        "may_edit": not version.is_frozen and _may(request, assessment, EDIT_ROLES),
        "may_approve": version.status == Status.SUBMITTED and _may(request, assessment, APPROVE_ROLES),
        "may_revise": version.is_frozen and _may(request, assessment, EDIT_ROLES),
    }


@staff_required()
@require_http_methods(["GET"])
def assessment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    assessment = scoped_get_or_404(request, Assessment.objects.select_related("school", "organisation"), pk=pk,
                                   **ASSESSMENT_PATHS)
    versions = list(assessment.versions.select_related("approved_by", "submitted_by").order_by("-number"))
    if not versions:
        raise Http404
    open_version = next((v for v in versions if v.status in OPEN), None)
    approved = next((v for v in versions if v.status == Status.APPROVED), None)
    version = open_version or approved or versions[0]
    version.assessment = assessment
    context = _version_context(request, version)
    context.update({"approved": approved, "open_version": open_version, "is_current_view": True,
                    "may_revise": open_version is None and context["may_revise"],
                    **review_context(request, assessment)})
    return render(request, "riskassess/assessments/detail.html", context)


@staff_required()
@require_POST
def assessment_revise(request: HttpRequest, pk: int) -> HttpResponse:
    assessment = scoped_get_or_404(request, Assessment, pk=pk, roles=EDIT_ROLES, **ASSESSMENT_PATHS)
    try:
        draft = version_revise(assessment=assessment, actor=request.user)
    except ValidationError as error:
        messages.error(request, _error_text(error))
    else:
        messages.success(request, f"Version {draft.number} is a draft: the approved version stays current until "
                                  "this one is approved.")
    return redirect("riskassess:assessment", pk=assessment.pk)


# --- Hazard rows: the editing table -------------------------------------------------------------------------


def _frozen_message(request: HttpRequest, version: AssessmentVersion, *, meanwhile: bool = False) -> HttpResponse:
    if meanwhile:
        messages.error(request, "This version was approved while you were editing: your changes were not saved. "
                                "Use \u201cEdit (new version)\u201d to start the next one.")
    else:
        messages.error(request, "This version is approved and never changes: use \u201cEdit (new version)\u201d "
                                "to start the next one.")
    return redirect("riskassess:assessment", pk=version.assessment_id)


def _saved_message(saved: RowsSaved, status_changed: bool) -> str:
    if saved.nothing:
        text = "Nothing to save: the rows are as they were."
    else:
        parts = [f"{count} row{'s' if count != 1 else ''} {what}"
                 for count, what in ((saved.added, "added"), (saved.changed, "changed"), (saved.removed, "removed"))
                 if count]
        if saved.reordered:
            parts.append("the order saved")
        text = "Saved: " + ", ".join(parts) + "."
    if saved.kept_from_others:
        text += (f" {saved.kept_from_others} row{'s' if saved.kept_from_others != 1 else ''} that someone else "
                 "added meanwhile stay at the end.")
    if status_changed:
        text += " The version was submitted for approval meanwhile: your changes are part of it."
    return text


def _apply_row_errors(formset, error: RowErrors) -> None:
    for index, row_error in error.rows.items():
        form = formset.forms[index]
        _add_errors(form, row_error)


@staff_required()
@require_http_methods(["GET", "POST"])
def version_rows(request: HttpRequest, pk: int) -> HttpResponse:
    """Every row of a draft in one table: add, change, remove and reorder, saved together. Works without
    JavaScript (a blank row to fill in, Remove boxes, position numbers); risk-rows.js adds rows, hides
    removed ones, moves rows and previews ratings from the version's matrix."""
    version = _version(request, pk, EDIT_ROLES)
    if not _may(request, version.assessment, EDIT_ROLES):
        raise PermissionDenied
    if version.is_frozen:
        return _frozen_message(request, version, meanwhile=request.method == "POST")
    hazards = list(version.hazards.select_related("action_owner").order_by("position", "id"))
    row_ids = frozenset(h.pk for h in hazards)
    conflict = ""
    if request.method == "POST":
        # No initial data when bound: the rows may have changed since the page was shown, and a posted row is
        # matched to its hazard by its id, never by its place (the service saves only what differs).
        formset = HazardRowFormSet(request.POST, prefix="rows", version=version, row_ids=row_ids)
        if formset.is_valid():
            try:
                saved = hazard_rows_save(version=version, actor=request.user, rows=formset.changes())
            except RowErrors as error:
                _apply_row_errors(formset, error)
            except ValidationError as error:
                if AssessmentVersion.objects.get(pk=version.pk).is_frozen:
                    return _frozen_message(request, version, meanwhile=True)
                conflict = _error_text(error)
            else:
                status_now = AssessmentVersion.objects.values_list("status", flat=True).get(pk=version.pk)
                messages.success(request, _saved_message(saved, request.POST.get("seen_status") not in
                                                         (None, status_now)))
                if request.POST.get("then") == "add":
                    return redirect(reverse("riskassess:version-rows", kwargs={"pk": version.pk}) + "#new-row")
                return redirect(reverse("riskassess:assessment", kwargs={"pk": version.assessment_id}) + "#hazards")
    else:
        initial = [{"id": h.pk, **{name: getattr(h, name) for name in HAZARD_FIELDS}} for h in hazards]
        formset = HazardRowFormSet(prefix="rows", version=version, row_ids=row_ids, initial=initial)
    # "Save and add another row" and the assessment page link to the first blank row.
    first_new = next((form for form in formset.forms if form.is_new), None)
    if first_new is not None:
        first_new.anchor = "new-row"
    matrix = version.get_matrix()
    return render(request, "riskassess/assessments/rows.html", {
        "active_nav": NAV, "version": version, "assessment": version.assessment, "where": _where(version.assessment),
        "formset": formset, "matrix": matrix, "summary": _error_summary(formset), "conflict": conflict,
        "bands_json": json.dumps([{"upper": b.upper, "key": b.key, "label": b.label} for b in matrix.bands]),
    })


def _error_summary(formset) -> list[dict]:
    """Per row with errors: its number on the page and each message, with the id of the field to jump to."""
    if not formset.is_bound:
        return []
    summary = []
    for number, form in enumerate(formset.forms, start=1):
        if not form.errors or form.cleaned_data.get("DELETE"):
            continue  # a row marked for removal is not checked
        items = []
        for name, errors in form.errors.items():
            field = form.fields.get(name)
            items += [{"label": field.label if field else "", "message": message,
                       "anchor": form[name].auto_id if field else f"row-{form.prefix}"} for message in errors]
        summary.append({"number": number, "anchor": f"row-{form.prefix}", "items": items})
    return summary


# --- Submit and approve ----------------------------------------------------------------------------------


def _version(request: HttpRequest, pk: int, roles=None) -> AssessmentVersion:
    kwargs = {"roles": roles} if roles else {}
    return scoped_get_or_404(
        request, AssessmentVersion.objects.select_related("assessment__school", "assessment__organisation",
                                                          "approved_by", "submitted_by"),
        pk=pk, **kwargs, **VERSION_PATHS,
    )


@staff_required()
@require_POST
def version_submit_view(request: HttpRequest, pk: int) -> HttpResponse:
    version = _version(request, pk, EDIT_ROLES)
    try:
        version_submit(version=version, actor=request.user)
    except ValidationError as error:
        messages.error(request, _error_text(error))
    else:
        messages.success(request, f"Version {version.number} submitted for approval.")
    return redirect("riskassess:assessment", pk=version.assessment_id)


@staff_required()
@require_http_methods(["GET", "POST"])
@never_cache
def version_approve_view(request: HttpRequest, pk: int) -> HttpResponse:
    """"Confirm it's you" first; then a page that says what approving does, and the POST that approves."""
    version = _version(request, pk, APPROVE_ROLES)
    if not _may(request, version.assessment, APPROVE_ROLES):
        raise PermissionDenied  # before confirming and rendering, as version_rows does
    url = reverse("riskassess:version-approve", kwargs={"pk": version.pk})
    if not identity_recently_confirmed(request):
        return redirect(confirm_page_url(url))
    if version.status != Status.SUBMITTED:
        messages.info(request, "Only a submitted version can be approved." if version.status == Status.DRAFT
                      else "This version is already approved.")
        return redirect("riskassess:assessment", pk=version.assessment_id)
    if request.method == "POST":
        try:
            version_approve(version=version, actor=request.user, seen=request.POST.get("seen", ""))
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            # One confirmation per approval, as for a signature.
            identity_confirmation_consume(request)
            messages.success(request, f"Version {version.number} approved: it is now the current assessment.")
        return redirect("riskassess:assessment", pk=version.assessment_id)
    current = version.assessment.versions.filter(status=Status.APPROVED).first()
    return render(request, "riskassess/assessments/approve.html", {
        "active_nav": NAV, "version": version, "assessment": version.assessment, "where": _where(version.assessment),
        "current": current, "hazard_count": version.hazards.count(), "seen": approval_fingerprint(version),
    })


# --- Versions ------------------------------------------------------------------------------------------------


@staff_required()
@require_http_methods(["GET"])
def version_list(request: HttpRequest, pk: int) -> HttpResponse:
    assessment = scoped_get_or_404(request, Assessment.objects.select_related("school", "organisation"), pk=pk,
                                   **ASSESSMENT_PATHS)
    versions = list(assessment.versions.select_related("approved_by", "submitted_by").order_by("-number"))
    return render(request, "riskassess/assessments/versions.html", {
        "active_nav": NAV, "assessment": assessment, "where": _where(assessment), "versions": versions,
    })


@staff_required()
@require_http_methods(["GET"])
def version_detail(request: HttpRequest, pk: int) -> HttpResponse:
    version = _version(request, pk)
    context = _version_context(request, version)
    # "Edit (new version)" only from the current approved version, and only when no draft is open already.
    context["may_revise"] = context["may_revise"] and version.status == Status.APPROVED and not (
        version.assessment.versions.filter(status__in=OPEN).exists())
    return render(request, "riskassess/assessments/detail.html", context)


def compare_rows(old: list[dict], new: list[dict]) -> dict:
    """Rows added, removed and changed (field by field) from `old` to `new`. A row is the same row when it has
    the same `row_key` (kept across versions, so two rows with the same element and hazard stay apart); when
    either version has rows without one (snapshots approved before row keys), rows are matched by position."""
    if all(row.get("row_key") for row in old) and all(row.get("row_key") for row in new):
        old_by_key = {str(row["row_key"]): row for row in old}
        new_by_key = {str(row["row_key"]): row for row in new}
    else:
        old_by_key = dict(enumerate(old))
        new_by_key = dict(enumerate(new))
    fields = [name for name, _ in COLUMNS]
    changed = []
    for key, row in new_by_key.items():
        before = old_by_key.get(key)
        if before is None:
            continue
        differences = [
            {"field": COLUMN_LABELS[name], "old": before.get(name), "new": row.get(name)}
            for name in fields if (before.get(name) or "") != (row.get(name) or "")
        ]
        if differences:
            changed.append({"row": row, "differences": differences})
    return {
        "added": [row for key, row in new_by_key.items() if key not in old_by_key],
        "removed": [row for key, row in old_by_key.items() if key not in new_by_key],
        "changed": changed,
    }


@staff_required()
@require_http_methods(["GET"])
def version_compare(request: HttpRequest, pk: int) -> HttpResponse:
    assessment = scoped_get_or_404(request, Assessment.objects.select_related("school", "organisation"), pk=pk,
                                   **ASSESSMENT_PATHS)
    versions = {v.number: v for v in assessment.versions.all()}
    numbers = sorted(versions)
    errors = []

    def pick(name: str, default):
        raw = request.GET.get(name, "")
        if not raw:
            return default
        # ASCII digits only: str.isdigit() accepts "²", which int() refuses.
        if re.fullmatch(r"[0-9]{1,9}", raw) and int(raw) in versions:
            return int(raw)
        errors.append(f"There is no version {raw[:20]} of this assessment.")
        return default

    new_number = pick("new", numbers[-1] if numbers else None)
    old_number = pick("old", numbers[-2] if len(numbers) > 1 else new_number)
    comparison = None
    if old_number is not None and new_number is not None and old_number != new_number:
        old, new = versions[old_number], versions[new_number]
        old_header = {"Person making the assessment": old.assessor_name, "Date": old.assessed_on,
                      "Review date": old.review_on or "", "Status": old.get_status_display()}
        new_header = {"Person making the assessment": new.assessor_name, "Date": new.assessed_on,
                      "Review date": new.review_on or "", "Status": new.get_status_display()}
        comparison = compare_rows(_rows(old), _rows(new))
        comparison["header"] = [{"field": k, "old": v, "new": new_header[k]} for k, v in old_header.items()
                                if v != new_header[k]]
    return render(request, "riskassess/assessments/compare.html", {
        "active_nav": NAV, "assessment": assessment, "where": _where(assessment), "numbers": numbers,
        "old_number": old_number, "new_number": new_number, "comparison": comparison, "errors": errors,
    })


@staff_required()
@require_http_methods(["GET", "POST"])
def version_details(request: HttpRequest, pk: int) -> HttpResponse:
    """Change the header of a draft: assessor, date, and the review date or interval."""
    version = _version(request, pk, EDIT_ROLES)
    if not _may(request, version.assessment, EDIT_ROLES):
        raise PermissionDenied  # before rendering: the head of one school among several reads, never edits
    if version.is_frozen:
        return _frozen_message(request, version)
    initial = {name: getattr(version, name)
               for name in ("assessor_name", "assessed_on", "review_on", "review_interval_months")}
    form = VersionDetailsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            version_details_save(version=version, actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Assessment details saved.")
            return redirect("riskassess:assessment", pk=version.assessment_id)
    return render(request, "riskassess/assessments/details.html", {
        "active_nav": NAV, "assessment": version.assessment, "version": version, "form": form,
    })
