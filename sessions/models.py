"""Video sessions and their invitations.

A `VideoSession` is one live lesson of a school: groups (or hand-picked pupils), a host, an approved
platform, the meeting link, ID and password (encrypted, erased a day after the session), start time and
duration. Shortly before it starts (its lead time), the dispatcher creates one `Delivery` per guardian of
a child in the session with active consent — unique per (session, guardian) — and the send task claims
each row, re-checks everything under the consent row's lock, and emails the link and password. The
database is the truth; Celery only carries "look at row N" messages (design.md, "How sending works").

The meeting protocol (`Protocol`) is the organisation's, versioned; a school may tighten it, never loosen it.
"""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from consent.models import Group, Guardian, Pupil, Purpose
from lib.crypto import EncryptedTextField
from schools.models import Organisation, School


class Protocol(models.Model):
    """One version of the meeting protocol: the organisation's (school empty) or a school's tightening of it.

    The rules are all "stricter is more": a requirement switched on, or a smaller number of minutes. A
    school version is valid only if every rule is at least as strict as the organisation's current one
    (`sessions.protocol.protocol_check`). Versions are never edited: a change is a new version.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="protocols")
    school = models.ForeignKey(School, on_delete=models.PROTECT, null=True, blank=True, related_name="protocols")
    version = models.PositiveIntegerField()
    waiting_room = models.BooleanField("use the waiting room", default=True)
    password_required = models.BooleanField("protect every meeting with a password", default=True)
    muted_on_entry = models.BooleanField("participants muted on entry", default=True)
    unmute_when_asked = models.BooleanField("pupils unmute only when asked", default=True)
    host_ends_meeting = models.BooleanField("the host ends the meeting for everyone", default=True)
    no_pupil_screen_sharing = models.BooleanField("no screen sharing by pupils", default=True)
    chat_closed = models.BooleanField("chat closed", default=True)
    first_name_checked = models.BooleanField("the child's first name checked before admitting", default=True)
    adult_present = models.BooleanField("an adult present with the child", default=True)
    lock_after_minutes = models.PositiveSmallIntegerField("lock the meeting after (minutes)", default=5)
    max_duration_minutes = models.PositiveSmallIntegerField("longest session (minutes)", default=30)
    notes = models.TextField(blank=True, help_text="Anything else parents and hosts should know.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    # (field, kind): "flag" rules are stricter when True, "minutes" rules when smaller.
    RULES = (
        ("waiting_room", "flag"), ("password_required", "flag"), ("muted_on_entry", "flag"),
        ("unmute_when_asked", "flag"), ("host_ends_meeting", "flag"), ("no_pupil_screen_sharing", "flag"),
        ("chat_closed", "flag"), ("first_name_checked", "flag"), ("adult_present", "flag"),
        ("lock_after_minutes", "minutes"), ("max_duration_minutes", "minutes"),
    )

    class Meta:
        ordering = ["organisation", "school", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "version"], condition=Q(school__isnull=True),
                                    name="protocol_org_version_unique"),
            models.UniqueConstraint(fields=["school", "version"], condition=Q(school__isnull=False),
                                    name="protocol_school_version_unique"),
            models.CheckConstraint(condition=Q(lock_after_minutes__gte=1) & Q(max_duration_minutes__gte=5),
                                   name="protocol_minutes_sensible"),
        ]

    def __str__(self) -> str:
        owner = self.school or self.organisation
        return f"Meeting protocol of {owner}, version {self.version}"

    def save(self, *args, **kwargs):
        if self.pk:
            raise TypeError("A protocol version never changes: write a new version.")
        super().save(*args, **kwargs)


class VideoSession(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        CANCELLED = "cancelled", "Cancelled"
        # Its gate was still red at its start (`sessions.gate_watch`).
        NOT_HELD = "not_held", "Did not go ahead"

    LEAD_MINUTES_DEFAULT = 60
    LEAD_MINUTES_MIN = 10
    LEAD_MINUTES_MAX = 24 * 60

    school = models.ForeignKey(School, on_delete=models.PROTECT, related_name="video_sessions")
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="video_sessions",
                                help_text="The consent that invitations need.")
    title = models.CharField(max_length=200)
    host = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="hosted_sessions")
    platform = models.ForeignKey("pia.Platform", on_delete=models.PROTECT, related_name="sessions")
    groups = models.ManyToManyField(Group, related_name="video_sessions", blank=True)
    pupils = models.ManyToManyField(Pupil, related_name="video_sessions", blank=True,
                                    help_text="Hand-picked pupils, beside or instead of groups.")
    meeting_url = EncryptedTextField("meeting link")
    meeting_id = models.CharField("meeting ID", max_length=100, blank=True)
    # Encrypted at rest (promise 8); emptied 24 hours after the end of the session.
    password = EncryptedTextField(blank=True)
    password_erased_at = models.DateTimeField(null=True, blank=True)
    starts_at = models.DateTimeField()
    duration_minutes = models.PositiveSmallIntegerField()
    lead_minutes = models.PositiveSmallIntegerField("invitation lead time (minutes)", default=LEAD_MINUTES_DEFAULT)
    # starts_at − lead time, kept in a column so that the dispatcher's query by the database clock is indexed.
    send_at = models.DateTimeField(editable=False)
    # Weekly occurrences scheduled together share a series id.
    series = models.UUIDField(null=True, blank=True, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SCHEDULED)
    # Raised whenever what an invitation says changes (time, link, password): sent invitations of an older
    # revision are sent again.
    revision = models.PositiveIntegerField(default=1)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="+")
    cancel_reason = models.TextField(blank=True)
    # When the gate was last found red after scheduling, so the host and headteacher are told once.
    gate_red_since = models.DateTimeField(null=True, blank=True)
    # When the parents already invited were told it cannot go ahead (this red spell); cleared when it resumes.
    parents_told_off_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["starts_at", "pk"]
        indexes = [
            models.Index(fields=["send_at"], name="session_due", condition=Q(status="scheduled")),
            models.Index(fields=["school", "starts_at"], name="session_school_start"),
            models.Index(fields=["host", "starts_at"], name="session_host_start"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(lead_minutes__gte=10) & Q(lead_minutes__lte=24 * 60),
                                   name="session_lead_bounded"),
            models.CheckConstraint(condition=Q(duration_minutes__gte=5), name="session_duration_sensible"),
        ]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs):
        self.send_at = self.starts_at - timedelta(minutes=self.lead_minutes)
        if kwargs.get("update_fields") is not None and {"starts_at", "lead_minutes"} & set(kwargs["update_fields"]):
            kwargs["update_fields"] = {*kwargs["update_fields"], "send_at"}
        super().save(*args, **kwargs)

    @property
    def ends_at(self):
        return self.starts_at + timedelta(minutes=self.duration_minutes)


class Delivery(models.Model):
    """The invitation of one guardian to one session: at most one per (session, guardian) (promise 2)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Queued"
        SENDING = "sending", "Sending"
        RETRY = "retry", "Waiting to retry"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        SKIPPED = "skipped", "Skipped"

    CLAIMABLE = (Status.PENDING, Status.RETRY)
    FINAL = (Status.SENT, Status.FAILED, Status.CANCELLED, Status.SKIPPED)

    session = models.ForeignKey(VideoSession, on_delete=models.CASCADE, related_name="deliveries")
    guardian = models.ForeignKey(Guardian, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # Why it was skipped, cancelled or failed, in words for the host's page.
    reason = models.CharField(max_length=300, blank=True)
    # The children the email names (ids), as found at the claim.
    pupil_ids = models.JSONField(default=list, blank=True)
    # The session revision this row must send (raised when the session changes after a send).
    revision = models.PositiveIntegerField(default=1)
    sent_revision = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # The claim that holds the row while `sending`: every row of one batch shares it, and the send task's
    # progress mark in the shared cache is filed under it (`sessions.progress.AcceptedMarks`).
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    recipient = models.CharField(max_length=254, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    # A lease expired after the mail server may have accepted the message (promise 2: counted and shown).
    possible_duplicate = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # When the mail server accepted it; for the last send, as the row's status says.
    sent_at = models.DateTimeField(null=True, blank=True)
    # While `sending`: when the mail server accepted it, written every few messages of a batch
    # (`sessions.progress`), so that the sweeper knows it was sent if the worker and the cache are lost.
    accepted_at = models.DateTimeField(null=True, blank=True)
    # The children named by every invitation sent so far (ids): kept when the row goes back to pending after
    # a change or loses a child to a withdrawal, because the email that named them is still in the inbox.
    sent_pupil_ids = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["session", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["session", "guardian"], name="delivery_once_per_session_guardian"),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="delivery_claimable_due",
                         condition=Q(status__in=["pending", "retry"])),
            models.Index(fields=["lease_until"], name="delivery_sending_lease", condition=Q(status="sending")),
            models.Index(fields=["guardian", "status"], name="delivery_guardian_status"),
        ]

    def __str__(self) -> str:
        return f"Invitation #{self.pk} ({self.get_status_display()})"

    @property
    def ever_sent(self) -> bool:
        """An invitation with the link went to this guardian for this lesson, whatever the row says now."""
        return self.sent_revision is not None

    def audit_repr(self) -> str:
        return f"Invitation #{self.pk} to session #{self.session_id} for parent or carer #{self.guardian_id}"


class DeliveryEvent(models.Model):
    """The status history of an invitation, one row per change (for the host's page and for tracing)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=10, choices=Delivery.Status.choices)
    reason = models.CharField(max_length=300, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["delivery", "at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_status_display()} at {self.at:%Y-%m-%d %H:%M}"


class SessionAlert(models.Model):
    """Something the host (and headteacher) must know about a session, shown on its page and emailed once."""

    class Kind(models.TextChoices):
        WITHDRAWN_AFTER_SEND = "withdrawn_after_send", "A parent withdrew after the invitation was sent"
        DELIVERY_FAILED = "delivery_failed", "An invitation could not be sent"
        GATE_RED = "gate_red", "The session may not go ahead"
        UNSENT_NEAR_START = "unsent_near_start", "Invitations still unsent close to the start"
        INCIDENT = "incident", "Incident reported"
        NOT_HELD = "not_held", "The lesson did not go ahead"

    # How a GATE_RED alert's message begins; its reasons follow.
    GATE_RED_PREFIX = "The session may not go ahead: "

    session = models.ForeignKey(VideoSession, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    message = models.CharField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["session", "kind", "delivery"], condition=Q(delivery__isnull=False),
                                    name="session_alert_once_per_delivery"),
        ]

    def __str__(self) -> str:
        return self.get_kind_display()


class Attendance(models.Model):
    session = models.ForeignKey(VideoSession, on_delete=models.CASCADE, related_name="attendance")
    pupil = models.ForeignKey(Pupil, on_delete=models.CASCADE, related_name="attendance")
    present = models.BooleanField()
    adult_present = models.BooleanField(null=True, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "pupil"], name="attendance_once_per_pupil")]

    def __str__(self) -> str:
        return f"{'Present' if self.present else 'Absent'} (session #{self.session_id})"

    def audit_repr(self) -> str:
        return f"Attendance of pupil #{self.pupil_id} at session #{self.session_id}"


class Incident(models.Model):
    class Kind(models.TextChoices):
        UNINVITED = "uninvited", "Uninvited participant"
        CONTENT = "content", "Inappropriate content"
        SAFEGUARDING = "safeguarding", "Safeguarding concern"
        TECHNICAL = "technical", "Technical problem"

    class Status(models.TextChoices):
        # Reported, waiting for the headteacher to look at it and close it with a note.
        OPEN = "open", "Open"
        # Its risk assessment is flagged: it closes when that review is done.
        UNDER_REVIEW = "under_review", "Under review"
        CLOSED = "closed", "Closed"

    session = models.ForeignKey(VideoSession, on_delete=models.PROTECT, related_name="incidents")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    description = EncryptedTextField("what happened")
    ended_early = models.BooleanField(default=False)
    reported_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reported_at = models.DateTimeField(default=timezone.now)
    flagged_assessment = models.ForeignKey("riskassess.Assessment", on_delete=models.SET_NULL, null=True,
                                           blank=True, related_name="incidents")
    # The review flags it raised (one per applicable assessment): while one is open the incident is under review,
    # and the review that clears the last one closes the incident with its reason (`sessions.incident_status`).
    review_flags = models.ManyToManyField("riskassess.ReviewFlag", blank=True, related_name="incidents")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    closing_note = models.TextField(blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="+")

    class Meta:
        ordering = ["-reported_at", "-pk"]
        indexes = [models.Index(fields=["status", "reported_at"], name="incident_status_reported")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} (session #{self.session_id})"

    def audit_repr(self) -> str:
        return f"Incident #{self.pk} in session #{self.session_id}"
