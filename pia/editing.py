"""Starting a PIA and editing its steps and rows: each a keyword-only function, one transaction, audited.

Only an author edits (the headteacher or the office of the PIA's school; for an organisation-wide PIA, of any
school of the organisation), and only while the version is editable (a draft, or returned with changes
requested). Every edit locks the version row first, so a submit that starts meanwhile waits for the edit to
commit and then sees it whole (and an edit that starts after a submit sees the version frozen).

A risk's rating is always computed from its two scores on the version's matrix; a rating passed in is ignored.
"""

from dataclasses import dataclass
from datetime import date

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from riskassess.matrix import Matrix
from riskassess.models import matrix_for
from schools.audit import audit_log
from schools.models import Membership, Organisation, Role, School
from schools.scope import StaffScope, build_scope

from . import seed_template
from .models import Action, Consultation, DataItem, Pia, PiaVersion, PrivacyRisk
from .questions import PRINCIPLE_QUESTIONS, SCREENING, STEPS, screening_complete, screening_recommends_pia

AUTHOR_ROLES = frozenset({Role.HEADTEACHER, Role.OFFICE})
# Who reads every version (drafts and versions in sign-off); teachers read signed and superseded ones only.
FULL_READER_ROLES = frozenset({Role.HEADTEACHER, Role.OFFICE, Role.DPO, Role.SIRO, Role.ORG_ADMIN})
READABLE_BY_ALL = (PiaVersion.Status.SIGNED, PiaVersion.Status.SUPERSEDED)

# The text fields each step page edits (the tables are rows, below).
STEP_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "need": ("aims", "benefits_organisation", "benefits_individuals", "benefits_others", "related_documents",
             "need_reason"),
    "flows": ("collection", "use", "deletion", "flow_description"),
    "consultation": ("risks_identified", "risks_addressed", "internal_consultees", "external_consultees",
                     "consultation_method"),
    "actions": ("contact_point",),
}
# The steps pia_step_save knows: the form's steps that hold answers, and "details" (title and header).
SAVABLE_STEPS = ("details", "screening", "need", "flows", "consultation", "risks", "solutions", "actions",
                 "principles")
# The table each step edits.
STEP_TABLE = {"need": "data_items", "consultation": "consultations", "risks": "risks", "solutions": "solutions",
              "actions": "actions"}
MAX_TEXT = 20_000


@dataclass(frozen=True)
class Table:
    model: type
    fields: tuple[str, ...]
    noun: str
    can_add: bool = True


TABLES: dict[str, Table] = {
    "data_items": Table(DataItem, ("data_type", "examples", "platform_uses"), "data inventory row"),
    "consultations": Table(Consultation, ("kind", "held_on", "description"), "consultation"),
    "risks": Table(PrivacyRisk, ("privacy_issue", "risk_to_individuals", "compliance_risk", "organisational_risk",
                                 "likelihood", "severity", "solution", "result", "evaluation"), "risk"),
    # Step four edits the risks' solutions: the same rows, no adding or removing.
    "solutions": Table(PrivacyRisk, ("solution", "result", "evaluation"), "solution", can_add=False),
    "actions": Table(Action, ("action", "due_on", "due_note", "responsibility", "responsible_user"), "action"),
}


class NotEditable(ValidationError):
    """The version is submitted, in sign-off, signed or superseded: its content cannot change."""


# --- Who may author -----------------------------------------------------------------------------------------


def author_roles(scope: StaffScope, pia: Pia) -> frozenset[str]:
    """The roles `scope` holds that count for authoring `pia`: at its school; for an organisation-wide PIA, at
    any school of the organisation."""
    held = scope.roles_at_school(pia.school_id) if pia.school_id else scope.roles_in_organisation(pia.organisation_id)
    return held & AUTHOR_ROLES


def may_author(user_or_scope, pia: Pia) -> bool:
    scope = user_or_scope if isinstance(user_or_scope, StaffScope) else build_scope(user_or_scope)
    return bool(author_roles(scope, pia))


def reader_roles(scope: StaffScope, pia: Pia) -> frozenset[str]:
    return scope.roles_at_school(pia.school_id) if pia.school_id else scope.roles_in_organisation(pia.organisation_id)


def may_read_version(scope: StaffScope, version: PiaVersion) -> bool:
    """Everyone in scope reads signed and superseded versions; drafts and versions in sign-off are for the
    authors, the DPO, the SIRO and the organisation admin (a teacher gets 403)."""
    held = reader_roles(scope, version.pia)
    if held & FULL_READER_ROLES:
        return True
    return bool(held) and version.status in READABLE_BY_ALL


def _require_author(actor, pia: Pia) -> None:
    if not may_author(actor, pia):
        if pia.school_id:
            raise PermissionDenied("Only the headteacher or the office of the school can edit this PIA.")
        raise PermissionDenied("Only a headteacher or the office of one of the organisation's schools can edit "
                               "this organisation-wide PIA.")


def _locked_version(version: PiaVersion) -> PiaVersion:
    """The version, re-read under a row lock; refused unless it is editable."""
    locked = PiaVersion.objects.select_for_update(of=("self",)).select_related("pia").get(pk=version.pk)
    if not locked.is_editable:
        raise NotEditable(f"This version is {locked.get_status_display().lower()}: it cannot be edited now."
                          + (" Revise it to start a new version." if locked.is_frozen_for_good else ""))
    return locked


def _audit(actor, action: str, version: PiaVersion, data: dict) -> None:
    pia = version.pia
    audit_log(actor=actor, action=action, obj=pia, school=pia.school, organisation=pia.organisation,
              data={"version": version.number, **data})


# --- Scores -------------------------------------------------------------------------------------------------


def scaled(score: int, matrix: Matrix) -> int:
    """A score from the seed's 3 × 3 form placed on the organisation's matrix (2 of 3 is 3 of 5), as the risk
    register's template does."""
    return round((score - 1) * (matrix.size - 1) / 2) + 1


# --- Screening ----------------------------------------------------------------------------------------------


def clean_screening(screening: dict) -> dict:
    """Every question answered yes or no, with an optional note; unknown keys refused."""
    if not isinstance(screening, dict):
        raise ValidationError("Answer the screening questions.")
    keys = {q.key for q in SCREENING}
    unknown = set(screening) - keys
    if unknown:
        raise ValidationError(f"Unknown screening questions: {', '.join(sorted(unknown))}.")
    cleaned = {}
    for question in SCREENING:
        entry = screening.get(question.key) or {}
        answer = (entry.get("answer") or "").strip().lower()
        note = (entry.get("note") or "").strip()
        if answer not in ("yes", "no"):
            raise ValidationError(f"Answer yes or no: \u201c{question.text}\u201d")
        if len(note) > 1000:
            raise ValidationError("A screening note is at most 1,000 characters.")
        cleaned[question.key] = {"answer": answer, "note": note}
    return cleaned


# --- Creating -----------------------------------------------------------------------------------------------


def pia_create(
    *, organisation: Organisation, school: School | None, actor, title: str, from_template: bool, screening: dict,
) -> PiaVersion:
    """A new PIA and its version 1, a draft: blank, or filled in from the seed (`pia.seed_template`), with the
    screening answered on the "new" page. Returns the version."""
    title = (title or "").strip()
    if not title:
        raise ValidationError({"title": "Give the project a title."})
    if len(title) > 200:
        raise ValidationError({"title": "A title is at most 200 characters."})
    if school is not None and school.organisation_id != organisation.pk:
        raise ValidationError("That school is not part of the organisation.")
    screening = clean_screening(screening)
    with transaction.atomic():
        pia = Pia(organisation=organisation, school=school, title=title, created_by=actor)
        _require_author(actor, pia)
        pia.save()
        matrix = matrix_for(organisation)
        version = PiaVersion(pia=pia, number=1, created_by=actor, matrix=matrix.as_dict(), screening=screening,
                             division=school.name if school else organisation.name)
        counts = {}
        if from_template:
            version.lead_officer = seed_template.LEAD_OFFICER
            for values in (seed_template.NEED, seed_template.FLOWS, seed_template.CONSULTATION):
                for name, value in values.items():
                    setattr(version, name, value)
            version.contact_point = seed_template.CONTACT_POINT
            version.principles = dict(seed_template.PRINCIPLES)
        version.save()
        if from_template:
            DataItem.objects.bulk_create(
                DataItem(version=version, position=i, **row) for i, row in enumerate(seed_template.DATA_ITEMS))
            Consultation.objects.bulk_create(
                Consultation(version=version, position=i, **row) for i, row in enumerate(seed_template.CONSULTATIONS))
            risks = []
            for i, row in enumerate(seed_template.RISKS):
                likelihood, severity = scaled(row["likelihood"], matrix), scaled(row["severity"], matrix)
                values = {**row, "likelihood": likelihood, "severity": severity}
                risks.append(PrivacyRisk(version=version, position=i, rating=matrix.rating(likelihood, severity),
                                         **values))
            PrivacyRisk.objects.bulk_create(risks)
            Action.objects.bulk_create(
                Action(version=version, position=i, **row) for i, row in enumerate(seed_template.ACTIONS))
            counts = {"data_items": len(seed_template.DATA_ITEMS), "consultations": len(seed_template.CONSULTATIONS),
                      "risks": len(risks), "actions": len(seed_template.ACTIONS)}
        _audit(actor, "pia.created", version, {
            "from": "template" if from_template else "blank", "screening_recommends_pia":
            screening_recommends_pia(screening), **counts,
        })
    return version


# --- Steps --------------------------------------------------------------------------------------------------


def _clean_text(value, label: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"{label}: expected text.")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise ValidationError(f"{label}: at most {MAX_TEXT:,} characters.")
    return value


def _clean_principles(answers: dict) -> dict:
    if not isinstance(answers, dict):
        raise ValidationError("Answer the principles' questions.")
    keys = {q.key for q in PRINCIPLE_QUESTIONS}
    unknown = set(answers) - keys
    if unknown:
        raise ValidationError(f"Unknown questions: {', '.join(sorted(unknown))}.")
    return {q.key: _clean_text(answers.get(q.key), q.text) for q in PRINCIPLE_QUESTIONS}


DETAIL_FIELDS = ("title", "division", "lead_officer", "review_on")


def _apply_details(version: PiaVersion, data: dict) -> list[str]:
    unknown = set(data) - set(DETAIL_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown fields for the details: {', '.join(sorted(unknown))}.")
    changed = []
    pia = version.pia
    if "title" in data:
        title = _clean_text(data["title"], "Title")
        if not title:
            raise ValidationError({"title": "Give the project a title."})
        if len(title) > 200:
            raise ValidationError({"title": "A title is at most 200 characters."})
        if title != pia.title:
            pia.title = title
            pia.save(update_fields=["title"])
            changed.append("title")
    for name in ("division", "lead_officer"):
        if name in data:
            value = _clean_text(data[name], PiaVersion._meta.get_field(name).verbose_name)
            if len(value) > 200:
                raise ValidationError({name: "At most 200 characters."})
            if value != getattr(version, name):
                setattr(version, name, value)
                changed.append(name)
    if "review_on" in data:
        review_on = data["review_on"]
        if review_on is not None and not isinstance(review_on, date):
            raise ValidationError({"review_on": "Give the review date as a date."})
        if review_on is not None and review_on <= timezone.localdate():
            raise ValidationError({"review_on": "The review date must be in the future."})
        if review_on != version.review_on:
            version.review_on = review_on
            changed.append("review_on")
    return changed


def pia_step_save(*, version: PiaVersion, actor, step: str, data: dict) -> PiaVersion:
    """Save one step page: its text fields (and for the screening and principles, their answers), and, under
    `data["rows"]`, its table as `rows_save` takes it. All or nothing."""
    if step not in SAVABLE_STEPS:
        raise ValidationError(f"There is no step \u201c{step}\u201d to save.")
    data = dict(data)
    rows = data.pop("rows", None)
    with transaction.atomic():
        version = _locked_version(version)
        _require_author(actor, version.pia)
        changed: list[str] = []
        if step == "details":
            changed = _apply_details(version, data)
        elif step == "screening":
            screening = clean_screening(data["screening"] if set(data) == {"screening"} else data)
            if screening != version.screening:
                version.screening = screening
                changed.append("screening")
        elif step == "principles":
            principles = _clean_principles(data["principles"] if set(data) == {"principles"} else data)
            changed = [key for key, value in principles.items() if version.principles.get(key, "") != value]
            version.principles = principles
        else:
            for name in STEP_TEXT_FIELDS.get(step, ()):
                if name in data:
                    value = _clean_text(data[name], PiaVersion._meta.get_field(name).verbose_name.capitalize())
                    if value != getattr(version, name):
                        setattr(version, name, value)
                        changed.append(name)
            unknown = set(data) - set(STEP_TEXT_FIELDS.get(step, ()))
            if unknown:
                raise ValidationError(f"Unknown fields for this step: {', '.join(sorted(unknown))}.")
        if changed:
            version.save()
            _audit(actor, "pia.step_saved", version, {"step": step, "changed": changed})
        if rows is not None:
            if step not in STEP_TABLE:
                raise ValidationError("This step has no table.")
            _rows_save(version=version, actor=actor, table=STEP_TABLE[step], rows=rows)
    return version


# --- Rows ---------------------------------------------------------------------------------------------------


def _table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise ValidationError(f"There is no table \u201c{name}\u201d.") from None


def staff_of(organisation_id: int):
    """Active members of staff of the organisation (at any of its schools, or across it)."""
    member_ids = Membership.objects.filter(organisation_id=organisation_id).values("user_id")
    return get_user_model().objects.filter(pk__in=member_ids, is_active=True)


def _row_values(version: PiaVersion, table: Table, values: dict, matrix: Matrix, label: str) -> dict:
    unknown = set(values) - set(table.fields) - {"rating"}
    if unknown:
        raise ValidationError(f"{label}: unknown fields {', '.join(sorted(unknown))}.")
    values = {key: value for key, value in values.items() if key != "rating"}  # a rating is never typed
    user = values.get("responsible_user")
    if user is not None:
        user_id = user.pk if hasattr(user, "pk") else user
        if not staff_of(version.pia.organisation_id).filter(pk=user_id).exists():
            raise ValidationError(f"{label}: the person responsible must be a member of staff of the organisation.")
        values["responsible_user_id"] = user_id
        values.pop("responsible_user")
    elif "responsible_user" in values:
        values["responsible_user_id"] = values.pop("responsible_user")
    return values


def _validate_row(row, table: Table, matrix: Matrix, label: str) -> None:
    if table.model is PrivacyRisk:
        try:
            row.rating = matrix.rating(row.likelihood, row.severity)
        except (TypeError, ValueError) as error:
            raise ValidationError(f"{label}: {error}") from None
    try:
        row.full_clean(exclude=["version", "rating", "responsible_user"])
    except ValidationError as error:
        messages = [f"{label}: {table.model._meta.get_field(name).verbose_name if name != '__all__' else ''} "
                    f"\u2014 {' '.join(errors)}" for name, errors in error.message_dict.items()]
        raise ValidationError(messages) from None


def _rows_save(*, version: PiaVersion, actor, table: str, rows: list[dict]) -> dict:
    """The body of `rows_save`, on a version already locked and checked."""
    spec = _table(table)
    matrix = version.get_matrix()
    manager = spec.model.objects
    existing = {row.pk: row for row in manager.filter(version=version).select_for_update().order_by("pk")}
    seen: set[int] = set()
    prepared = []  # (instance, is_new, changed fields) in the new order
    removed = []
    errors: list[str] = []
    for index, entry in enumerate(rows, start=1):
        entry = dict(entry)
        pk = entry.pop("id", None)
        delete = bool(entry.pop("delete", False))
        label = f"{spec.noun.capitalize()} {index}"
        if pk is not None:
            if pk not in existing or pk in seen:
                raise ValidationError("The rows changed meanwhile: reload the page and try again.")
            seen.add(pk)
            instance = existing[pk]
        elif delete:
            continue
        elif not spec.can_add:
            raise ValidationError(f"Add risks in step three; step four gives each its {spec.noun}.")
        else:
            instance = spec.model(version=version)
        if delete:
            if not spec.can_add:
                raise ValidationError(f"Remove risks in step three, not their {spec.noun}s.")
            removed.append(instance)
            continue
        try:
            values = _row_values(version, spec, entry, matrix, label)
            before = {name: getattr(instance, name) for name in values}
            for name, value in values.items():
                setattr(instance, name, value)
            _validate_row(instance, spec, matrix, label)
        except ValidationError as error:
            errors.extend(error.messages)
            continue
        changed = sorted(name.removesuffix("_id") for name, value in values.items() if before[name] != value)
        prepared.append((instance, pk is None, changed))
    if errors:
        raise ValidationError(errors)
    if spec.can_add and set(existing) - seen:
        # Every row of the table is in the list (kept, changed or removed): otherwise someone else changed it.
        raise ValidationError("The rows changed meanwhile: reload the page and try again.")
    old_order = [pk for pk, _ in sorted(existing.items(), key=lambda item: (item[1].position, item[0]))]
    for instance in removed:
        row_id = instance.pk
        instance.delete()
        _audit(actor, "pia.row_removed", version, {"table": table, "row_id": row_id})
    for position, (instance, is_new, changed) in enumerate(prepared):
        moved = spec.can_add and instance.position != position
        if spec.can_add:
            instance.position = position
        if is_new or changed:
            instance.save()
            _audit(actor, "pia.row_saved", version, {
                "table": table, "row_id": instance.pk, "new": is_new, "changed": changed,
                **({"rating": instance.rating} if spec.model is PrivacyRisk else {}),
            })
        elif moved:
            instance.save(update_fields=["position"])
    new_order = [instance.pk for instance, is_new, _ in prepared if not is_new]
    if spec.can_add and new_order != [pk for pk in old_order if pk in set(new_order)]:
        _audit(actor, "pia.rows_reordered", version, {"table": table, "order": [i.pk for i, _, _ in prepared]})
    return {"saved": sum(1 for _, new, changed in prepared if new or changed), "removed": len(removed)}


def rows_save(*, version: PiaVersion, actor, table: str, rows: list[dict]) -> dict:
    """Save a whole table as its page shows it: `rows` in the new order, each `{"id": pk or None, "delete":
    bool, **fields}`. New rows have no id; every existing row must be listed (step four's solutions list only
    the risks they change). All or nothing; returns the counts saved and removed."""
    with transaction.atomic():
        version = _locked_version(version)
        _require_author(actor, version.pia)
        return _rows_save(version=version, actor=actor, table=table, rows=rows)


def row_save(*, version: PiaVersion, actor, table: str, row=None, values: dict):
    """Add one row at the end of a table, or change `row`."""
    with transaction.atomic():
        version = _locked_version(version)
        _require_author(actor, version.pia)
        spec = _table(table)
        order = list(spec.model.objects.filter(version=version).order_by("position", "pk").values_list("pk",
                                                                                                        flat=True))
        if row is not None and row.pk not in order:
            raise ValidationError("That row is not part of this version.")
        entries = [{"id": pk} for pk in order]
        if row is None:
            entries.append({"id": None, **values})
        else:
            entries[order.index(row.pk)].update(values)
        _rows_save(version=version, actor=actor, table=table, rows=entries)
        if row is None:
            return spec.model.objects.filter(version=version).order_by("-position", "-pk").first()
        return spec.model.objects.get(pk=row.pk)


def row_remove(*, version: PiaVersion, actor, table: str, row) -> None:
    with transaction.atomic():
        version = _locked_version(version)
        _require_author(actor, version.pia)
        spec = _table(table)
        order = list(spec.model.objects.filter(version=version).order_by("position", "pk").values_list("pk",
                                                                                                        flat=True))
        if row.pk not in order:
            raise ValidationError("That row is not part of this version.")
        _rows_save(version=version, actor=actor, table=table,
                   rows=[{"id": pk, "delete": pk == row.pk} for pk in order])


def rows_reorder(*, version: PiaVersion, actor, table: str, order: list[int]) -> None:
    """Put a table's rows in `order` (every row id of the table, once each)."""
    with transaction.atomic():
        version = _locked_version(version)
        _require_author(actor, version.pia)
        if len(set(order)) != len(order):
            raise ValidationError("The rows changed meanwhile: reload the page and try again.")
        _rows_save(version=version, actor=actor, table=table, rows=[{"id": pk} for pk in order])


# --- Progress -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepState:
    key: str
    number: str
    title: str
    complete: bool


def _filled(*values) -> bool:
    return all(str(value or "").strip() for value in values)


def steps_progress(version: PiaVersion) -> list[StepState]:
    """Which steps of the form have their answers (the progress indicator; the DPO still judges them)."""
    risks = list(version.risks.all())
    principles = version.principles or {}
    complete = {
        "screening": screening_complete(version.screening or {}),
        "need": _filled(version.aims, version.need_reason) and version.data_items.exists(),
        "flows": _filled(version.collection, version.use, version.deletion),
        "consultation": (_filled(version.internal_consultees) or _filled(version.external_consultees))
        and version.consultations.exists(),
        "risks": bool(risks),
        "solutions": bool(risks) and all(_filled(risk.solution, risk.result) for risk in risks),
        "signoff": version.status in READABLE_BY_ALL,
        "actions": version.actions.exists() and _filled(version.contact_point),
        "principles": all(_filled(principles.get(q.key)) for q in PRINCIPLE_QUESTIONS),
    }
    return [StepState(step.key, step.number, step.title, complete[step.key]) for step in STEPS]
