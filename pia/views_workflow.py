"""Sign-off pages: submit, the DPO's advice, the data controller's decision, the SIRO's signature, the next
version, the versions and their comparison, and the DPO's queue across the organisation's schools.

Each decision page checks the scope and the role first (404 outside, 403 without the role), then sends the user
to "confirm it's you", and uses that confirmation up once the decision is recorded: one confirmation per
signature, a POST without a fresh one is refused, and a decision the service refuses leaves it for a retry.
Opening a page (an emailed link) never records anything: the DPO's "seen" marker is set by their decision or by
"Mark as seen".
"""

import datetime as dt
from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.reauth import confirm_page_url, identity_confirmation_consume, identity_recently_confirmed
from schools.models import Role
from schools.scope import scope_for, scoped_get_or_404, staff_required

from . import services
from .forms_workflow import ACCEPT, ADVISE, AdviseForm, CompareForm, DecideForm
from .models import Decision, Pia, PiaVersion, SeenSnapshot
from .questions import PRINCIPLE_QUESTIONS, SCREENING, STEPS
from .snapshot import STEP_FIELDS, content_of, snapshot_of

Status = PiaVersion.Status
NAV = "pia"
PER_PAGE = 20
REVIEW_SOON_DAYS = 30
PIA_PATHS = {"school_path": "school", "organisation_path": "organisation"}
VERSION_PATHS = {"school_path": "pia__school", "organisation_path": "pia__organisation"}
FROZEN = (Status.SIGNED, Status.SUPERSEDED)


# --- Loading -------------------------------------------------------------------------------------------------


def _version(request: HttpRequest, pk: int) -> PiaVersion:
    return scoped_get_or_404(request, PiaVersion.objects.select_related("pia__school", "pia__organisation"), pk=pk,
                             **VERSION_PATHS)


def _pia(request: HttpRequest, pk: int) -> Pia:
    return scoped_get_or_404(request, Pia.objects.select_related("school", "organisation"), pk=pk, **PIA_PATHS)


def _is_teacher_only(request: HttpRequest, pia: Pia) -> bool:
    """A teacher (and nothing more) reads only signed and superseded versions."""
    scope = scope_for(request)
    held = scope.roles_at_school(pia.school_id) if pia.school_id else scope.roles_in_organisation(pia.organisation_id)
    return not (held - {Role.TEACHER})


def _readable_versions(request: HttpRequest, pia: Pia):
    versions = pia.versions.select_related("created_by", "submitted_by").order_by("-number")
    if _is_teacher_only(request, pia):
        versions = versions.filter(status__in=FROZEN)
    return versions


def _where(pia: Pia) -> str:
    return pia.school.name if pia.school_id else f"{pia.organisation.name} (every school)"


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


def _back(version: PiaVersion) -> str:
    return services.version_page_path(version)


# --- What a snapshot says, field by field ---------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    label: str
    text: str


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    fields: tuple[Field, ...]


def _label(name: str) -> str:
    field = PiaVersion._meta.get_field(name)
    return str(field.verbose_name)[:1].upper() + str(field.verbose_name)[1:]


def _lines(item: dict, labels: dict[str, str]) -> str:
    return "\n".join(f"{labels[key]}: {item.get(key) or '—'}" for key in labels if item.get(key) not in (None, ""))


RISK_LABELS = {"privacy_issue": "Privacy issue", "risk_to_individuals": "Risk to individuals",
               "compliance_risk": "Compliance risk", "organisational_risk": "Organisation / corporate risk",
               "likelihood": "Likelihood", "severity": "Severity", "rating": "Rating", "band": "Band"}
SOLUTION_LABELS = {"privacy_issue": "Risk", "solution": "Solution", "result": "Result",
                   "evaluation": "Justified, compliant and proportionate"}


def _date(value: str) -> str:
    """An ISO date of a snapshot as people read it ("6 Dec 2027"); anything else as it is."""
    try:
        return date_format(dt.date.fromisoformat(value), "j M Y")
    except (TypeError, ValueError):
        return value or ""


def _datetime(value: str) -> str:
    """An ISO time of a snapshot in the local time zone ("6 Dec 2026 14:05")."""
    try:
        return date_format(timezone.localtime(dt.datetime.fromisoformat(value)), "j M Y H:i")
    except (TypeError, ValueError):
        return value or ""


def _in_order(answers: dict | None, questions) -> list[dict]:
    # In the form's order: a stored snapshot (JSONB) does not keep the order of its keys.
    answers = answers or {}
    return [answers[q.key] for q in questions if q.key in answers]


def _field(snapshot: dict, name: str, step: str) -> list[Field]:
    value = snapshot.get(name)
    if name == "screening":
        return [Field(q["question"], f"{(q['answer'] or 'not answered').capitalize()}"
                      + (f" — {q['note']}" if q.get("note") else "")) for q in _in_order(value, SCREENING)]
    if name == "principles":
        return [Field(q["question"], q["answer"] or "—") for q in _in_order(value, PRINCIPLE_QUESTIONS)]
    if name == "number_affected":
        return [Field("Number of individuals affected", (value or {}).get("text", ""))]
    if name == "data_items":
        labels = {"data_type": "Type of data", "examples": "Examples", "platform_uses": "Used for"}
        return [Field(f"Data item {i}", _lines(item, labels)) for i, item in enumerate(value or [], start=1)]
    if name == "consultations":
        labels = {"kind": "Kind", "held_on": "Date", "description": "Description"}
        return [Field(f"Consultation {i}", _lines({**item, "held_on": _date(item.get("held_on"))}, labels))
                for i, item in enumerate(value or [], start=1)]
    if name == "risks":
        labels = RISK_LABELS if step == "risks" else SOLUTION_LABELS
        return [Field(f"Risk {i}", _lines(item, labels)) for i, item in enumerate(value or [], start=1)]
    if name == "actions":
        labels = {"action": "Action", "due_on": "Date for completion", "due_note": "Or when",
                  "responsibility": "Responsibility"}
        return [Field(f"Action {i}", _lines({**item, "due_on": _date(item.get("due_on"))}, labels))
                for i, item in enumerate(value or [], start=1)]
    if name == "decisions":
        return [Field(f"{dict(Decision.Kind.choices).get(d['kind'], d['kind'])}",
                      f"{d['name']} ({d['role']}), {_datetime(d['decided_at'])}"
                      + (f"\n{d['comments']}" if d.get("comments") else "") + f"\nFingerprint {d['sha256'][:12]}…")
                for d in value or []]
    return [Field(_label(name), value or "")]


def sections_of(snapshot: dict, *, with_decisions: bool = True) -> list[Section]:
    """The snapshot as the form's sections (a header, then the steps), each a list of labelled texts."""
    header = Section("header", "About this PIA", (
        Field("School / division / team", snapshot.get("division", "")),
        Field("Lead / contact officer", snapshot.get("lead_officer", "")),
        Field("Review date", _date(snapshot.get("review_on", ""))),
    ))
    sections = [header]
    for step in STEPS:
        fields: list[Field] = []
        for name in STEP_FIELDS[step.key]:
            if name == "decisions" and not with_decisions:
                continue
            fields.extend(_field(snapshot, name, step.key))
        title = f"Step {step.number}: {step.title}" if step.number else step.title
        sections.append(Section(step.key, title, tuple(fields)))
    return sections


@dataclass(frozen=True)
class Difference:
    section: str
    label: str
    old: str
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new


def compare_snapshots(old: dict, new: dict) -> list[tuple[str, list[Difference]]]:
    """Every field of both snapshots' content, side by side, section by section (the decisions are each
    version's own record, on the versions page, not a difference of content)."""
    old_sections = sections_of(old, with_decisions=False)
    new_sections = sections_of(new, with_decisions=False)
    result = []
    for before, after in zip(old_sections, new_sections, strict=True):
        before_fields = {f.label: f.text for f in before.fields}
        after_fields = {f.label: f.text for f in after.fields}
        labels = list(before_fields) + [label for label in after_fields if label not in before_fields]
        rows = [Difference(after.title, label, str(before_fields.get(label, "")), str(after_fields.get(label, "")))
                for label in labels]
        result.append((after.title, rows))
    return result


def snapshot_for(version: PiaVersion) -> dict:
    """The stored snapshot of a signed version, or the version as it is now."""
    return version.snapshot if version.snapshot else snapshot_of(version)


# --- Submit and revise -------------------------------------------------------------------------------------


@staff_required()
@require_http_methods(["GET", "POST"])
def submit(request: HttpRequest, pk: int) -> HttpResponse:
    """What submitting does and what is still missing; the POST hands the version to the DPO."""
    version = _version(request, pk)
    if not services.may_author(scope_for(request), version.pia):
        raise PermissionDenied
    if not version.is_editable:
        messages.info(request, "This version has already been submitted.")
        return redirect(_back(version))
    if request.method == "POST":
        try:
            services.version_submit(version=version, actor=request.user)
        except ValidationError as error:
            messages.error(request, _error_text(error))
            return redirect("pia:submit", pk=version.pk)
        messages.success(request, f"Version {version.number} submitted: the DPO has been asked for their advice.")
        return redirect(_back(version))
    return render(request, "pia/workflow/submit.html", {
        "active_nav": NAV, "version": version, "pia": version.pia, "where": _where(version.pia),
        "missing": services.missing_for_submit(version), "back": _back(version),
        "changes": services.changes_requested(version),
    })


@staff_required()
@require_POST
def revise(request: HttpRequest, pk: int) -> HttpResponse:
    pia = _pia(request, pk)
    if not services.may_author(scope_for(request), pia):
        raise PermissionDenied
    try:
        draft = services.version_revise(pia=pia, actor=request.user)
    except ValidationError as error:
        messages.error(request, _error_text(error))
        return redirect("pia:versions", pk=pia.pk)
    messages.success(request, f"Version {draft.number} is open as a draft. The signed version stays current "
                              "until this one is signed.")
    return redirect(_back(draft))


# --- The three decisions -------------------------------------------------------------------------------------


def _decision_page(request: HttpRequest, pk: int, *, allowed, signature: str, status: str, url_name: str,
                   waiting_text: str):
    """Load the version for a decision: 404/403 by scope and role, a message and a redirect if the user wrote it
    or made another of its signatures, or it is not at this stage, else None and the version after "confirm it's
    you"."""
    version = _version(request, pk)
    if not allowed(scope_for(request), version.pia):
        raise PermissionDenied
    refusal = services.refusal_for(request.user, version, signature)
    if refusal:
        messages.error(request, refusal)
        return version, redirect(_back(version))
    if version.status != status:
        messages.info(request, f"Version {version.number} is not {waiting_text}: it is "
                               f"“{version.get_status_display().lower()}”.")
        return version, redirect(_back(version))
    if not identity_recently_confirmed(request):
        return version, redirect(confirm_page_url(reverse(url_name, kwargs={"pk": version.pk})))
    return version, None


def _unconfirmed(request: HttpRequest, url_name: str, version: PiaVersion) -> HttpResponse | None:
    """One confirmation per decision: refuse (back to "confirm it's you") if it expired or was used already.
    The confirmation is used up only once the decision is recorded (`_recorded`)."""
    if identity_recently_confirmed(request):
        return None
    messages.error(request, "Please confirm it's you again: each decision needs its own confirmation.")
    return redirect(confirm_page_url(reverse(url_name, kwargs={"pk": version.pk})))


def _recorded(request: HttpRequest, message: str) -> None:
    """The decision is recorded: its confirmation is spent, so the next signature needs a new one."""
    identity_confirmation_consume(request)
    messages.success(request, message)


def _decision_context(version: PiaVersion) -> dict:
    snapshot = snapshot_of(version)
    return {
        "active_nav": NAV, "version": version, "pia": version.pia, "where": _where(version.pia),
        "sections": sections_of(snapshot), "sha256": PiaVersion.hash_of(content_of(snapshot)),
        "advice": services.dpo_advice(version), "controller": services.controller_decision(version),
        "decisions": list(version.decisions.order_by("decided_at", "id")), "back": _back(version),
        "step_titles": {step.key: step.title for step in STEPS},
    }


@staff_required()
@require_http_methods(["GET", "POST"])
@never_cache
def advise(request: HttpRequest, pk: int) -> HttpResponse:
    version, refused = _decision_page(request, pk, allowed=services.may_advise, signature="advice",
                                      status=Status.SUBMITTED, url_name="pia:advise",
                                      waiting_text="waiting for the DPO's advice")
    if refused:
        return refused
    previous = SeenSnapshot.objects.filter(pia=version.pia, user=request.user).first()
    form = AdviseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        unconfirmed = _unconfirmed(request, "pia:advise", version)
        if unconfirmed:
            return unconfirmed
        try:
            if form.cleaned_data["decision"] == ADVISE:
                services.version_advise(version=version, actor=request.user, advice=form.cleaned_data["comments"],
                                        step_comments=form.step_comments())
                done = (f"Advice given on “{version.pia.title}” version {version.number}: it now waits for the "
                        "data controller.")
            else:
                services.version_request_changes(version=version, actor=request.user,
                                                 comments=form.cleaned_data["comments"],
                                                 step_comments=form.step_comments())
                done = (f"Changes requested on “{version.pia.title}” version {version.number}: it is back with its "
                        "author.")
        except PermissionDenied as error:
            messages.error(request, str(error))
            return redirect(_back(version))
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            _recorded(request, done)
            # Deciding is the DPO having read the PIA: the queue's "changed since" starts from here.
            services.seen_record(version=version, user=request.user)
            return redirect("pia:dpo-queue")
    context = _decision_context(version)
    changed = services.changed_steps(previous.snapshot, services.version_step_hashes(version)) if previous else None
    steps = [(section, form[AdviseForm.step_field(section.key)] if section.key != "header" else None)
             for section in context["sections"]]
    context.update({"form": form, "steps": steps, "changed": changed, "previous": previous})
    return render(request, "pia/workflow/advise.html", context)


@staff_required()
@require_http_methods(["GET", "POST"])
@never_cache
def decide(request: HttpRequest, pk: int) -> HttpResponse:
    version, refused = _decision_page(request, pk, allowed=services.may_decide, signature="controller",
                                      status=Status.ADVISED,
                                      url_name="pia:decide", waiting_text="waiting for the data controller")
    if refused:
        return refused
    form = DecideForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        unconfirmed = _unconfirmed(request, "pia:decide", version)
        if unconfirmed:
            return unconfirmed
        accept = form.cleaned_data["decision"] == ACCEPT
        try:
            services.version_decide(version=version, actor=request.user, accept=accept,
                                    reasons=form.cleaned_data["reasons"])
        except PermissionDenied as error:
            messages.error(request, str(error))
            return redirect(_back(version))
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            _recorded(request, ("You accepted the DPO's advice" if accept else "You overruled the DPO's advice, with "
                                "your reasons") + ": the PIA now waits for the SIRO's signature.")
            return redirect(_back(version))
    context = _decision_context(version)
    context["form"] = form
    return render(request, "pia/workflow/decide.html", context)


@staff_required()
@require_http_methods(["GET", "POST"])
@never_cache
def sign(request: HttpRequest, pk: int) -> HttpResponse:
    version, refused = _decision_page(request, pk, allowed=services.may_sign, signature="siro",
                                      status=Status.DECIDED,
                                      url_name="pia:sign", waiting_text="waiting for the SIRO's signature")
    if refused:
        return refused
    if request.method == "POST":
        unconfirmed = _unconfirmed(request, "pia:sign", version)
        if unconfirmed:
            return unconfirmed
        try:
            services.version_sign(version=version, actor=request.user)
        except PermissionDenied as error:
            messages.error(request, str(error))
            return redirect(_back(version))
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            _recorded(request, f"Version {version.number} of “{version.pia.title}” is signed. It never changes again; "
                               "its fingerprint is on the versions page.")
            return redirect(_back(version))
    context = _decision_context(version)
    context["current"] = version.pia.versions.filter(status=Status.SIGNED).first()
    context["out_of_date"] = version.review_on is None or version.review_on < services.local_today(version.pia)
    return render(request, "pia/workflow/sign.html", context)


# --- Versions and comparison ---------------------------------------------------------------------------------


@staff_required()
@require_http_methods(["GET"])
def versions(request: HttpRequest, pk: int) -> HttpResponse:
    pia = _pia(request, pk)
    readable = _readable_versions(request, pia)
    if _is_teacher_only(request, pia) and not readable.exists():
        raise PermissionDenied
    page = Paginator(readable.prefetch_related("decisions"), PER_PAGE).get_page(request.GET.get("page"))
    scope = scope_for(request)
    may_revise = (services.may_author(scope, pia) and pia.versions.filter(status=Status.SIGNED).exists()
                  and not pia.versions.filter(status__in=PiaVersion.OPEN).exists())
    return render(request, "pia/workflow/versions.html", {
        "active_nav": NAV, "pia": pia, "where": _where(pia), "page": page, "may_revise": may_revise,
        "may_compare": readable.count() > 1, "is_dpo": services.may_advise(scope, pia),
    })


@staff_required()
@require_http_methods(["GET"])
def compare(request: HttpRequest, pk: int) -> HttpResponse:
    pia = _pia(request, pk)
    readable = {v.number: v for v in _readable_versions(request, pia)}
    if not readable:
        raise PermissionDenied
    numbers = sorted(readable, reverse=True)
    initial = {"a": numbers[1] if len(numbers) > 1 else numbers[0], "b": numbers[0]}
    form = CompareForm(request.GET if "a" in request.GET else initial, numbers=numbers)
    sections, old, new = [], None, None
    if form.is_valid():
        old, new = readable[form.cleaned_data["a"]], readable[form.cleaned_data["b"]]
        sections = compare_snapshots(snapshot_for(old), snapshot_for(new))
    changed_count = sum(1 for _, rows in sections for row in rows if row.changed)
    show_all = form.is_valid() and form.cleaned_data["unchanged"]
    if not show_all:
        sections = [(title, [row for row in rows if row.changed]) for title, rows in sections]
        sections = [(title, rows) for title, rows in sections if rows]
    return render(request, "pia/workflow/compare.html", {
        "active_nav": NAV, "pia": pia, "where": _where(pia), "form": form, "sections": sections, "old": old,
        "new": new, "changed_count": changed_count, "show_all": show_all,
    })


# --- The DPO's queue -----------------------------------------------------------------------------------------


@dataclass
class QueueItem:
    pia: Pia
    version: PiaVersion  # the open version, else the signed one, else the latest
    signed: PiaVersion | None
    changed: list[str] | None  # step titles changed since this DPO last saw it; None if never seen (or editing)

    @property
    def editing(self) -> bool:
        """The author is editing the version: what changed is told once they submit it."""
        return self.version.is_editable

    @property
    def review_on(self) -> dt.date | None:
        return self.signed.review_on if self.signed else None

    @property
    def revision(self) -> PiaVersion | None:
        """The version open after the signed one (a review under way), if any."""
        return self.version if self.signed and self.version.pk != self.signed.pk else None


TABS = (
    ("advice", "Waiting for your advice"),
    ("changes", "Changes requested"),
    ("others", "Waiting for others"),
    ("signed", "Signed"),
    ("review", "Due for review"),
)


def _tab_of(item: QueueItem, today: dt.date) -> set[str]:
    tabs = set()
    status = item.version.status
    if status == Status.SUBMITTED:
        tabs.add("advice")
    elif status == Status.CHANGES_REQUESTED:
        tabs.add("changes")
    elif status in (Status.DRAFT, Status.ADVISED, Status.DECIDED):
        tabs.add("others")
    if item.signed is not None:
        tabs.add("signed")
        if item.signed.review_on and item.signed.review_on <= today + dt.timedelta(days=REVIEW_SOON_DAYS):
            tabs.add("review")
    return tabs


@staff_required([Role.DPO])
@require_http_methods(["GET"])
def dpo_queue(request: HttpRequest) -> HttpResponse:
    """Every PIA of the organisations this user is the DPO of, across all their schools, by where it stands."""
    scope = scope_for(request)
    organisation_ids = [oid for oid, roles in scope.roles_by_organisation.items() if Role.DPO in roles]
    pias = list(Pia.objects.filter(organisation_id__in=organisation_ids).select_related("school", "organisation")
                .prefetch_related("versions").order_by("organisation__name", "school__name", "title"))
    seen = {s.pia_id: s for s in SeenSnapshot.objects.filter(user=request.user, pia__in=pias)}
    titles = {step.key: step.title for step in STEPS}
    today = timezone.localdate()
    tabs: dict[str, list[QueueItem]] = {key: [] for key, _ in TABS}
    for pia in pias:
        by_status = {v.status: v for v in pia.versions.all()}
        versions_ = sorted(pia.versions.all(), key=lambda v: -v.number)
        if not versions_:
            continue
        current = next((v for v in versions_ if v.status in PiaVersion.OPEN), None) or versions_[0]
        signed = by_status.get(Status.SIGNED)
        changed = None
        if pia.pk in seen and not current.is_editable:
            # Step hashes stored at submission: no snapshot is rebuilt here, whatever the number of PIAs.
            hashes = services.version_step_hashes(current)
            changed = [titles[key] for key in services.changed_steps(seen[pia.pk].snapshot, hashes)]
        item = QueueItem(pia=pia, version=current, signed=signed, changed=changed)
        for tab in _tab_of(item, today):
            tabs[tab].append(item)
    tabs["review"].sort(key=lambda item: item.review_on)
    active = request.GET.get("tab") if request.GET.get("tab") in tabs else "advice"
    page = Paginator(tabs[active], PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "pia/workflow/dpo_queue.html", {
        "active_nav": NAV, "tabs": [(key, label, len(tabs[key])) for key, label in TABS], "active": active,
        "active_label": dict(TABS)[active], "page": page, "query": f"tab={active}", "today": today,
        "several_organisations": len(organisation_ids) > 1,
    })


@staff_required()
@require_POST
def mark_seen(request: HttpRequest, pk: int) -> HttpResponse:
    """The DPO marks a PIA as read as it is now, without opening the advice page."""
    version = _version(request, pk)
    if not services.may_advise(scope_for(request), version.pia):
        raise PermissionDenied
    services.seen_record(version=version, user=request.user)
    messages.success(request, f"“{version.pia.title}” marked as seen at version {version.number}.")
    tab = request.POST.get("tab") if request.POST.get("tab") in dict(TABS) else "advice"
    return redirect(f"{reverse('pia:dpo-queue')}?tab={tab}")
