"""The risk register's workflows: each a keyword-only function, one transaction, one audit entry.

Scores are checked against the version's matrix and ratings computed here: a rating is never typed.
A version is edited while it is a draft (or submitted); approving it freezes a snapshot of the whole
assessment with its SHA-256 and supersedes the approved version before it; editing after that starts the
next draft (`version_revise`), so an approved version never changes.
"""

from dataclasses import dataclass, field
from datetime import date

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from schools.audit import audit_log
from schools.models import Organisation, Role, School
from schools.scope import build_scope

from . import seed_template
from .matrix import Matrix
from .models import Assessment, AssessmentVersion, Hazard, ReviewFlag, matrix_for

Status = AssessmentVersion.Status

# Who writes and who approves: the headteacher of the school; for an organisation-wide assessment, the
# organisation admin or a headteacher of every school of the organisation (an executive headteacher), never the
# headteacher of one school among several (who reads it). Teachers and the office read; the DPO reads across
# the organisation.
EDIT_ROLES = frozenset({Role.HEADTEACHER, Role.ORG_ADMIN})
APPROVE_ROLES = frozenset({Role.HEADTEACHER, Role.ORG_ADMIN})

HAZARD_FIELDS = (
    "activity_element", "hazard", "who_affected", "likelihood", "severity", "controls", "residual_likelihood",
    "residual_severity", "further_action", "action_owner", "action_due_on", "action_done_on", "initials",
)


def _roles(actor, assessment: Assessment) -> frozenset[str]:
    """The roles `actor` may act with on `assessment` (to edit, approve, mark done), not only read it."""
    return acting_roles(build_scope(actor), assessment)


def acting_roles(scope, assessment: Assessment) -> frozenset[str]:
    """A school's assessment: the roles held at that school. An organisation-wide one: the organisation-wide
    roles and a school role held at every school of the organisation (`roles_for_whole_organisation`)."""
    if assessment.school_id:
        return scope.roles_at_school(assessment.school_id)
    return scope.roles_for_whole_organisation(assessment.organisation_id)


def _require(actor, assessment: Assessment, roles: frozenset[str], what: str) -> None:
    if not _roles(actor, assessment) & roles:
        if assessment.school_id:
            raise PermissionDenied(f"Only the headteacher or the organisation admin can {what}.")
        raise PermissionDenied(f"Only the organisation admin, or a headteacher of every school of the organisation, "
                               f"can {what} that covers the whole organisation.")


# A review date further ahead than this keeps the gate green for ever: refused.
MAX_REVIEW_YEARS = 5
# "New from template" without a review date or interval: reviewed a year after approval, as the form proposes.
DEFAULT_REVIEW_INTERVAL_MONTHS = 12


def check_review_on(review_on: date | None, today: date | None = None) -> None:
    """Refuse a review date more than MAX_REVIEW_YEARS ahead of `today`."""
    today = today or timezone.localdate()
    if review_on and review_on > _add_months(today, 12 * MAX_REVIEW_YEARS):
        raise ValidationError({"review_on": f"Choose a review date at most {MAX_REVIEW_YEARS} years ahead."})


def _require_review(version: "AssessmentVersion", what: str) -> None:
    if not version.review_on and not version.review_interval_months:
        raise ValidationError(f"Give a review date or a review interval (on the version's details) before {what}.")
    check_review_on(version.review_on)


def _scale(score: int, matrix: Matrix) -> int:
    """A score from the seed's 3×3 form, placed on the organisation's matrix (2 of 3 is 3 of 5)."""
    return round((score - 1) * (matrix.size - 1) / 2) + 1


# --- Creating ----------------------------------------------------------------------------------------


def assessment_create_from_template(
    *, school: School | None, organisation=None, actor, assessor_name: str, assessed_on: date,
    review_on: date | None = None, review_interval_months: int | None = None,
) -> Assessment:
    """"New from template": the seed's video-lessons assessment, its six hazard rows and their controls,
    as version 1, a draft the school then edits. Without a review date or interval, reviewed 12 months after
    approval."""
    organisation = school.organisation if school else organisation
    if review_on and review_interval_months:
        raise ValidationError("Give a review date or a review interval, not both.")
    check_review_on(review_on)
    if not review_on and not review_interval_months:
        review_interval_months = DEFAULT_REVIEW_INTERVAL_MONTHS
    with transaction.atomic():
        assessment = Assessment(organisation=organisation, school=school, title=seed_template.TITLE,
                                topic=Assessment.Topic.VIDEO_LESSONS, created_by=actor)
        _require(actor, assessment, EDIT_ROLES, "start a risk assessment")
        assessment.save()
        # The organisation's row locked, as `matrix_change` locks it, so a matrix change never misses this draft.
        matrix = matrix_for(Organisation.objects.select_for_update().get(pk=organisation.pk))
        version = AssessmentVersion.objects.create(
            assessment=assessment, number=1, assessor_name=assessor_name, assessed_on=assessed_on,
            review_on=review_on, review_interval_months=review_interval_months, matrix=matrix.as_dict(),
        )
        Hazard.objects.bulk_create([
            Hazard(version=version, position=index, **_scored(matrix, {
                **row, "likelihood": _scale(row["likelihood"], matrix), "severity": _scale(row["severity"], matrix),
            }))
            for index, row in enumerate(seed_template.HAZARDS)
        ])
        audit_log(actor=actor, action="risk.assessment_created", obj=assessment, school=school,
                  organisation=organisation, data={"from": "template", "version": 1,
                                                   "hazards": len(seed_template.HAZARDS)})
    return assessment


def _scored(matrix: Matrix, values: dict) -> dict:
    """The row's values with its ratings computed from its scores; any rating passed in is ignored."""
    values = {key: value for key, value in values.items() if key not in ("rating", "residual_rating")}
    errors = {}
    for name in ("likelihood", "severity"):
        try:
            matrix.check(values.get(name))
        except ValueError as error:
            errors[name] = str(error)
    residual = (values.get("residual_likelihood"), values.get("residual_severity"))
    if (residual[0] is None) != (residual[1] is None):
        errors["residual_severity"] = "Give both residual scores, or neither."
    for name, score in zip(("residual_likelihood", "residual_severity"), residual, strict=True):
        if score is not None:
            try:
                matrix.check(score)
            except ValueError as error:
                errors[name] = str(error)
    if errors:
        raise ValidationError(errors)
    values["rating"] = matrix.rating(values["likelihood"], values["severity"])
    values["residual_rating"] = matrix.rating(*residual) if residual[0] is not None else None
    return values


# --- Editing a draft -----------------------------------------------------------------------------------


def _open_version(version: AssessmentVersion) -> AssessmentVersion:
    version = AssessmentVersion.objects.select_for_update(of=("self",)).select_related("assessment").get(pk=version.pk)
    if version.is_frozen:
        raise ValidationError("This version is approved and never changes: start a new version to edit.")
    return version


def hazard_save(*, version: AssessmentVersion, actor, row: Hazard | None = None, **values) -> Hazard:
    """Add a row to a draft, or change `row`. Ratings are computed from the scores on the version's matrix;
    `values` are the row's fields (`hazard` is the potential hazard's text)."""
    unknown = set(values) - set(HAZARD_FIELDS) - {"rating", "residual_rating", "position"}
    if unknown:
        raise TypeError(f"Unknown hazard fields: {sorted(unknown)}")
    with transaction.atomic():
        version = _open_version(version)
        _require(actor, version.assessment, EDIT_ROLES, "edit a risk assessment")
        if row is None:
            hazard = Hazard(version=version)
            current = {}
            last = version.hazards.aggregate(last=Max("position"))["last"]
            values.setdefault("position", 0 if last is None else last + 1)
        else:
            hazard = Hazard.objects.select_for_update().get(pk=row.pk, version=version)
            current = {name: getattr(hazard, name) for name in HAZARD_FIELDS}
        scored = _scored(version.get_matrix(), {**current, **values})
        for name, value in scored.items():
            setattr(hazard, name, value)
        hazard.full_clean(exclude=["version"])
        hazard.save()
        audit_log(actor=actor, action="risk.hazard_saved", obj=version.assessment, school=version.assessment.school,
                  organisation=version.assessment.organisation,
                  data={"version": version.number, "hazard_id": hazard.pk, "rating": hazard.rating,
                        "residual_rating": hazard.residual_rating, "changed": sorted(values)})
    return hazard


def hazard_remove(*, hazard: Hazard, actor) -> None:
    with transaction.atomic():
        version = _open_version(hazard.version)
        _require(actor, version.assessment, EDIT_ROLES, "edit a risk assessment")
        Hazard.objects.filter(pk=hazard.pk, version=version).delete()
        audit_log(actor=actor, action="risk.hazard_removed", obj=version.assessment,
                  school=version.assessment.school, organisation=version.assessment.organisation,
                  data={"version": version.number, "hazard_id": hazard.pk})


# --- Approval and versions -----------------------------------------------------------------------------


def snapshot_of(version: AssessmentVersion) -> dict:
    """Everything the version says, as plain data: for an approved version, what its SHA-256 covers; for
    any version, what its PDF prints."""
    assessment = version.assessment
    matrix = version.get_matrix()
    rows = []
    for hazard in version.hazards.select_related("action_owner").order_by("position", "id"):
        rows.append({
            "position": hazard.position,
            "row_key": str(hazard.row_key),
            "activity_element": hazard.activity_element,
            "hazard": hazard.hazard,
            "who_affected": hazard.who_affected,
            "likelihood": hazard.likelihood,
            "severity": hazard.severity,
            "rating": hazard.rating,
            "band": matrix.band(hazard.rating).label,
            "controls": hazard.controls,
            "residual_likelihood": hazard.residual_likelihood,
            "residual_severity": hazard.residual_severity,
            "residual_rating": hazard.residual_rating,
            "residual_band": matrix.band(hazard.residual_rating).label if hazard.residual_rating else "",
            "further_action": hazard.further_action,
            "action_owner": hazard.action_owner.get_full_name() if hazard.action_owner else "",
            "action_due_on": hazard.action_due_on.isoformat() if hazard.action_due_on else "",
            "initials": hazard.initials,
        })
    return {
        "assessment": {"id": assessment.pk, "title": assessment.title, "topic": assessment.topic,
                       "school": assessment.school.name if assessment.school else "",
                       "organisation": assessment.organisation.name},
        "version": version.number,
        "assessor": version.assessor_name,
        "assessed_on": version.assessed_on.isoformat(),
        "review_on": version.review_on.isoformat() if version.review_on else "",
        "matrix": version.matrix,
        "hazards": rows,
        # Empty for a version not approved (yet): a draft's PDF prints from the same shape.
        "approved_by": (version.approved_by.get_full_name() or version.approved_by.get_username())
        if version.approved_by else "",
        "approved_at": version.approved_at.isoformat() if version.approved_at else "",
    }


def version_submit(*, version: AssessmentVersion, actor) -> AssessmentVersion:
    with transaction.atomic():
        version = _open_version(version)
        _require(actor, version.assessment, EDIT_ROLES, "submit a risk assessment")
        if version.status != Status.DRAFT:
            raise ValidationError("This version has already been submitted.")
        if not version.hazards.exists():
            raise ValidationError("Add at least one hazard before submitting.")
        _require_review(version, "submitting")
        version.status, version.submitted_at, version.submitted_by = Status.SUBMITTED, timezone.now(), actor
        version.save(update_fields=["status", "submitted_at", "submitted_by"])
        audit_log(actor=actor, action="risk.submitted", obj=version.assessment, school=version.assessment.school,
                  organisation=version.assessment.organisation, data={"version": version.number})
    return version


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return day.replace(year=year, month=month, day=min(day.day, last))
        except ValueError:
            continue
    raise ValueError(day)


def approval_fingerprint(version: AssessmentVersion) -> str:
    """The SHA-256 of what the approver reads on the approve page (`snapshot_of`, and the review interval,
    which decides the review date at approval). The page carries it; approval refuses when it no longer
    matches, so what is approved is what was read."""
    return AssessmentVersion.hash_of({**snapshot_of(version), "review_interval_months": version.review_interval_months})


def version_approve(*, version: AssessmentVersion, actor, seen: str | None = None) -> AssessmentVersion:
    """The headteacher approves (the view asks them to confirm it's them first): the version is frozen
    with its snapshot and SHA-256, and the version approved before it is superseded. `seen` is the
    `approval_fingerprint` of the version as the approver read it (the approve page always passes it):
    when the version changed since, nothing is approved."""
    with transaction.atomic():
        version = _open_version(version)
        assessment = version.assessment
        _require(actor, assessment, APPROVE_ROLES, "approve a risk assessment")
        if version.status != Status.SUBMITTED:
            raise ValidationError("Submit the version before approving it.")
        if seen is not None and seen != approval_fingerprint(version):
            raise ValidationError("The assessment changed since you opened this page: read it again.")
        _require_review(version, "approving")
        # Approvals of one assessment queue here, so two approvers never leave two versions approved.
        Assessment.objects.select_for_update().get(pk=assessment.pk)
        previous = assessment.versions.filter(status=Status.APPROVED).first()
        if previous is not None:
            previous.status = Status.SUPERSEDED
            previous.save(update_fields=["status"])
        now = timezone.now()
        if version.review_interval_months and not version.review_on:
            # Counted from the school's today (the organisation's for an organisation-wide assessment).
            from .reminders import assessment_today

            version.review_on = _add_months(assessment_today(assessment, now), version.review_interval_months)
        version.status, version.approved_at, version.approved_by = Status.APPROVED, now, actor
        version.snapshot = snapshot_of(version)
        version.sha256 = AssessmentVersion.hash_of(version.snapshot)
        version.save(update_fields=["status", "approved_at", "approved_by", "snapshot", "sha256", "review_on"])
        cleared = _flags_clear(assessment=assessment, flags=_open_flags(assessment), actor=actor,
                               outcome=ReviewFlag.Outcome.REVISED,
                               note=f"Risk assessment revised: version {version.number} approved.", now=now)
        # A flag kept only on the assessment (from before flags were kept per school) is cleared too.
        Assessment.objects.filter(pk=assessment.pk).update(review_flagged_at=None, review_flag_reason="")
        audit_log(actor=actor, action="risk.approved", obj=assessment, school=assessment.school,
                  organisation=assessment.organisation,
                  data={"version": version.number, "sha256": version.sha256,
                        "superseded": previous.number if previous else None,
                        "review_flags_cleared": [flag.pk for flag in cleared]})
    return version


def version_revise(*, assessment: Assessment, actor) -> AssessmentVersion:
    """Edit an approved assessment: the next draft, a copy of the current approved version (its header, review
    date included, and its rows). The approved version stays as it is (and current) until the draft is approved.
    An open draft is reused."""
    with transaction.atomic():
        assessment = Assessment.objects.select_for_update().get(pk=assessment.pk)
        _require(actor, assessment, EDIT_ROLES, "edit a risk assessment")
        open_version = assessment.versions.filter(status__in=[Status.DRAFT, Status.SUBMITTED]).first()
        if open_version is not None:
            return open_version
        base = assessment.versions.order_by("-number").first()
        # The new draft is scored on the organisation's matrix as it is now: if it changed since the base was
        # approved, the copied scores are re-mapped explicitly, as a matrix change re-maps open drafts.
        matrix = matrix_for(Organisation.objects.select_for_update().get(pk=assessment.organisation_id))
        old_size = base.get_matrix().size
        from .reminders import assessment_today

        # Every field of the version it revises, the review date included: after an incident the revision is
        # often one changed control, and submitting it must not ask again for what the approved version said.
        # Only the date of the assessment is today's (the school's day), as this is when it is assessed again;
        # a review interval is kept rather than the date it gave at approval, which the approval recomputes.
        draft = AssessmentVersion.objects.create(
            assessment=assessment, number=base.number + 1, assessor_name=base.assessor_name,
            assessed_on=assessment_today(assessment, timezone.now()),
            review_on=None if base.review_interval_months else base.review_on,
            review_interval_months=base.review_interval_months,
            matrix=matrix.as_dict(),
        )
        from .matrix_change import score_map

        remap = score_map(old_size, matrix.size)
        rows = []
        for hazard in base.hazards.all():
            values = {name: getattr(hazard, name) for name in (*HAZARD_FIELDS, "position", "row_key")}
            for name in ("likelihood", "severity", "residual_likelihood", "residual_severity"):
                if values[name] is not None:
                    values[name] = remap[values[name]]
            rows.append(Hazard(version=draft, **_scored(matrix, values)))
        Hazard.objects.bulk_create(rows)
        audit_log(actor=actor, action="risk.revision_started", obj=assessment, school=assessment.school,
                  organisation=assessment.organisation, data={"version": draft.number, "from": base.number})
    return draft


# --- What other parts of the app ask ---------------------------------------------------------------------


@dataclass(frozen=True)
class AssessmentStatus:
    """Whether a school has a current, approved video-lessons risk assessment within its review date.

    `notices` say what the school should know without being blocked: an organisation-wide assessment under
    review after an incident at another school."""

    ok: bool
    version: AssessmentVersion | None
    reasons: tuple[str, ...] = field(default=())
    notices: tuple[str, ...] = field(default=())
    # Who can turn it green, when it is a review after an incident rather than an approval.
    fixer: str = ""


def _approved_video_lessons(organisation_ids) -> tuple[list[AssessmentVersion], dict[int, list[ReviewFlag]]]:
    """The organisations' approved video-lessons versions, and the open review flags of those flagged: one
    query, and a second only when an assessment is flagged."""
    approved = list(
        AssessmentVersion.objects.filter(
            status=Status.APPROVED, assessment__topic=Assessment.Topic.VIDEO_LESSONS,
            assessment__organisation_id__in=list(organisation_ids),
        )
        .select_related("assessment__organisation")
        .order_by("-approved_at", "-pk")
    )
    flagged = [v.assessment_id for v in approved if v.assessment.review_flagged_at]
    flags: dict[int, list[ReviewFlag]] = {}
    if flagged:
        for flag in (ReviewFlag.objects.filter(assessment_id__in=flagged, cleared_at__isnull=True)
                     .select_related("school").order_by("raised_at", "pk")):
            flags.setdefault(flag.assessment_id, []).append(flag)
    return approved, flags


def _name(version: AssessmentVersion, several: bool) -> str:
    return f"The risk assessment “{version.assessment.title}”" if several else "The risk assessment"


def _flag_answers(version: AssessmentVersion, flags: list[ReviewFlag], school: School, name: str
                  ) -> tuple[list[str], list[str]]:
    """What the flags of an assessment that applies to `school` say there: (reasons, notices)."""
    assessment = version.assessment
    if not assessment.review_flagged_at:
        return [], []
    if not flags:
        # Flagged without a flag row (before flags were kept per school): under review wherever it applies.
        return [f"{name} was flagged for review after an incident: {assessment.review_flag_reason}".rstrip(": ")], []
    reasons, notices = [], []
    for flag in flags:
        if flag.blocks(school) and not flag.is_escalated:
            # An incident's reason names its school already.
            named = flag.school_id and assessment.school_id is None and flag.school.name not in flag.reason
            where = f" at {flag.school.name}" if named else ""
            reasons.append(f"{name} was flagged for review after an incident{where}: {flag.reason}".rstrip(": "))
    if not reasons:
        elsewhere = sorted({flag.school.name for flag in flags if flag.school_id and not flag.blocks(school)})
        if elsewhere:
            notices.append(f"{name} is under review after an incident at {' and '.join(elsewhere)}; lessons here "
                           "may go ahead meanwhile.")
    return reasons, notices


def _escalations(approved: list[AssessmentVersion], flags: dict[int, list[ReviewFlag]], school: School) -> list[str]:
    """Escalated flags of any of the organisation's assessments: they stop lessons at every one of its schools."""
    found = []
    for version in approved:
        if version.assessment.organisation_id != school.organisation_id or not version.assessment.review_flagged_at:
            continue
        for flag in flags.get(version.assessment_id, []):
            if flag.is_escalated:
                where = f" at {flag.school.name}" if flag.school_id else ""
                found.append(f"A safeguarding concern{where} stops lessons in every school of "
                             f"{version.assessment.organisation.name} until the risk assessment "
                             f"“{version.assessment.title}” is reviewed: {flag.escalation_reason}")
    return found


def _status_from(approved: list[AssessmentVersion], flags: dict[int, list[ReviewFlag]], school: School,
                 today: date) -> AssessmentStatus:
    """The gate's answer for `school` from its organisation's approved video-lessons versions and their open
    review flags."""
    mine = [v for v in approved if v.assessment.organisation_id == school.organisation_id
            and v.assessment.school_id in (school.pk, None)]
    applicable = [v for v in mine if v.assessment.school_id == school.pk] or mine
    escalations = _escalations(approved, flags, school)
    if not applicable:
        return AssessmentStatus(False, None, ("No approved risk assessment for live video lessons.", *escalations))
    reasons: list[str] = []
    notices: list[str] = []
    for version in applicable:
        name = _name(version, len(applicable) > 1)
        if not version.review_on:
            reasons.append(f"{name} has no review date: give the next version one.")
        elif version.review_on < today:
            reasons.append(f"{name} was due for review on {version.review_on:%-d %B %Y}.")
        flag_reasons, flag_notices = _flag_answers(version, flags.get(version.assessment_id, []), school, name)
        reasons += flag_reasons
        notices += flag_notices
    reasons += escalations
    reasons = list(dict.fromkeys(reasons))
    return AssessmentStatus(not reasons, applicable[0], tuple(reasons),
                            tuple(dict.fromkeys(notices)) if not reasons else (), _review_fixer(flags, school))


def _review_fixer(flags: dict[int, list[ReviewFlag]], school: School) -> str:
    """When an incident here (or one escalated to every school) stops the lessons: who reviews it."""
    places = sorted({flag.school.name for found in flags.values() for flag in found
                     if flag.school_id and (flag.is_escalated or flag.school_id == school.pk)})
    if not places:
        return ""
    return (f"The headteacher of {' or '.join(places)} reviews the risk assessment after the incident "
            "(or the organisation admin): “Reviewed — no change needed”, or a revised version approved.")


def video_lessons_assessment_status(*, school: School, today: date | None = None) -> AssessmentStatus:
    """For the sessions' governance gate. The school's own assessments count, or else the organisation-wide
    ones. Red when there is none approved, when a review date has passed or is missing, or when an incident at
    this school flagged one (an incident at another school leaves a notice only), or when a safeguarding concern
    anywhere in the organisation was escalated to every school. When several apply (two video-lessons
    assessments of one school), every one of them must be green: the answer never depends on which row the
    database returns first."""
    today = today or timezone.localdate(timezone.now(), school.tz)
    return _status_from(*_approved_video_lessons([school.organisation_id]), school, today)


def video_lessons_assessment_statuses(*, schools, today: date | None = None) -> dict[int, AssessmentStatus]:
    """`video_lessons_assessment_status` for many schools in one query (two when an assessment is flagged)."""
    schools = list(schools)
    approved, flags = _approved_video_lessons({school.organisation_id for school in schools})
    now = timezone.now()
    return {school.pk: _status_from(approved, flags, school, today or timezone.localdate(now, school.tz))
            for school in schools}


# --- Review after an incident --------------------------------------------------------------------------------

REASON_MAX = 1000


def _open_flags(assessment: Assessment) -> list[ReviewFlag]:
    return list(ReviewFlag.objects.select_for_update().filter(assessment=assessment, cleared_at__isnull=True)
                .order_by("pk"))


def may_review_flag(scope, flag: ReviewFlag) -> bool:
    """Who reviews a flag, clears it or escalates it: the headteacher of the school where it happened (or the
    organisation admin, who holds every school's roles); for a flag with no school, whoever approves the
    assessment (`acting_roles`)."""
    if flag.school_id:
        return bool(scope.roles_at_school(flag.school_id) & APPROVE_ROLES)
    return bool(acting_roles(scope, flag.assessment) & APPROVE_ROLES)


def _flags_clear(*, assessment: Assessment, flags: list[ReviewFlag], actor, outcome: str, note: str, now
                 ) -> list[ReviewFlag]:
    """Clear `flags` (locked, open, of `assessment`), keep the assessment's summary in step, and close the
    incidents whose every flag is now cleared."""
    if not flags:
        return []
    ReviewFlag.objects.filter(pk__in=[flag.pk for flag in flags]).update(
        cleared_at=now, cleared_by=actor, outcome=outcome, outcome_note=note)
    if not ReviewFlag.objects.filter(assessment=assessment, cleared_at__isnull=True).exists():
        Assessment.objects.filter(pk=assessment.pk).update(review_flagged_at=None, review_flag_reason="")
    # The incidents that raised the flags live with the sessions, which build on the risk register; closing
    # them belongs to the same review, in the same transaction (as consent.services tells the sessions of a
    # withdrawal). Imported here: the sessions' modules import this one.
    from sessions.incident_status import incidents_close_for_flags

    incidents_close_for_flags(flag_ids=[flag.pk for flag in flags], actor=actor, note=note, now=now)
    return flags


def assessment_flag_for_review(*, assessment: Assessment, reason: str, actor, school: School | None = None
                               ) -> ReviewFlag:
    """After an incident at `school`: the assessment needs reviewing, which turns the gate red there (wherever
    the assessment applies when `school` is None) until the review clears it. Anyone reporting an incident may
    flag (the incident module checks who reports)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say what happened."})
    if school is not None and (school.organisation_id != assessment.organisation_id
                               or assessment.school_id not in (None, school.pk)):
        raise ValidationError("That assessment does not apply at that school.")
    with transaction.atomic():
        assessment = Assessment.objects.select_for_update().get(pk=assessment.pk)
        flag = ReviewFlag.objects.create(assessment=assessment, school=school, reason=reason[:REASON_MAX],
                                         raised_by=actor)
        assessment.review_flagged_at = flag.raised_at
        assessment.review_flag_reason = reason[:REASON_MAX]
        assessment.save(update_fields=["review_flagged_at", "review_flag_reason"])
        audit_log(actor=actor, action="risk.flagged_for_review", obj=assessment, school=school or assessment.school,
                  organisation=assessment.organisation,
                  data={"reason": reason[:REASON_MAX], "review_flag": flag.pk,
                        "school": school.pk if school else None})
    return flag


def assessment_review_no_change(*, assessment: Assessment, actor, reason: str) -> list[ReviewFlag]:
    """"Reviewed — no change needed": the open flags this person reviews (`may_review_flag`) are cleared with
    their written reason, which turns the gate green again where they blocked it and closes their incidents.
    The view asks them to confirm it's them first. Refused without a reason, or when they review none of the
    open flags."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why no change is needed: it is kept with the review."})
    if len(reason) > REASON_MAX:
        raise ValidationError({"reason": f"Keep the reason under {REASON_MAX} characters."})
    scope = build_scope(actor)
    with transaction.atomic():
        assessment = Assessment.objects.select_for_update(of=("self",)).select_related("organisation", "school").get(
            pk=assessment.pk)
        flags = _open_flags(assessment)
        if not flags:
            raise ValidationError("This assessment is not flagged for review any more: someone reviewed it "
                                  "meanwhile.")
        for flag in flags:
            flag.assessment = assessment
        mine = [flag for flag in flags if may_review_flag(scope, flag)]
        if not mine:
            raise PermissionDenied("Only the headteacher of the school where it happened, or the organisation "
                                   "admin, can review it.")
        now = timezone.now()
        _flags_clear(assessment=assessment, flags=mine, actor=actor, outcome=ReviewFlag.Outcome.NO_CHANGE,
                     note=reason, now=now)
        # Filed under the school where it happened (its headteacher's audit page), when it is one school.
        schools = {flag.school_id: flag.school for flag in mine if flag.school_id}
        audit_log(actor=actor, action="risk.reviewed_no_change", obj=assessment,
                  school=next(iter(schools.values())) if len(schools) == 1 else assessment.school,
                  organisation=assessment.organisation,
                  data={"reason": reason, "review_flags": [flag.pk for flag in mine],
                        "schools": sorted({flag.school_id for flag in mine if flag.school_id}),
                        "still_flagged": len(flags) - len(mine)})
    return mine


def review_flag_escalate(*, flag: ReviewFlag, actor, reason: str) -> ReviewFlag:
    """Stop lessons in every school of the organisation until the review: a reviewer's decision after a
    safeguarding concern (the incident module checks the kind), with their reason."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why every school must stop until the review."})
    if len(reason) > REASON_MAX:
        raise ValidationError({"reason": f"Keep the reason under {REASON_MAX} characters."})
    with transaction.atomic():
        # Only the flag's row is locked (its school is the nullable side of an outer join).
        flag = (ReviewFlag.objects.select_for_update(of=("self",)).select_related("assessment__organisation", "school")
                .get(pk=flag.pk))
        if not may_review_flag(build_scope(actor), flag):
            raise PermissionDenied("Only the headteacher of the school where it happened, or the organisation "
                                   "admin, can decide this.")
        if not flag.is_open:
            raise ValidationError("The risk assessment was reviewed meanwhile: there is nothing to escalate.")
        if flag.is_escalated:
            raise ValidationError("It already stops lessons in every school of the organisation.")
        flag.escalated_at, flag.escalated_by, flag.escalation_reason = timezone.now(), actor, reason
        flag.save(update_fields=["escalated_at", "escalated_by", "escalation_reason"])
        audit_log(actor=actor, action="risk.review_escalated", obj=flag.assessment, school=flag.school,
                  organisation=flag.assessment.organisation, data={"reason": reason, "review_flag": flag.pk})
    return flag
