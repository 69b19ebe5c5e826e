"""The risk register: assessments of an activity, their versions, and the hazard rows of each version.

An `Assessment` is the register entry ("Video lessons with groups of pupils", at Laxey). Its content lives
in numbered `AssessmentVersion`s: one draft at a time is edited; approval freezes it with a snapshot and
its SHA-256; editing after approval starts the next draft; the approved version before it becomes
superseded, so at most one version of an assessment is approved and current.

Ratings are stored for queries (heat maps, reminders) but always computed by `riskassess.services` from
the scores and the organisation's matrix, never typed.
"""

import hashlib
import json
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from schools.models import Organisation, School

from .matrix import SEED_3X3, Matrix


class RiskMatrix(models.Model):
    """The organisation's matrix when it is not the seed's 3×3 (changed only by `matrix_change`)."""

    organisation = models.OneToOneField(Organisation, on_delete=models.CASCADE, related_name="risk_matrix")
    definition = models.JSONField(help_text="size, likelihood and severity labels, bands (Matrix.as_dict)")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Risk matrix of {self.organisation}"

    def matrix(self) -> Matrix:
        return Matrix.from_dict(self.definition)


def matrix_for(organisation: Organisation) -> Matrix:
    try:
        return organisation.risk_matrix.matrix()
    except RiskMatrix.DoesNotExist:
        return SEED_3X3


class Assessment(models.Model):
    class Topic(models.TextChoices):
        VIDEO_LESSONS = "video_lessons", "Live video lessons"
        OTHER = "other", "Other activity"

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="risk_assessments")
    school = models.ForeignKey(
        School, on_delete=models.PROTECT, null=True, blank=True, related_name="risk_assessments",
        help_text="Empty for an assessment that covers the whole organisation.",
    )
    title = models.CharField("activity or location", max_length=200)
    topic = models.CharField(max_length=20, choices=Topic.choices, default=Topic.OTHER)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Set while any review flag of the assessment is open (`ReviewFlag`): the register, the reviews due and the
    # home pages read it, and the gate looks for the flags only when it is set. Cleared by the review.
    review_flagged_at = models.DateTimeField(null=True, blank=True)
    review_flag_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["organisation__name", "school__name", "title"]

    def __str__(self) -> str:
        return self.title


class ReviewFlag(models.Model):
    """An assessment flagged for review after an incident at one school (`assessment_flag_for_review`).

    It blocks lessons (turns the gate red) where it happened: at `school`, or wherever the assessment applies
    when `school` is empty. An organisation-wide assessment flagged at one school is under review for the whole
    organisation, but the other schools only see a notice, unless the reviewer escalates it (a safeguarding
    concern) to block every school of the organisation. The review clears it: "reviewed, no change needed" with
    a reason, or a revised version approved.
    """

    class Outcome(models.TextChoices):
        NO_CHANGE = "no_change", "Reviewed: no change needed"
        REVISED = "revised", "Revised: a new version approved"

    assessment = models.ForeignKey(Assessment, on_delete=models.CASCADE, related_name="review_flags")
    school = models.ForeignKey(School, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                               help_text="Where it happened; empty: wherever the assessment applies.")
    reason = models.TextField()
    raised_at = models.DateTimeField(default=timezone.now)
    raised_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    escalated_at = models.DateTimeField(null=True, blank=True)
    escalated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="+")
    escalation_reason = models.TextField(blank=True)
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    outcome_note = models.TextField(blank=True)

    class Meta:
        ordering = ["assessment", "raised_at", "pk"]
        indexes = [models.Index(fields=["assessment"], condition=Q(cleared_at__isnull=True),
                                name="review_flag_open")]

    def __str__(self) -> str:
        return f"Review of {self.assessment} after an incident" + (f" at {self.school}" if self.school_id else "")

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None

    @property
    def is_escalated(self) -> bool:
        return self.escalated_at is not None

    def blocks(self, school: School) -> bool:
        """Whether this open flag turns `school`'s gate red (the assessment applying to `school`)."""
        return self.is_escalated or self.school_id in (None, school.pk)


class AssessmentVersion(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted for approval"
        APPROVED = "approved", "Approved"
        SUPERSEDED = "superseded", "Superseded"

    assessment = models.ForeignKey(Assessment, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    assessor_name = models.CharField("person making the assessment", max_length=200)
    assessed_on = models.DateField("date of the assessment")
    review_on = models.DateField("review date", null=True, blank=True)
    review_interval_months = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Instead of a date: the review falls this many months after approval."
    )
    matrix = models.JSONField(help_text="The matrix the rows were scored on (Matrix.as_dict).")
    submitted_at = models.DateTimeField(null=True, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    snapshot = models.JSONField(null=True, blank=True, editable=False)
    sha256 = models.CharField("SHA-256", max_length=64, blank=True, editable=False)
    # The approved version's PDF, rendered once and kept as it was, with its own hash.
    pdf = models.FileField(upload_to="risk/pdf/%Y/", blank=True, editable=False)
    pdf_sha256 = models.CharField("PDF SHA-256", max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["assessment", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["assessment", "number"], name="assessment_version_number_unique"),
            models.UniqueConstraint(
                fields=["assessment"], condition=Q(status="approved"), name="assessment_one_approved_version"
            ),
            models.UniqueConstraint(
                fields=["assessment"], condition=Q(status__in=["draft", "submitted"]),
                name="assessment_one_open_version",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.assessment} — version {self.number} ({self.get_status_display()})"

    @property
    def is_frozen(self) -> bool:
        return self.status in (self.Status.APPROVED, self.Status.SUPERSEDED)

    def get_matrix(self) -> Matrix:
        return Matrix.from_dict(self.matrix)

    @staticmethod
    def hash_of(snapshot: dict) -> str:
        canonical = json.dumps(snapshot, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def hash_verifies(self) -> bool:
        return bool(self.snapshot) and self.sha256 == self.hash_of(self.snapshot)


class Hazard(models.Model):
    """One row of the seed's form."""

    version = models.ForeignKey(AssessmentVersion, on_delete=models.CASCADE, related_name="hazards")
    position = models.PositiveIntegerField(default=0)
    activity_element = models.CharField("location or activity element", max_length=300)
    hazard = models.TextField("potential hazard")
    who_affected = models.CharField("who is affected", max_length=300, blank=True)
    likelihood = models.PositiveSmallIntegerField()
    severity = models.PositiveSmallIntegerField()
    rating = models.PositiveSmallIntegerField(editable=False)
    controls = models.TextField("action taken to reduce or control the risk", blank=True)
    residual_likelihood = models.PositiveSmallIntegerField(null=True, blank=True)
    residual_severity = models.PositiveSmallIntegerField(null=True, blank=True)
    residual_rating = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    further_action = models.TextField("further action required", blank=True)
    action_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="risk_actions"
    )
    action_due_on = models.DateField(null=True, blank=True)
    action_done_on = models.DateField(null=True, blank=True)
    initials = models.CharField(max_length=10, blank=True)
    # The same row across versions: copied by `version_revise` (a new version's rows have new ids), kept when a
    # row is edited. Reminders of a further action go once per row_key, stage and due date; compare matches by it.
    row_key = models.UUIDField(default=uuid.uuid4, editable=False, db_index=True)

    class Meta:
        ordering = ["version", "position", "id"]

    def __str__(self) -> str:
        return self.hazard[:80]


class Reminder(models.Model):
    """A reminder already sent, so each goes once per item and stage, whenever the periodic task runs."""

    class Stage(models.TextChoices):
        ACTION_DUE_SOON = "action_due_soon", "Action due soon"
        ACTION_OVERDUE = "action_overdue", "Action overdue"
        REVIEW_DUE_SOON = "review_due_soon", "Review due soon"
        REVIEW_OVERDUE = "review_overdue", "Review overdue"

    stage = models.CharField(max_length=20, choices=Stage.choices)
    hazard = models.ForeignKey(Hazard, on_delete=models.CASCADE, null=True, blank=True, related_name="reminders")
    version = models.ForeignKey(
        AssessmentVersion, on_delete=models.CASCADE, null=True, blank=True, related_name="reminders"
    )
    # The date the reminder was about: a moved due date or review date is a new item to remind of.
    due_on = models.DateField()
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hazard", "stage", "due_on"], condition=Q(hazard__isnull=False),
                                    name="reminder_once_per_action_stage"),
            models.UniqueConstraint(fields=["version", "stage", "due_on"], condition=Q(version__isnull=False),
                                    name="reminder_once_per_review_stage"),
            models.CheckConstraint(condition=Q(hazard__isnull=False) ^ Q(version__isnull=False),
                                   name="reminder_about_one_thing"),
        ]

    def __str__(self) -> str:
        return f"{self.get_stage_display()} ({self.due_on})"
