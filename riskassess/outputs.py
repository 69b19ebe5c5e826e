"""The risk register's outputs: a version's PDF (stored once when approved), the register's CSV, heat maps.

An approved (or later superseded) version's PDF is rendered from its snapshot once, stored in
`AssessmentVersion.pdf` with its SHA-256 and then always served as stored, so the document someone filed
is the document anyone downloads later. A draft or submitted version renders live with a DRAFT watermark
and is never stored.

The CSV has one line per hazard of each assessment's current approved version (from its snapshot, as
approved) and, when one is open, of its draft or submitted version, marked as such in the "Version status"
column, so the register shows both what is in force and what is being changed.
"""

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from lib.csvsafe import csv_safe_row
from lib.pdf import render_pdf
from schools.audit import audit_log

from .matrix import Matrix
from .models import Assessment, AssessmentVersion, Hazard, matrix_for
from .services import snapshot_of

Status = AssessmentVersion.Status
PDF_TEMPLATE = "riskassess/pdf/version.html"
OPEN_STATUSES = (Status.DRAFT, Status.SUBMITTED)


# --- The PDF -------------------------------------------------------------------------------------------


def _live_data(version: AssessmentVersion) -> dict:
    """A draft's content in the snapshot's shape, so one template prints both."""
    return snapshot_of(version)


def _band_key(matrix: Matrix, rating: int | None) -> str:
    return matrix.band(rating).key if rating else ""


def _long_date(iso: str) -> str:
    return f"{date.fromisoformat(iso):%-d %B %Y}"


def version_document(version: AssessmentVersion) -> dict:
    """What the PDF prints: the snapshot of a frozen version, the live rows of a draft."""
    data = version.snapshot if version.is_frozen and version.snapshot else _live_data(version)
    matrix = Matrix.from_dict(data["matrix"])
    rows = [{**row, "band_key": _band_key(matrix, row["rating"]),
             "action_due_display": _long_date(row["action_due_on"]) if row.get("action_due_on") else "",
             "residual_band_key": _band_key(matrix, row.get("residual_rating"))} for row in data["hazards"]]
    lower = 0
    bands = []
    for band in matrix.bands:
        bands.append({"key": band.key, "label": band.label, "low": lower + 1, "high": band.upper})
        lower = band.upper
    approved_at = ""
    if data.get("approved_at"):
        assessment = version.assessment
        tz = assessment.school.tz if assessment.school else ZoneInfo(assessment.organisation.time_zone)
        moment = datetime.fromisoformat(data["approved_at"]).astimezone(tz)
        approved_at = f"{moment:%-d %B %Y, %H:%M %Z}"
    return {
        **data, "hazards": rows, "bands": bands, "approved_at_display": approved_at,
        "assessed_on_display": _long_date(data["assessed_on"]),
        "review_on_display": _long_date(data["review_on"]) if data["review_on"] else "Not set",
        "likelihood_labels": list(enumerate(matrix.likelihood_labels, start=1)),
        "severity_labels": list(enumerate(matrix.severity_labels, start=1)),
    }


def version_pdf_render(version: AssessmentVersion) -> bytes:
    draft = not version.is_frozen
    return render_pdf(PDF_TEMPLATE, {
        "doc": version_document(version), "version": version, "draft": draft, "orientation": "landscape",
        "status_label": version.get_status_display(), "sha256": version.sha256,
    })


def version_pdf_store(*, version: AssessmentVersion, actor) -> AssessmentVersion:
    """Render a frozen version's PDF from its snapshot and keep it, once: two requests at the same moment
    queue on the row lock and the second finds the stored file."""
    with transaction.atomic():
        version = AssessmentVersion.objects.select_for_update(of=("self",)).select_related(
            "assessment__school", "assessment__organisation").get(pk=version.pk)
        if not version.is_frozen:
            raise ValueError("Only an approved version's PDF is stored; a draft renders live.")
        if version.pdf:
            return version
        content = version_pdf_render(version)
        version.pdf_sha256 = hashlib.sha256(content).hexdigest()
        version.pdf.save(f"risk-assessment-{version.assessment_id}-v{version.number}.pdf", ContentFile(content),
                         save=False)
        version.save(update_fields=["pdf", "pdf_sha256"])
        assessment = version.assessment
        audit_log(actor=actor, action="risk.pdf_stored", obj=assessment, school=assessment.school,
                  organisation=assessment.organisation,
                  data={"version": version.number, "pdf_sha256": version.pdf_sha256, "bytes": len(content)})
    return version


def stored_pdf_bytes(version: AssessmentVersion) -> bytes:
    """The stored PDF as filed; refuses a file that no longer matches its recorded hash."""
    with version.pdf.open("rb") as handle:
        content = handle.read()
    if hashlib.sha256(content).hexdigest() != version.pdf_sha256:
        raise ValueError(f"The stored PDF of version {version.pk} does not match its SHA-256.")
    return content


# --- The CSV -------------------------------------------------------------------------------------------

CSV_HEADER = (
    "Organisation", "School", "Assessment", "Version", "Version status", "Assessor", "Date of assessment",
    "Review date", "Approved by", "Approved at", "Row", "Location or activity element", "Potential hazard",
    "Who is affected", "Likelihood", "Severity", "Rating", "Band", "Action taken to reduce or control the risk",
    "Residual likelihood", "Residual severity", "Residual rating", "Residual band", "Further action required",
    "Action owner", "Action due", "Initials",
)


def register_versions(assessments: QuerySet) -> list[AssessmentVersion]:
    """The current approved version and the open draft (if any) of each assessment, in one query."""
    return list(
        AssessmentVersion.objects.filter(assessment__in=assessments, status__in=(Status.APPROVED, *OPEN_STATUSES))
        .select_related("assessment__school", "assessment__organisation")
        .order_by("assessment__school__name", "assessment__title", "assessment_id", "number")
    )


def register_rows(versions: Iterable[AssessmentVersion]) -> Iterator[list]:
    """One list of cells per hazard; approved versions from their snapshot, drafts from their rows (one query
    for all the drafts' rows)."""
    versions = list(versions)
    open_ids = [v.pk for v in versions if not v.is_frozen]
    live: dict[int, list[Hazard]] = {}
    for hazard in Hazard.objects.filter(version_id__in=open_ids).select_related("action_owner").order_by(
            "version_id", "position", "id"):
        live.setdefault(hazard.version_id, []).append(hazard)
    for version in versions:
        assessment = version.assessment
        if version.is_frozen and version.snapshot:
            data = version.snapshot
            hazards = data["hazards"]
            approved_by, approved_at = data["approved_by"], data["approved_at"]
        else:
            matrix = version.get_matrix()
            hazards = [{
                "activity_element": h.activity_element, "hazard": h.hazard, "who_affected": h.who_affected,
                "likelihood": h.likelihood, "severity": h.severity, "rating": h.rating,
                "band": matrix.band(h.rating).label, "controls": h.controls,
                "residual_likelihood": h.residual_likelihood, "residual_severity": h.residual_severity,
                "residual_rating": h.residual_rating,
                "residual_band": matrix.band(h.residual_rating).label if h.residual_rating else "",
                "further_action": h.further_action,
                "action_owner": h.action_owner.get_full_name() if h.action_owner else "",
                "action_due_on": h.action_due_on.isoformat() if h.action_due_on else "", "initials": h.initials,
            } for h in live.get(version.pk, [])]
            approved_by, approved_at = "", ""
        for index, row in enumerate(hazards, start=1):
            yield csv_safe_row([
                assessment.organisation.name, assessment.school.name if assessment.school else "Organisation-wide",
                assessment.title, version.number, version.get_status_display(), version.assessor_name,
                version.assessed_on.isoformat(), version.review_on.isoformat() if version.review_on else "",
                approved_by, approved_at, index, row["activity_element"], row["hazard"], row["who_affected"],
                row["likelihood"], row["severity"], row["rating"], row["band"], row["controls"],
                row["residual_likelihood"] or "", row["residual_severity"] or "", row["residual_rating"] or "",
                row["residual_band"], row["further_action"], row["action_owner"], row["action_due_on"],
                row["initials"],
            ])


def register_csv(*, assessments: QuerySet, actor, school=None, organisation=None) -> str:
    """The register as CSV text, every cell made safe for spreadsheets; audited with counts only."""
    versions = register_versions(assessments)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    count = 0
    for cells in register_rows(versions):
        writer.writerow(cells)
        count += 1
    target = school or organisation
    audit_log(actor=actor, action="risk.exported", obj=target, school=school,
              organisation=organisation or (school.organisation if school else None),
              data={"format": "csv", "scope": "school" if school else "organisation",
                    "assessments": len({v.assessment_id for v in versions}),
                    "versions": len(versions), "rows": count})
    return buffer.getvalue()


# --- The heat map --------------------------------------------------------------------------------------

KINDS = {"inherent": "Before controls (inherent risk)", "residual": "After controls (residual risk)"}


@dataclass(frozen=True)
class Cell:
    likelihood: int
    severity: int
    rating: int
    band_key: str
    band_label: str
    count: int


@dataclass(frozen=True)
class Grid:
    kind: str
    title: str
    rows: list  # [(likelihood, label, [Cell, ...]), ...] highest likelihood first
    total: int
    unscored: int  # hazards without residual scores (residual grid only)


def _counts(hazards: QuerySet, kind: str) -> dict[tuple[int, int], int]:
    fields = ("likelihood", "severity") if kind == "inherent" else ("residual_likelihood", "residual_severity")
    found = hazards.filter(**{f"{fields[0]}__isnull": False}).values_list(*fields).annotate(n=Count("pk"))
    return {(likelihood, severity): n for likelihood, severity, n in found}


def heat_grids(hazards: QuerySet, matrix: Matrix) -> list[Grid]:
    """Two grids (inherent, residual), each a constant number of queries whatever the number of hazards.
    Hazards scored on another size of matrix fall outside the grid and are left out."""
    total = hazards.count()
    grids = []
    for kind, title in KINDS.items():
        counts = _counts(hazards, kind)
        rows = []
        for likelihood in reversed(matrix.levels):
            cells = []
            for severity in matrix.levels:
                rating = matrix.rating(likelihood, severity)
                band = matrix.band(rating)
                cells.append(Cell(likelihood, severity, rating, band.key, band.label,
                                  counts.get((likelihood, severity), 0)))
            rows.append((likelihood, matrix.likelihood_label(likelihood), cells))
        shown = sum(counts.get((lk, sv), 0) for lk in matrix.levels for sv in matrix.levels)
        grids.append(Grid(kind, title, rows, shown, total - shown if kind == "residual" else 0))
    return grids


def cell_hazards(hazards: QuerySet, *, kind: str, likelihood: int, severity: int) -> QuerySet:
    if kind == "residual":
        lookup = {"residual_likelihood": likelihood, "residual_severity": severity}
    else:
        lookup = {"likelihood": likelihood, "severity": severity}
    return hazards.filter(**lookup).select_related("version__assessment__school").order_by(
        "version__assessment__title", "position", "id")


def school_current_hazards(school, matrix: Matrix) -> tuple[QuerySet, int, int]:
    """Hazards of every current approved version that applies to the school (its own assessments and the
    organisation-wide ones) and was scored on `matrix` (the organisation's current one), how many such
    versions there are, and how many approved versions are left out because they keep another matrix."""
    approved = AssessmentVersion.objects.filter(status=Status.APPROVED).filter(
        Q(assessment__school=school)
        | Q(assessment__school__isnull=True, assessment__organisation=school.organisation_id)
    )
    same, other = [], 0
    for pk, definition in approved.values_list("pk", "matrix"):
        if Matrix.from_dict(definition) == matrix:
            same.append(pk)
        else:
            other += 1
    return Hazard.objects.filter(version_id__in=same), len(same), other


@dataclass(frozen=True)
class HeatGroup:
    """Current approved versions scored on one matrix: their hazards are counted on that matrix's grid only."""

    key: str  # a short id of the matrix, for the links of its cells
    matrix: Matrix
    current: bool  # the organisation's current matrix
    version_ids: tuple[int, ...]

    @property
    def hazards(self) -> QuerySet:
        return Hazard.objects.filter(version_id__in=self.version_ids)


def matrix_key(matrix: Matrix) -> str:
    return hashlib.sha256(json.dumps(matrix.as_dict(), sort_keys=True).encode()).hexdigest()[:12]


def heat_groups(versions: QuerySet, current: Matrix) -> list[HeatGroup]:
    """The versions grouped by the matrix they were scored on: the current matrix first, then earlier ones
    (most versions first). Scores on different matrices are never added up in one grid."""
    found: dict[str, tuple[Matrix, list[int]]] = {}
    for pk, definition in versions.order_by("pk").values_list("pk", "matrix"):
        matrix = Matrix.from_dict(definition)
        found.setdefault(matrix_key(matrix), (matrix, []))[1].append(pk)
    groups = [HeatGroup(key, matrix, matrix == current, tuple(ids)) for key, (matrix, ids) in found.items()]
    return sorted(groups, key=lambda group: (not group.current, -len(group.version_ids), group.key))


def organisation_current_versions(organisation) -> QuerySet:
    """The current approved version of every assessment of the organisation: its schools' and its own."""
    return AssessmentVersion.objects.filter(status=Status.APPROVED, assessment__organisation=organisation)


def school_matrix(school) -> Matrix:
    return matrix_for(school.organisation)


def assessments_of_school(school) -> QuerySet:
    return Assessment.objects.filter(
        Q(school=school) | Q(school__isnull=True, organisation_id=school.organisation_id))


def now_for_filename(tz) -> str:
    return timezone.now().astimezone(tz).date().isoformat()
