"""Changing the organisation's matrix (the seed's 3×3, or a 5×5 with the admin's own labels and bands), with the
explicit re-mapping of open drafts' scores.

Approved and superseded versions keep the matrix they were scored on (it is in their snapshot): they are
frozen. Draft and submitted risk assessment versions, and PIA versions the author can still edit (draft,
changes requested), are re-scored on the new matrix through a fixed table (`SCORE_MAPS`; the same size keeps
every score and only re-bands), shown first as a preview, so nothing is re-mapped silently. PIA versions in
sign-off (submitted, advised, decided) are frozen for their signers and keep their matrix; the preview says so.

The preview carries a fingerprint of everything it showed; confirming with a fingerprint that no longer
matches (a draft was added or re-scored in between) changes nothing and asks for a new look.
"""

import hashlib
import json
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from pia.models import PiaVersion, PrivacyRisk
from schools.audit import audit_log
from schools.models import Organisation, Role
from schools.scope import build_scope

from .matrix import SEED_3X3, Matrix
from .models import AssessmentVersion, Hazard, RiskMatrix, matrix_for

Status = AssessmentVersion.Status
OPEN_STATUSES = (Status.DRAFT, Status.SUBMITTED)
PIA_REMAPPED = PiaVersion.EDITABLE
PIA_KEPT = (PiaVersion.Status.SUBMITTED, PiaVersion.Status.ADVISED, PiaVersion.Status.DECIDED)

# Old score -> new score, per (old size, new size). 3×3 to 5×5 keeps the ends and puts the middle in the
# middle; 5×5 to 3×3 folds 1–2 to 1, 3 to 2, 4–5 to 3. The same size keeps every score.
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

    @property
    def band_changes(self) -> bool:
        return self.band != self.old_band or self.residual_band != self.old_residual_band


@dataclass(frozen=True)
class VersionPreview:
    version: AssessmentVersion
    old_matrix: Matrix
    rows: tuple[RowPreview, ...]


@dataclass(frozen=True)
class RiskPreview:
    """One PIA privacy risk (scored before its solution only)."""

    risk: PrivacyRisk
    likelihood: int
    severity: int
    rating: int
    band: str
    old_band: str

    @property
    def band_changes(self) -> bool:
        return self.band != self.old_band


@dataclass(frozen=True)
class PiaPreview:
    version: PiaVersion
    old_matrix: Matrix
    rows: tuple[RiskPreview, ...]


@dataclass(frozen=True)
class ChangePreview:
    """Everything confirming would change, and what it leaves as it is."""

    old: Matrix
    new: Matrix
    versions: list[VersionPreview]
    pias: list[PiaPreview]
    pias_kept: list[PiaVersion]  # in sign-off: they keep their matrix
    differences: list[str] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def mapping(self) -> list[tuple[int, int]] | None:
        """The score table when the size changes (None when it does not: scores are kept)."""
        return None if self.old.size == self.new.size else sorted(score_map(self.old.size, self.new.size).items())

    @property
    def band_changes(self) -> int:
        return (sum(row.band_changes for item in self.versions for row in item.rows)
                + sum(row.band_changes for item in self.pias for row in item.rows))

    @property
    def row_count(self) -> int:
        return sum(len(item.rows) for item in self.versions) + sum(len(item.rows) for item in self.pias)


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


def _remap_risk(risk: PrivacyRisk, old: Matrix, new: Matrix) -> RiskPreview:
    table = score_map(old.size, new.size)
    likelihood, severity = table[risk.likelihood], table[risk.severity]
    rating = new.rating(likelihood, severity)
    return RiskPreview(risk, likelihood, severity, rating, new.band(rating).label, old.band(risk.rating).label)


def open_versions(organisation: Organisation):
    return (
        AssessmentVersion.objects.filter(assessment__organisation=organisation, status__in=OPEN_STATUSES)
        .select_related("assessment__school")
        .prefetch_related("hazards")
        .order_by("assessment__school__name", "assessment__title", "number")
    )


def open_pia_versions(organisation: Organisation, statuses=PIA_REMAPPED):
    return (
        PiaVersion.objects.filter(pia__organisation=organisation, status__in=statuses)
        .select_related("pia__school")
        .prefetch_related("risks")
        .order_by("pia__school__name", "pia__title", "number")
    )


def differences(old: Matrix, new: Matrix) -> list[str]:
    """What changes, in words: the size, each relabelled level, each band added, removed or moved."""
    if old.size != new.size:
        found = [f"The size changes from {old.size}×{old.size} to {new.size}×{new.size}: every label and band is "
                 "the new matrix's, and scores are re-mapped through the table below."]
    else:
        found = []
        for axis, before, after in (("Likelihood", old.likelihood_labels, new.likelihood_labels),
                                    ("Severity", old.severity_labels, new.severity_labels)):
            found += [f"{axis} {level}: “{a}” becomes “{b}”."
                      for level, (a, b) in enumerate(zip(before, after, strict=True), start=1) if a != b]
    old_ranges = [f"{band.label} {low}–{high}" for band, low, high in old.band_ranges()]
    new_ranges = [f"{band.label} {low}–{high}" for band, low, high in new.band_ranges()]
    if old_ranges != new_ranges:
        found.append(f"Bands: {', '.join(old_ranges)} become {', '.join(new_ranges)}.")
    return found


def _fingerprint(old: Matrix, new: Matrix, versions, pias, kept) -> str:
    """A hash of what the preview showed: the matrices and every open row's scores as they were."""
    state = {
        "old": old.as_dict(), "new": new.as_dict(),
        "versions": [[v.version.pk, v.version.matrix, [[r.hazard.pk, r.hazard.likelihood, r.hazard.severity,
                                                        r.hazard.residual_likelihood, r.hazard.residual_severity]
                                                       for r in v.rows]] for v in versions],
        "pias": [[p.version.pk, p.version.matrix, [[r.risk.pk, r.risk.likelihood, r.risk.severity] for r in p.rows]]
                 for p in pias],
        "kept": sorted(v.pk for v in kept),
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def matrix_change_preview(*, organisation: Organisation, matrix: Matrix) -> ChangePreview:
    """How every open draft's rows (risk assessments and editable PIAs) would be re-scored and re-banded on
    `matrix` (changes nothing)."""
    old_current = matrix_for(organisation)
    versions = []
    for version in open_versions(organisation):
        old = version.get_matrix()
        versions.append(VersionPreview(version, old, tuple(_remap_row(h, old, matrix) for h in version.hazards.all())))
    pias = []
    for version in open_pia_versions(organisation):
        old = version.get_matrix()
        pias.append(PiaPreview(version, old, tuple(_remap_risk(r, old, matrix) for r in version.risks.all())))
    kept = list(PiaVersion.objects.filter(pia__organisation=organisation, status__in=PIA_KEPT)
                .select_related("pia__school").order_by("pia__title", "number"))
    return ChangePreview(old_current, matrix, versions, pias, kept, differences(old_current, matrix),
                         _fingerprint(old_current, matrix, versions, pias, kept))


def matrix_change(*, organisation: Organisation, matrix: Matrix, actor, fingerprint: str | None = None) -> Matrix:
    """The organisation admin chooses the seed's 3×3 or a 5×5 matrix of their own: saved, and every open risk
    assessment version's and editable PIA version's scores, ratings and matrix re-mapped through `SCORE_MAPS`
    (re-banded only, when the size stays). Approved versions, and PIAs in sign-off, keep theirs. With the
    preview's `fingerprint`, refuses when anything it showed has changed since."""
    if not isinstance(matrix, Matrix) or matrix.size not in (3, 5) or (matrix.size == 3 and matrix != SEED_3X3):
        raise ValidationError("Choose the seed's 3×3 matrix or a 5×5 one.")
    if Role.ORG_ADMIN not in build_scope(actor).roles_by_organisation.get(organisation.pk, frozenset()):
        raise PermissionDenied("Only the organisation admin can change the risk matrix.")
    with transaction.atomic():
        # Changes of one organisation's matrix queue here; hazard edits of its drafts wait on the version locks.
        old_current = matrix_for(Organisation.objects.select_for_update().get(pk=organisation.pk))
        if old_current == matrix:
            raise ValidationError("The organisation already uses this matrix: nothing to change.")
        version_ids = list(AssessmentVersion.objects.select_for_update()
                           .filter(assessment__organisation=organisation, status__in=OPEN_STATUSES)
                           .order_by("pk").values_list("pk", flat=True))
        list(Hazard.objects.select_for_update().filter(version_id__in=version_ids).order_by("pk").values_list("pk"))
        pia_ids = list(PiaVersion.objects.select_for_update()
                       .filter(pia__organisation=organisation, status__in=PIA_REMAPPED)
                       .order_by("pk").values_list("pk", flat=True))
        list(PrivacyRisk.objects.select_for_update().filter(version_id__in=pia_ids).order_by("pk").values_list("pk"))
        preview = matrix_change_preview(organisation=Organisation.objects.get(pk=organisation.pk), matrix=matrix)
        if fingerprint is not None and fingerprint != preview.fingerprint:
            raise ValidationError("The open drafts or the matrix changed since your preview: look at the new "
                                  "preview before you confirm.")

        changed_hazards = []
        for item in preview.versions:
            for row in item.rows:
                hazard = row.hazard
                hazard.likelihood, hazard.severity, hazard.rating = row.likelihood, row.severity, row.rating
                hazard.residual_likelihood, hazard.residual_severity = row.residual_likelihood, row.residual_severity
                hazard.residual_rating = row.residual_rating
                changed_hazards.append(hazard)
        Hazard.objects.bulk_update(changed_hazards, ["likelihood", "severity", "rating", "residual_likelihood",
                                                     "residual_severity", "residual_rating"])
        AssessmentVersion.objects.filter(pk__in=[item.version.pk for item in preview.versions]).update(
            matrix=matrix.as_dict())

        changed_risks = []
        for item in preview.pias:
            for row in item.rows:
                row.risk.likelihood, row.risk.severity, row.risk.rating = row.likelihood, row.severity, row.rating
                changed_risks.append(row.risk)
        # Only editable PIA versions are here: their rows accept the write (frozen ones would refuse it).
        PrivacyRisk.objects.bulk_update(changed_risks, ["likelihood", "severity", "rating"])
        PiaVersion.objects.filter(pk__in=[item.version.pk for item in preview.pias]).update(matrix=matrix.as_dict())

        RiskMatrix.objects.update_or_create(organisation=organisation, defaults={"definition": matrix.as_dict()})
        audit_log(actor=actor, action="risk.matrix_changed", obj=organisation, organisation=organisation,
                  data={"from": f"{old_current.size}x{old_current.size}", "to": f"{matrix.size}x{matrix.size}",
                        "bands_from": [band.label for band in old_current.bands],
                        "bands_to": [band.label for band in matrix.bands],
                        "labels_changed": old_current.size == matrix.size and (
                            old_current.likelihood_labels != matrix.likelihood_labels
                            or old_current.severity_labels != matrix.severity_labels),
                        "versions_remapped": [item.version.pk for item in preview.versions],
                        "hazards_remapped": len(changed_hazards),
                        "pia_versions_remapped": [item.version.pk for item in preview.pias],
                        "privacy_risks_remapped": len(changed_risks),
                        "pia_versions_kept": [version.pk for version in preview.pias_kept],
                        "rows_changing_band": preview.band_changes})
    return matrix
