"""A PIA version as plain data: what each decision's SHA-256 covers, what the PDF prints, what "compare" and
"changed since you last saw it" diff.

The number of children affected is counted from the registry (current pupils of the schools the PIA
covers) when the snapshot is taken, so a signed PIA keeps the figure its signatories saw.
"""

from dataclasses import dataclass

from django.db.models import Count, Q

from schools.models import School

from .models import PiaVersion
from .questions import PRINCIPLE_QUESTIONS, SCREENING, STEPS, screening_recommends_pia

# Snapshot keys per step, in the form's order (for comparing and for the DPO's "what changed").
STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "screening": ("screening",),
    "need": ("aims", "benefits_organisation", "benefits_individuals", "benefits_others", "related_documents",
             "need_reason", "data_items"),
    "flows": ("collection", "use", "deletion", "number_affected", "flow_description"),
    "consultation": ("risks_identified", "risks_addressed", "internal_consultees", "external_consultees",
                     "consultation_method", "consultations"),
    "risks": ("risks",),
    "solutions": ("risks",),
    "signoff": ("decisions",),
    "actions": ("actions", "contact_point"),
    "principles": ("principles",),
}
TEXT_FIELDS = (
    "division", "lead_officer", "aims", "benefits_organisation", "benefits_individuals", "benefits_others",
    "related_documents", "need_reason", "collection", "use", "deletion", "flow_description", "risks_identified",
    "risks_addressed", "internal_consultees", "external_consultees", "consultation_method", "contact_point",
)


@dataclass(frozen=True)
class Affected:
    total: int
    by_school: tuple[tuple[str, int], ...]

    def __str__(self) -> str:
        if len(self.by_school) <= 1:
            return f"{self.total} children"
        parts = "; ".join(f"{count} at {name}" for name, count in self.by_school)
        return f"{self.total} children ({parts})"


def schools_covered(version: PiaVersion):
    pia = version.pia
    if pia.school_id:
        return School.objects.filter(pk=pia.school_id)
    return School.objects.filter(organisation_id=pia.organisation_id)


def number_affected(version: PiaVersion) -> Affected:
    """Current pupils (not left, not archived) of the schools the PIA covers, per school."""
    current = Q(pupils__left_on__isnull=True, pupils__archived_at__isnull=True)
    rows = (
        schools_covered(version).annotate(n=Count("pupils", filter=current)).order_by("name").values_list("name", "n")
    )
    by_school = tuple((name, n) for name, n in rows)
    return Affected(sum(n for _, n in by_school), by_school)


def _date(value) -> str:
    return value.isoformat() if value else ""


def snapshot_of(version: PiaVersion) -> dict:
    """Everything the version says, with the decisions made on it so far."""
    pia = version.pia
    matrix = version.get_matrix()
    affected = number_affected(version)
    data = {
        "pia": {"id": pia.pk, "title": pia.title, "organisation": pia.organisation.name,
                "school": pia.school.name if pia.school_id else ""},
        "version": version.number,
        "review_on": _date(version.review_on),
        "screening": {q.key: {"question": q.text, "answer": (version.screening.get(q.key) or {}).get("answer", ""),
                              "note": (version.screening.get(q.key) or {}).get("note", "")} for q in SCREENING},
        "screening_recommends_pia": screening_recommends_pia(version.screening),
        "number_affected": {"total": affected.total, "by_school": [list(pair) for pair in affected.by_school],
                            "text": str(affected)},
        "data_items": [
            {"data_type": item.data_type, "examples": item.examples, "platform_uses": item.platform_uses}
            for item in version.data_items.order_by("position", "id")
        ],
        "consultations": [
            {"kind": c.kind, "held_on": _date(c.held_on), "description": c.description}
            for c in version.consultations.order_by("held_on", "position", "id")
        ],
        "risks": [
            {"privacy_issue": r.privacy_issue, "risk_to_individuals": r.risk_to_individuals,
             "compliance_risk": r.compliance_risk, "organisational_risk": r.organisational_risk,
             "likelihood": r.likelihood, "severity": r.severity, "rating": r.rating,
             "band": matrix.band(r.rating).label, "solution": r.solution, "result": r.result,
             "evaluation": r.evaluation}
            for r in version.risks.order_by("position", "id")
        ],
        "actions": [
            {"action": a.action, "due_on": _date(a.due_on), "due_note": a.due_note,
             "responsibility": a.responsibility}
            for a in version.actions.order_by("position", "id")
        ],
        "principles": {q.key: {"question": q.text, "answer": version.principles.get(q.key, "")}
                       for q in PRINCIPLE_QUESTIONS},
        "matrix": version.matrix,
        "decisions": [
            {"kind": d.kind, "name": d.name, "role": d.role, "comments": d.comments,
             "step_comments": d.step_comments, "decided_at": d.decided_at.isoformat(), "sha256": d.sha256}
            for d in version.decisions.order_by("decided_at", "id")
        ],
    }
    data.update({name: getattr(version, name) for name in TEXT_FIELDS})
    return data


def content_of(snapshot: dict) -> dict:
    """The snapshot without the decisions: what a decision is made on (and what its hash covers)."""
    return {key: value for key, value in snapshot.items() if key != "decisions"}


def steps_changed(old: dict | None, new: dict) -> list[str]:
    """The keys of the steps whose content differs between two snapshots (all of them if there is no old)."""
    if old is None:
        return [step.key for step in STEPS]
    return [step.key for step in STEPS
            if any(old.get(name) != new.get(name) for name in STEP_FIELDS[step.key] if name != "decisions")]
