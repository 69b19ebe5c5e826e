"""The PIA register, a new PIA (screening first, then from the template or blank), a version's overview and
its step pages with their tables.

Everything loads through the scope: another organisation's PIA answers 404. Inside the scope, the
headteacher and the office read every version of the PIAs covering their school and author them; the DPO,
SIRO and organisation admin read every PIA of the organisation; a teacher reads only signed and superseded
versions (403 for a draft or a version in sign-off).
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from schools.models import Organisation, School
from schools.scope import scope_for, scoped_get_or_404, staff_required

from . import forms as pia_forms
from .editing import (
    AUTHOR_ROLES,
    FULL_READER_ROLES,
    READABLE_BY_ALL,
    NotEditable,
    may_author,
    may_read_version,
    pia_create,
    pia_step_save,
    reader_roles,
    staff_of,
    steps_progress,
)
from .models import Decision, Pia, PiaVersion
from .questions import PRINCIPLES, SCREENING, STEP_KEYS, STEPS, screening_recommends_pia
from .snapshot import number_affected

NAV = "pia"
PAGE_SIZE = 25
Status = PiaVersion.Status
PIA_PATHS = {"school_path": "school", "organisation_path": "organisation"}
VERSION_PATHS = {"school_path": "pia__school", "organisation_path": "pia__organisation"}
STEP_BY_KEY = {step.key: step for step in STEPS}
# Decisions whose per-step comments the author sees beside each step.
COMMENTING_KINDS = (Decision.Kind.CHANGES_REQUESTED, Decision.Kind.DPO_ADVICE)


def _where(pia: Pia) -> str:
    return pia.school.name if pia.school_id else f"{pia.organisation.name} (organisation-wide)"


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


def _add_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for name, errors in error.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, error.messages)


# --- The register -------------------------------------------------------------------------------------------


def _full_reader_filter(scope) -> Q:
    """PIAs whose every version the user reads: at their schools, and organisation-wide ones of organisations
    where they hold such a role."""
    schools = scope.schools_where(FULL_READER_ROLES)
    organisations = [oid for oid in scope.organisation_ids if scope.roles_in_organisation(oid) & FULL_READER_ROLES]
    return Q(school_id__in=schools) | Q(school__isnull=True, organisation_id__in=organisations)


@staff_required()
@require_http_methods(["GET"])
def pia_list(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request)
    schools = list(School.objects.filter(pk__in=scope.school_ids).order_by("name"))
    form = pia_forms.RegisterFilterForm(request.GET or None, schools=schools)
    latest = PiaVersion.objects.filter(pia=OuterRef("pk")).order_by("-number")
    signed = PiaVersion.objects.filter(pia=OuterRef("pk"), status=Status.SIGNED)
    pias = (
        scope.filter(Pia.objects.all(), **PIA_PATHS)
        .annotate(
            current_pk=Subquery(latest.values("pk")[:1]), current_number=Subquery(latest.values("number")[:1]),
            current_status=Subquery(latest.values("status")[:1]),
            current_review_on=Subquery(latest.values("review_on")[:1]),
            signed_number=Subquery(signed.values("number")[:1]),
            signed_review_on=Subquery(signed.values("review_on")[:1]),
            readable=Exists(PiaVersion.objects.filter(pia=OuterRef("pk"), status__in=READABLE_BY_ALL)),
        )
        # A teacher's register lists what they may read: PIAs with a signed (or superseded) version.
        .filter(_full_reader_filter(scope) | Q(readable=True))
        .select_related("school", "organisation")
    )
    filtered = False
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        if data["q"]:
            pias = pias.filter(title__icontains=data["q"].strip())
            filtered = True
        if data["status"]:
            # A teacher sees a PIA they read only through its signed version as signed.
            full = _full_reader_filter(scope)
            condition = full & Q(current_status=data["status"])
            if data["status"] == Status.SIGNED:
                condition |= ~full & Q(readable=True)
            pias = pias.filter(condition)
            filtered = True
        if data["school"]:
            chosen = next(s for s in schools if s.pk == data["school"])
            pias = pias.filter(Q(school_id=chosen.pk) | Q(school__isnull=True, organisation_id=chosen.organisation_id))
            filtered = True
    pias = pias.order_by("organisation__name", "school__name", "title", "pk")
    page = Paginator(pias, PAGE_SIZE).get_page(request.GET.get("page"))
    today = timezone.localdate()
    labels = dict(Status.choices)
    rows = []
    for pia in page:
        full = bool(reader_roles(scope, pia) & FULL_READER_ROLES)
        review_on = pia.signed_review_on if pia.signed_number else pia.current_review_on
        rows.append({
            "pia": pia, "where": _where(pia), "full": full,
            "status": labels.get(pia.current_status, "") if full else labels[Status.SIGNED],
            "status_key": pia.current_status if full else Status.SIGNED,
            "current_number": pia.current_number, "signed_number": pia.signed_number, "review_on": review_on,
            "out_of_date": bool(pia.signed_number and pia.signed_review_on and pia.signed_review_on < today),
        })
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "pia/steps/list.html", {
        "active_nav": NAV, "rows": rows, "page": page, "form": form, "filtered": filtered,
        "may_author": bool(scope.roles & AUTHOR_ROLES), "query": query.urlencode(),
        "show_school_filter": len(schools) > 1,
    })


# --- A new PIA ----------------------------------------------------------------------------------------------


@staff_required(AUTHOR_ROLES)
@require_http_methods(["GET", "POST"])
def pia_new(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request)
    schools = list(School.objects.filter(pk__in=scope.schools_where(AUTHOR_ROLES)).select_related("organisation")
                   .order_by("name"))
    organisations = list(Organisation.objects.filter(pk__in={s.organisation_id for s in schools}).order_by("name"))
    form = pia_forms.NewPiaForm(request.POST or None, schools=schools, organisations=organisations)
    not_indicated = False
    if request.method == "POST" and form.is_valid():
        screening = form.screening()
        recommended = screening_recommends_pia(screening)
        if not recommended and not form.cleaned_data["confirm_not_indicated"]:
            not_indicated = True
            form.add_error("confirm_not_indicated", "Every answer is no, so a PIA is not indicated. Tick the box to "
                                                    "create one anyway, or change an answer.")
        else:
            organisation, school = form.target()
            try:
                version = pia_create(organisation=organisation, school=school, actor=request.user,
                                     title=form.cleaned_data["title"],
                                     from_template=form.cleaned_data["start"] == "template", screening=screening)
            except ValidationError as error:
                _add_errors(form, error)
            else:
                yes = sum(1 for entry in screening.values() if entry["answer"] == "yes")
                if recommended:
                    reason = f"The screening recommends a PIA ({yes} of {len(SCREENING)} answers are yes)."
                else:
                    reason = "The screening did not indicate a PIA; you chose to carry one out anyway."
                start = ("Started from the template: check every step and adapt it to your project."
                         if form.cleaned_data["start"] == "template" else "Work through the steps below.")
                messages.success(request, f"PIA \u201c{version.pia.title}\u201d created as a draft. {reason} {start}")
                return redirect("pia:version", pk=version.pk)
    return render(request, "pia/steps/new.html", {
        "active_nav": NAV, "form": form, "not_indicated": not_indicated,
    })


# --- A PIA and its versions ---------------------------------------------------------------------------------


@staff_required()
@require_http_methods(["GET"])
def pia_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A PIA's current version: the open one for those who read drafts, else the signed (or last superseded)."""
    pia = scoped_get_or_404(request, Pia.objects.select_related("school", "organisation"), pk=pk, **PIA_PATHS)
    scope = scope_for(request)
    versions = list(pia.versions.order_by("-number"))
    if not versions:
        raise Http404
    if reader_roles(scope, pia) & FULL_READER_ROLES:
        version = versions[0]
    else:
        readable = [v for v in versions if v.status in READABLE_BY_ALL]
        signed = [v for v in readable if v.status == Status.SIGNED]
        if not readable:
            raise PermissionDenied
        version = (signed or readable)[0]
    return redirect("pia:version", pk=version.pk)


def _load_version(request: HttpRequest, pk: int) -> PiaVersion:
    version = scoped_get_or_404(
        request,
        PiaVersion.objects.select_related("pia__school", "pia__organisation", "created_by", "submitted_by"),
        pk=pk, **VERSION_PATHS,
    )
    if not may_read_version(scope_for(request), version):
        raise PermissionDenied
    return version


def _person(user) -> str:
    return (user.get_full_name() or user.get_username()) if user else ""


def _step_comments(version: PiaVersion) -> tuple[Decision | None, dict]:
    decision = version.decisions.filter(kind__in=COMMENTING_KINDS).order_by("-decided_at", "-id").first()
    comments = {key: text for key, text in (decision.step_comments if decision else {}).items() if text}
    return decision, comments


def _content(version: PiaVersion) -> dict:
    """Every step's content for reading (the overview, and a step page that is not editable)."""
    matrix = version.get_matrix()
    risks = []
    for risk in version.risks.order_by("position", "id"):
        band = matrix.band(risk.rating)
        risks.append({"row": risk, "rating": risk.rating, "band": band.label, "band_key": band.key,
                      "likelihood_label": matrix.likelihood_label(risk.likelihood),
                      "severity_label": matrix.severity_label(risk.severity)})
    if version.is_frozen_for_good and version.snapshot:
        affected = version.snapshot.get("number_affected", {}).get("text", "")
        affected_frozen = True
    else:
        affected, affected_frozen = str(number_affected(version)), False
    screening = [{"question": q, "answer": (version.screening.get(q.key) or {}).get("answer", ""),
                  "note": (version.screening.get(q.key) or {}).get("note", "")} for q in SCREENING]
    principles = [{"principle": p, "answers": [(q, version.principles.get(q.key, "")) for q in p.questions]}
                  for p in PRINCIPLES]
    consultations = list(version.consultations.order_by("held_on", "position", "id"))
    return {
        "screening": screening, "recommends_pia": screening_recommends_pia(version.screening),
        "data_items": list(version.data_items.order_by("position", "id")),
        "affected": affected, "affected_frozen": affected_frozen,
        "internal_consultations": [c for c in consultations if c.kind == "internal"],
        "external_consultations": [c for c in consultations if c.kind == "external"],
        "risks": risks, "matrix": matrix,
        "actions": list(version.actions.select_related("responsible_user").order_by("position", "id")),
        "principles": principles,
        "decisions": list(version.decisions.order_by("decided_at", "id")),
    }


def _common(request: HttpRequest, version: PiaVersion) -> dict:
    scope = scope_for(request)
    pia = version.pia
    decision, comments = _step_comments(version)
    return {
        "active_nav": NAV, "version": version, "pia": pia, "scope": scope, "where": _where(pia),
        "progress": steps_progress(version), "may_edit": version.is_editable and may_author(scope, pia),
        "comment_decision": decision, "step_comments": comments,
        "created_by_name": _person(version.created_by),
        "out_of_date": version.is_out_of_date(),
    }


@staff_required()
@require_http_methods(["GET"])
def version_detail(request: HttpRequest, pk: int) -> HttpResponse:
    version = _load_version(request, pk)
    context = _common(request, version)
    context.update(_content(version))
    context["steps"] = STEPS
    context["other_versions"] = [
        other for other in version.pia.versions.exclude(pk=version.pk).order_by("-number")
        if may_read_version(context["scope"], other)
    ]
    return render(request, "pia/steps/version.html", context)


# --- The step pages -----------------------------------------------------------------------------------------


def _staff_choices(version: PiaVersion):
    return staff_of(version.pia.organisation_id).order_by("first_name", "last_name", "username")


def _step_forms(version: PiaVersion, step: str, data=None) -> dict:
    """The forms of one step page, bound to `data` when posted: "form" (the step's fields) and "formset"."""
    forms: dict = {"form": None, "formset": None}
    if step == "screening":
        forms["form"] = pia_forms.ScreeningForm(data, initial=pia_forms.ScreeningForm.initial_from(version.screening))
    elif step == "principles":
        forms["form"] = pia_forms.PrinciplesForm(data,
                                                 initial=pia_forms.PrinciplesForm.initial_from(version.principles))
    else:
        form_class = {"need": pia_forms.NeedForm, "flows": pia_forms.FlowsForm,
                      "consultation": pia_forms.ConsultationTextForm, "actions": pia_forms.ContactForm}.get(step)
        if form_class is not None:
            forms["form"] = form_class(data, initial={name: getattr(version, name) for name in form_class.base_fields})
    table = {"need": ("data_items", pia_forms.DataItemFormSet, ("data_type", "examples", "platform_uses"), {}),
             "consultation": ("consultations", pia_forms.ConsultationFormSet, ("kind", "held_on", "description"), {}),
             "risks": ("risks", pia_forms.RiskFormSet, ("privacy_issue", "risk_to_individuals", "compliance_risk",
                                                        "organisational_risk", "likelihood", "severity"),
                       {"matrix": version.get_matrix()}),
             "solutions": ("risks", pia_forms.SolutionFormSet, ("solution", "result", "evaluation"), {}),
             "actions": ("actions", pia_forms.ActionFormSet,
                         ("action", "due_on", "due_note", "responsibility", "responsible_user"),
                         {"staff": _staff_choices(version)})}.get(step)
    if table is not None:
        related, formset_class, fields, form_kwargs = table
        ordering = ("held_on", "position", "id") if related == "consultations" else ("position", "id")
        rows = list(getattr(version, related).order_by(*ordering))
        initial = [{"id": row.pk, **{name: getattr(row, name) for name in fields}} for row in rows]
        forms["formset"] = formset_class(data, prefix="rows", initial=initial, form_kwargs=form_kwargs,
                                         row_ids=frozenset(row.pk for row in rows))
        if step == "solutions":
            for form, risk in zip(forms["formset"].forms, rows, strict=False):
                form.risk = risk
    return forms


def _step_data(step: str, form, formset) -> dict:
    data: dict = {}
    if form is not None:
        if step == "screening":
            data["screening"] = form.screening()
        elif step == "principles":
            data["principles"] = dict(form.cleaned_data)
        else:
            data.update(form.cleaned_data)
    if formset is not None:
        data["rows"] = formset.rows()
    return data


def _neighbours(step: str) -> tuple:
    index = STEP_KEYS.index(step)
    previous = STEPS[index - 1] if index > 0 else None
    following = STEPS[index + 1] if index + 1 < len(STEPS) else None
    return previous, following


@staff_required()
@require_http_methods(["GET", "POST"])
def version_step(request: HttpRequest, pk: int, step: str) -> HttpResponse:
    if step not in STEP_BY_KEY:
        raise Http404
    version = _load_version(request, pk)
    context = _common(request, version)
    step_url = reverse("pia:step", kwargs={"pk": version.pk, "step": step})
    editable_step = step != "signoff"
    if request.method == "POST":
        if not may_author(context["scope"], version.pia):
            raise PermissionDenied
        if not editable_step:
            messages.error(request, "The sign-off is recorded by the DPO, the data controller and the SIRO on their "
                                    "own pages: nothing to save here.")
            return redirect(step_url)
        if not version.is_editable:
            messages.error(request, f"Nothing was saved: this version is {version.get_status_display().lower()} "
                                    "and cannot be edited."
                           + (" Revise it to start a new version." if version.is_frozen_for_good else ""))
            return redirect(step_url)
    editing = context["may_edit"] and editable_step
    forms = _step_forms(version, step, request.POST if request.method == "POST" else None) if editing else {}
    problems: list[str] = []
    if request.method == "POST" and editing:
        form, formset = forms["form"], forms["formset"]
        valid = (form is None or form.is_valid()) & (formset is None or formset.is_valid())
        if valid:
            try:
                pia_step_save(version=version, actor=request.user, step=step,
                              data=_step_data(step, form, formset))
            except NotEditable as error:
                messages.error(request, f"Nothing was saved: {_error_text(error)}")
                return redirect(step_url)
            except ValidationError as error:
                problems = error.messages
            else:
                title = STEP_BY_KEY[step].title
                messages.success(request, f"Saved: {title[0].lower()}{title[1:]}.")
                following = _neighbours(step)[1]
                then = request.POST.get("then")
                if then == "next" and following is not None:
                    return redirect("pia:step", pk=version.pk, step=following.key)
                if then == "overview":
                    return redirect(reverse("pia:version", kwargs={"pk": version.pk}) + f"#step-{step}")
                return redirect(step_url + ("#new-row" if then == "add" else ""))
        if not problems:
            problems = ["Nothing was saved: correct the fields marked below."]
    previous, following = _neighbours(step)
    context.update(_content(version))
    context.update({
        "step": STEP_BY_KEY[step], "step_key": step, "previous": previous, "following": following,
        "editing": editing, "problems": problems, **forms,
        "step_comment": context["step_comments"].get(step, ""),
    })
    return render(request, "pia/steps/step.html", context)


@staff_required()
@require_http_methods(["GET", "POST"])
def version_details(request: HttpRequest, pk: int) -> HttpResponse:
    """The header of an editable version: title, school / division / team, lead officer, review date."""
    version = _load_version(request, pk)
    if not may_author(scope_for(request), version.pia):
        raise PermissionDenied
    back = reverse("pia:version", kwargs={"pk": version.pk})
    if not version.is_editable:
        messages.error(request, f"Nothing can be changed: this version is {version.get_status_display().lower()}.")
        return redirect(back)
    initial = {"title": version.pia.title, "division": version.division, "lead_officer": version.lead_officer,
               "review_on": version.review_on}
    form = pia_forms.DetailsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            pia_step_save(version=version, actor=request.user, step="details", data=form.cleaned_data)
        except NotEditable as error:
            messages.error(request, f"Nothing was saved: {_error_text(error)}")
            return redirect(back)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "Saved the PIA's details.")
            return redirect(back)
    return render(request, "pia/steps/details.html", {**_common(request, version), "form": form})
