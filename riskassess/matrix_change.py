"""Changing the organisation's matrix (3×3 seed ↔ 5×5), with the explicit re-mapping of open drafts' scores.

Approved and superseded versions keep the matrix they were scored on (it is in their snapshot): they are
frozen. Draft and submitted versions are re-scored on the new matrix through a fixed table, shown first
as a preview, so nothing is re-mapped silently.
"""

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from schools.audit import audit_log
from schools.models import Organisation, Role
from schools.scope import build_scope

from .matrix import SEED_3X3, STANDARD_5X5, Matrix
from .models import AssessmentVersion, Hazard, RiskMatrix, matrix_for

Status = AssessmentVersion.Status
OPEN_STATUSES = (Status.DRAFT, Status.SUBMITTED)
MATRICES: dict[int, Matrix] = {3: SEED_3X3, 5: STANDARD_5X5}

# Old score -> new score, per (old size, new size). 3×3 to 5×5 keeps the ends and puts the middle in the
# middle; 5×5 to 3×3 folds 1–2 to 1, 3 to 2, 4–5 to 3.
SCORE_MAPS: dict[tuple[int, int], dict[int, int]] = {
    (3, 5): {1: 1, 2: 3, 3: 5},
    (5, 3): {1: 1, 2: 1, 3: 2, 4: 3, 5: 3},
    (3, 3): {1: 1, 2: 2, 3: 3},
    (5, 5): {1: 1, 2: 2, 3: 3, 4: 4, 5: 5},
}


def score_map(old_size: int, new_size: int) -> dict[int, int]:
    try:
        return SCORE_MAPS[(old_size, new_size)]
    except KeyError:
        raise ValidationError(f"No mapping from a {old_size}×{old_size} to a {new_size}×{new_size} matrix.") from None


@dataclass(frozen=True)
class RowPreview:
    hazard: Hazard
    likelihood: int
    severity: int
    rating: int
    band: str
    residual_likelihood: int | None
    residual_severity: int | None
    residual_rating: int | None
    residual_band: str
    old_band: str
    old_residual_band: str


@dataclass(frozen=True)
class VersionPreview:
    version: AssessmentVersion
    old_matrix: Matrix
    rows: tuple[RowPreview, ...]


def _remap_row(hazard: Hazard, old: Matrix, new: Matrix) -> RowPreview:
    table = score_map(old.size, new.size)
    likelihood, severity = table[hazard.likelihood], table[hazard.severity]
    rating = new.rating(likelihood, severity)
    if hazard.residual_likelihood is not None and hazard.residual_severity is not None:
        r_likelihood, r_severity = table[hazard.residual_likelihood], table[hazard.residual_severity]
        r_rating = new.rating(r_likelihood, r_severity)
        r_band, old_r_band = new.band(r_rating).label, old.band(hazard.residual_rating).label
    else:
        r_likelihood = r_severity = r_rating = None
        r_band = old_r_band = ""
    return RowPreview(hazard, likelihood, severity, rating, new.band(rating).label, r_likelihood, r_severity,
                      r_rating, r_band, old.band(hazard.rating).label, old_r_band)


def open_versions(organisation: Organisation):
    return (
        AssessmentVersion.objects.filter(assessment__organisation=organisation, status__in=OPEN_STATUSES)
        .select_related("assessment__school")
        .prefetch_related("hazards")
        .order_by("assessment__school__name", "assessment__title", "number")
    )


def matrix_change_preview(*, organisation: Organisation, size: int) -> list[VersionPreview]:
    """How every open draft's rows would be re-scored on the new matrix (changes nothing)."""
    new = MATRICES[size]
    previews = []
    for version in open_versions(organisation):
        old = version.get_matrix()
        score_map(old.size, new.size)
        rows = tuple(_remap_row(hazard, old, new) for hazard in version.hazards.all())
        previews.append(VersionPreview(version, old, rows))
    return previews


def matrix_change(*, organisation: Organisation, size: int, actor) -> Matrix:
    """The organisation admin chooses the 3×3 or the 5×5 matrix: saved, and every draft or submitted
    version's scores, ratings and matrix re-mapped through `SCORE_MAPS`. Approved versions keep theirs."""
    if size not in MATRICES:
        raise ValidationError("Choose the 3×3 or the 5×5 matrix.")
    if Role.ORG_ADMIN not in build_scope(actor).roles_by_organisation.get(organisation.pk, frozenset()):
        raise PermissionDenied("Only the organisation admin can change the risk matrix.")
    new = MATRICES[size]
    with transaction.atomic():
        # Changes of one organisation's matrix queue here; hazard edits of its drafts wait on the version locks.
        Organisation.objects.select_for_update().get(pk=organisation.pk)
        old_current = matrix_for(Organisation.objects.get(pk=organisation.pk))
        if old_current == new:
            raise ValidationError(f"The organisation already uses the {size}×{size} matrix.")
        versions = list(
            AssessmentVersion.objects.select_for_update()
            .filter(assessment__organisation=organisation, status__in=OPEN_STATUSES)
            .order_by("pk")
        )
        changed_hazards = []
        for version in versions:
            old = version.get_matrix()
            for hazard in Hazard.objects.select_for_update().filter(version=version).order_by("pk"):
                row = _remap_row(hazard, old, new)
                hazard.likelihood, hazard.severity, hazard.rating = row.likelihood, row.severity, row.rating
                hazard.residual_likelihood, hazard.residual_severity = row.residual_likelihood, row.residual_severity
                hazard.residual_rating = row.residual_rating
                changed_hazards.append(hazard)
            version.matrix = new.as_dict()
        Hazard.objects.bulk_update(changed_hazards, ["likelihood", "severity", "rating", "residual_likelihood",
                                                     "residual_severity", "residual_rating"])
        AssessmentVersion.objects.bulk_update(versions, ["matrix"])
        RiskMatrix.objects.update_or_create(organisation=organisation, defaults={"definition": new.as_dict()})
        audit_log(actor=actor, action="risk.matrix_changed", obj=organisation, organisation=organisation,
                  data={"from": f"{old_current.size}x{old_current.size}", "to": f"{size}x{size}",
                        "versions_remapped": [v.pk for v in versions], "hazards_remapped": len(changed_hazards)})
    return new
