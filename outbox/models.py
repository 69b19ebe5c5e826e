import base64
import json
from dataclasses import dataclass

from django.db import models
from django.db.models import Q

from lib.crypto import EncryptedTextField

from .kinds import email_kind


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mimetype: str


class OutboxMessage(models.Model):
    """One outgoing email, from the moment it is queued until it is sent or given up on.

    The database is the truth about every email; Celery only carries "look at row N" messages. Bodies
    (and attachments) carry parents' personal links and meeting passwords, so they are encrypted at rest.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        RETRY = "retry", "Waiting to retry"
        FAILED = "failed", "Failed"

    CLAIMABLE = (Status.QUEUED, Status.RETRY)

    school = models.ForeignKey(
        "schools.School", on_delete=models.CASCADE, related_name="outbox_messages", null=True, blank=True
    )
    organisation = models.ForeignKey(
        "schools.Organisation", on_delete=models.CASCADE, related_name="outbox_messages", null=True, blank=True
    )
    template = models.CharField(max_length=100)
    recipient = models.CharField(max_length=254)
    subject = models.CharField(max_length=300)
    body_text = EncryptedTextField()
    body_html = EncryptedTextField()
    # JSON list of {"filename", "mimetype", "content" (base64)}, encrypted like the bodies; "" when none.
    attachments = EncryptedTextField(blank=True, default="")
    # The object the email is about (a delivery, a consent request, a user), for tracing.
    related_type = models.CharField(max_length=100, blank=True)
    related_id = models.CharField(max_length=64, blank=True)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    # When the row may next be claimed (queued rows: at once; retries: after the backoff).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a send task for this row was last handed to the broker; the sweeper re-queues rows whose
    # task seems lost (still claimable a minute later).
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # While `sending`: after this time the worker is presumed dead and the sweeper takes the row back.
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    message_id = models.CharField(max_length=255, unique=True)
    # Times a lease expired and the message was tried again although the mail server may already have
    # accepted it (design.md promise 2: the only possible duplicate, counted and shown).
    possible_duplicate = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sweeper's and the send task's queries: claimable rows by due time, leases by expiry.
            models.Index(
                fields=["next_attempt_at"], name="outbox_claimable_due",
                condition=Q(status__in=["queued", "retry"]),
            ),
            models.Index(fields=["lease_until"], name="outbox_sending_lease", condition=Q(status="sending")),
            # The outbox page and the dashboard's failure count.
            models.Index(fields=["school", "status", "-created_at"], name="outbox_school_status"),
            models.Index(fields=["organisation", "status", "-created_at"], name="outbox_org_status"),
            models.Index(fields=["related_type", "related_id"], name="outbox_related"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "sending", "sent", "retry", "failed"]), name="outbox_status_valid"
            ),
        ]

    def __str__(self) -> str:
        # No address here: this text ends up in the append-only audit trail.
        return f"Email #{self.pk} ({self.template})"

    @property
    def kind_label(self) -> str:
        return email_kind(self.template)

    def attachment_list(self) -> list[Attachment]:
        if not self.attachments:
            return []
        return [
            Attachment(item["filename"], base64.b64decode(item["content"]), item["mimetype"])
            for item in json.loads(self.attachments)
        ]

    @property
    def is_retryable_by_staff(self) -> bool:
        return self.status == self.Status.FAILED
