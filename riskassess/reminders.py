"""Reminders of further actions and reviews, sent by the hourly task `riskassess.tasks.risk_reminders`.

Each reminder goes once per item, stage and date (`Reminder`'s unique constraints): the `Reminder` row is
inserted in the same transaction that queues the email, and a row that already exists (sent by an earlier
run, or by a run going on at the same moment, whose insert we wait for) means "skip". Moving a due date or
a review date makes a new item, so it is reminded again. Dates are compared (due within N days, or past),
never matched exactly, in the school's time zone (the organisation's for organisation-wide assessments), so
a run that did not happen on the day still catches up.

At-most-once per item and stage: the row and the queued email commit together or not at all; the outbox
then sends the email after the commit.
"""

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from outbox.services import email_queue
from schools.audit import audit_log
from schools.models import Membership, Role

from .models import Assessment, AssessmentVersion, Hazard, Reminder
from .services import EDIT_ROLES, _roles

Stage = Reminder.Stage
Status = AssessmentVersion.Status

ACTION_SOON_DAYS = 7
REVIEW_SOON_DAYS = 30


def assessment_tz(assessment: Assessment) -> ZoneInfo:
    """Where an assessment's days begin and end: its school's time zone; the organisation's for an
    organisation-wide one. The reminders and the "reviews due" and "actions overdue" pages all count with it."""
    return ZoneInfo(assessment.school.time_zone if assessment.school_id else assessment.organisation.time_zone)


def assessment_today(assessment: Assessment, now: datetime) -> date:
    return timezone.localdate(now, assessment_tz(assessment))


def local_date_filter(*, assessment_path: str, lookup: str, zones: Iterable[str], now: datetime,
                      days: int = 0) -> Q:
    """A filter comparing a date with "today + days" in each row's own time zone (as `assessment_tz` decides),
    so a list page can filter and paginate in the database: one branch per time zone in `zones` (the few
    zones of the schools and organisations in view). `lookup` is relative to the row, e.g. "action_due_on__lt";
    `assessment_path` leads from the row to its assessment ("" when the rows are assessments)."""
    prefix = f"{assessment_path}__" if assessment_path else ""
    branches = Q(pk__in=[])
    for name in sorted(set(zones)):
        today = timezone.localdate(now, ZoneInfo(name)) + timedelta(days=days)
        branches |= Q(**{f"{prefix}school__time_zone": name, lookup: today})
        branches |= Q(**{f"{prefix}school__isnull": True, f"{prefix}organisation__time_zone": name, lookup: today})
    return branches


def action_stage(due_on: date, today: date) -> str | None:
    """Which reminder an open action is due, if any: overdue once its date has passed, due soon within a week."""
    if due_on < today:
        return Stage.ACTION_OVERDUE
    if due_on <= today + timedelta(days=ACTION_SOON_DAYS):
        return Stage.ACTION_DUE_SOON
    return None


def review_stage(review_on: date, today: date) -> str | None:
    if review_on < today:
        return Stage.REVIEW_OVERDUE
    if review_on <= today + timedelta(days=REVIEW_SOON_DAYS):
        return Stage.REVIEW_DUE_SOON
    return None


def _record(**fields) -> bool:
    """Insert the Reminder row, or say it was already there (inside the caller's transaction)."""
    try:
        with transaction.atomic():
            Reminder.objects.create(**fields)
    except IntegrityError:
        return False
    return True


def _open_actions(horizon: date):
    # The horizon is a generous bound (a day either side of any time zone); each row is then checked against
    # its own school's today.
    return (
        Hazard.objects.filter(
            version__status=Status.APPROVED, action_due_on__isnull=False, action_due_on__lte=horizon,
            action_done_on__isnull=True, action_owner__isnull=False, action_owner__is_active=True,
        )
        .exclude(further_action="")
        .exclude(action_owner__email="")
        .select_related("version__assessment__school", "version__assessment__organisation", "action_owner")
        .order_by("action_due_on", "pk")
    )


def _reviews(horizon: date):
    return (
        AssessmentVersion.objects.filter(status=Status.APPROVED, review_on__isnull=False, review_on__lte=horizon)
        .select_related("assessment__school", "assessment__organisation")
        .order_by("review_on", "pk")
    )


def review_recipients_for(assessments: Iterable[Assessment]) -> dict[int, list]:
    """Who is told of a review, for many assessments in one query: {assessment id: users}. A school's
    assessment: the school's headteachers; an organisation-wide one: the organisation's admins."""
    assessments = list(assessments)
    school_ids = {a.school_id for a in assessments if a.school_id}
    organisation_ids = {a.organisation_id for a in assessments if not a.school_id}
    if not assessments:
        return {}
    memberships = (
        Membership.objects.filter(Q(role=Role.HEADTEACHER, school_id__in=school_ids)
                                  | Q(role=Role.ORG_ADMIN, organisation_id__in=organisation_ids, school__isnull=True))
        .filter(user__is_active=True).exclude(user__email="").select_related("user")
    )
    by_school: dict[int, dict] = defaultdict(dict)
    by_organisation: dict[int, dict] = defaultdict(dict)
    for membership in memberships:
        if membership.role == Role.HEADTEACHER and membership.school_id in school_ids:
            by_school[membership.school_id][membership.user.pk] = membership.user
        if (membership.role == Role.ORG_ADMIN and membership.school_id is None
                and membership.organisation_id in organisation_ids):
            by_organisation[membership.organisation_id][membership.user.pk] = membership.user
    result = {}
    for assessment in assessments:
        users = by_school[assessment.school_id] if assessment.school_id else by_organisation[assessment.organisation_id]
        result[assessment.pk] = sorted(users.values(), key=lambda user: user.pk)
    return result


def reminders_send(*, now: datetime) -> dict[str, int]:
    """Send every action and review reminder that is due and not sent yet; return the count per stage."""
    sent: Counter = Counter()
    per_organisation: dict[int, Counter] = defaultdict(Counter)
    organisations = {}
    utc_today = timezone.localdate(now, ZoneInfo("UTC"))

    for hazard in _open_actions(utc_today + timedelta(days=ACTION_SOON_DAYS + 2)):
        assessment = hazard.version.assessment
        today = assessment_today(assessment, now)
        stage = action_stage(hazard.action_due_on, today)
        if stage is None:
            continue
        with transaction.atomic():
            # Once per row, stage and due date across versions: a re-approved version's copy of the row has a
            # new id but the same row_key, and is not reminded again for the same due date.
            if Reminder.objects.filter(hazard__row_key=hazard.row_key, stage=stage,
                                       due_on=hazard.action_due_on).exists():
                continue
            if not _record(stage=stage, hazard=hazard, due_on=hazard.action_due_on, sent_at=now):
                continue
            email_queue(
                template="risk-action-reminder", to=hazard.action_owner.email,
                school=assessment.school, organisation=assessment.organisation, related=assessment,
                context={
                    "owner": hazard.action_owner, "hazard": hazard, "assessment": assessment,
                    "overdue": stage == Stage.ACTION_OVERDUE, "due_on": hazard.action_due_on,
                    "days": abs((hazard.action_due_on - today).days),
                    "link_path": reverse("riskassess:actions-overdue"),
                },
            )
        sent[stage] += 1
        per_organisation[assessment.organisation_id][stage] += 1
        organisations[assessment.organisation_id] = assessment.organisation

    due = []
    for version in _reviews(utc_today + timedelta(days=REVIEW_SOON_DAYS + 2)):
        stage = review_stage(version.review_on, assessment_today(version.assessment, now))
        if stage is not None:
            due.append((version, stage))
    # Everyone to tell, for every due review, in one query (the hourly task never queries per version).
    recipients_of = review_recipients_for(version.assessment for version, _stage in due)
    for version, stage in due:
        assessment = version.assessment
        today = assessment_today(assessment, now)
        recipients = recipients_of[assessment.pk]
        if not recipients:
            continue  # nobody to tell yet: not recorded, so it goes once a headteacher is there
        with transaction.atomic():
            if not _record(stage=stage, version=version, due_on=version.review_on, sent_at=now):
                continue
            for user in recipients:
                email_queue(
                    template="risk-review-reminder", to=user.email,
                    school=assessment.school, organisation=assessment.organisation, related=assessment,
                    context={
                        "recipient": user, "assessment": assessment, "version": version,
                        "overdue": stage == Stage.REVIEW_OVERDUE, "review_on": version.review_on,
                        "days": abs((version.review_on - today).days),
                        "link_path": reverse("riskassess:reviews-due"),
                    },
                )
        sent[stage] += 1
        per_organisation[assessment.organisation_id][stage] += 1
        organisations[assessment.organisation_id] = assessment.organisation

    # One audit entry per run (per organisation reminded, so that its own people see it in their audit page).
    for organisation_id, counts in per_organisation.items():
        audit_log(actor=None, action="risk.reminder_sent", obj=organisations[organisation_id],
                  data={stage: counts.get(stage, 0) for stage in Stage.values})
    return {stage: sent.get(stage, 0) for stage in Stage.values}


def action_mark_done(*, hazard: Hazard, actor, done_on: date | None = None) -> Hazard:
    """The owner or the headteacher records that a further action is done. Allowed on an approved version's
    row because it records progress, not content: only `action_done_on` changes (it is not in the snapshot)."""
    with transaction.atomic():
        hazard = (
            Hazard.objects.select_for_update(of=("self",)).select_related("version__assessment").get(pk=hazard.pk)
        )
        assessment = hazard.version.assessment
        if hazard.action_owner_id != actor.pk and not _roles(actor, assessment) & EDIT_ROLES:
            raise PermissionDenied("Only the action's owner or the headteacher can mark it done.")
        if not hazard.further_action or not hazard.action_due_on:
            raise ValidationError("This row has no further action to mark done.")
        if hazard.version.status != Status.APPROVED:
            raise ValidationError("Mark actions done on the approved version; a draft is edited row by row.")
        if hazard.action_done_on is not None:
            raise ValidationError(f"This action was already marked done on {hazard.action_done_on:%-d %B %Y}.")
        hazard.action_done_on = done_on or assessment_today(assessment, timezone.now())
        hazard.save(update_fields=["action_done_on"])
        audit_log(actor=actor, action="risk.action_done", obj=assessment, school=assessment.school,
                  organisation=assessment.organisation,
                  data={"version": hazard.version.number, "hazard_id": hazard.pk,
                        "due_on": hazard.action_due_on.isoformat(), "done_on": hazard.action_done_on.isoformat()})
    return hazard
