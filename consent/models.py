"""The registry: pupils, their guardians and their groups, per school.

Consent is built on top of these: a purpose per organisation, its versioned notices, the append-only
consent events and the one derived status row per guardian, pupil and purpose.
"""

import hashlib
import json
from datetime import date, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from lib.crypto import EncryptedTextField
from lib.models import AppendOnlyModel
from schools.models import Organisation, School


class Group(models.Model):
    """A class, a year group or the whole school: what a video session is scheduled for."""

    class Kind(models.TextChoices):
        CLASS = "class", "Class"
        YEAR = "year", "Year group"
        WHOLE_SCHOOL = "whole_school", "Whole school"
        OTHER = "other", "Other"

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CLASS)
    mis_id = models.CharField("MIS id", max_length=64, blank=True)
    pupils = models.ManyToManyField("Pupil", related_name="groups", blank=True)

    class Meta:
        ordering = ["school__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["school", "name"], name="group_name_unique_in_school"),
        ]

    def __str__(self) -> str:
        return self.name


class Pupil(models.Model):
    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="pupils")
    mis_id = models.CharField("MIS id", max_length=64)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    year_group = models.CharField(max_length=40, blank=True)
    left_on = models.DateField(null=True, blank=True, help_text="Set when a full import no longer lists them.")
    # Set by the retention schedule: everything but what the consent evidence needs has been erased,
    # and the rest (the pupil, their guardians' names and the events) goes on `evidence_delete_on`.
    archived_at = models.DateTimeField(null=True, blank=True, editable=False)
    evidence_delete_on = models.DateField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["last_name", "first_name"]
        constraints = [
            models.UniqueConstraint(fields=["school", "mis_id"], name="pupil_mis_id_unique_in_school"),
        ]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def audit_repr(self) -> str:
        return f"Pupil #{self.pk}"


class Guardian(models.Model):
    """A parent or carer. No account: they act through personal links emailed to them."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="guardians")
    mis_id = models.CharField("MIS id", max_length=64)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    pupils = models.ManyToManyField(Pupil, through="Guardianship", related_name="guardians")
    archived_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Set when the school grants the guardian's request to suppress (restrict) processing: from then on
    # nothing but answers to their own requests is sent to them (consent.rights).
    processing_restricted_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["last_name", "first_name"]
        constraints = [
            models.UniqueConstraint(fields=["school", "mis_id"], name="guardian_mis_id_unique_in_school"),
        ]
        indexes = [models.Index(fields=["school", "email"], name="guardian_school_email")]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def audit_repr(self) -> str:
        return f"Parent or carer #{self.pk}"


class Guardianship(models.Model):
    class Relationship(models.TextChoices):
        MOTHER = "mother", "Mother"
        FATHER = "father", "Father"
        CARER = "carer", "Carer"
        GUARDIAN = "guardian", "Legal guardian"
        OTHER = "other", "Other"

    guardian = models.ForeignKey(Guardian, on_delete=models.CASCADE, related_name="guardianships")
    pupil = models.ForeignKey(Pupil, on_delete=models.CASCADE, related_name="guardianships")
    relationship = models.CharField(max_length=20, choices=Relationship.choices, default=Relationship.OTHER)
    parental_responsibility = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["guardian", "pupil"], name="guardianship_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.guardian} ({self.get_relationship_display()}) of {self.pupil}"

    def audit_repr(self) -> str:
        return f"Parent or carer #{self.guardian_id} of pupil #{self.pupil_id}"


# --- Consent: purposes, notices, events and the derived status row -------------------------------


class GuardiansRule(models.TextChoices):
    """How the decisions of a pupil's several guardians combine into the pupil's effective consent."""

    ANY_MAY_CONSENT_REFUSAL_WINS = (
        "any_consent_refusal_wins",
        "Any guardian with parental responsibility may consent; a refusal or withdrawal by any guardian wins",
    )


class Purpose(models.Model):
    """What consent is asked for, per organisation (e.g. live video lessons scheduled by the school)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="consent_purposes")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80)
    guardians_rule = models.CharField(
        "rule for several guardians",
        max_length=40,
        choices=GuardiansRule.choices,
        default=GuardiansRule.ANY_MAY_CONSENT_REFUSAL_WINS,
    )
    reminder_interval_days = models.PositiveSmallIntegerField(
        "days between reminders", default=7,
        validators=[MinValueValidator(1), MaxValueValidator(60)],
    )
    max_reminders = models.PositiveSmallIntegerField(
        "reminders at most", default=3, validators=[MaxValueValidator(10)],
        help_text="After the first request; 0 sends no reminders.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organisation__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "slug"], name="purpose_slug_unique_in_org"),
        ]

    def __str__(self) -> str:
        return self.name

    def current_notice(self) -> "Notice | None":
        """The newest published notice: the one parents consent to today."""
        return self.notices.filter(published_at__isnull=False).order_by("-version").first()


class NoticeQuerySet(models.QuerySet):
    # Bulk writes bypass save() and delete(): refuse them whenever a published notice is in the set.
    def update(self, **kwargs):
        if self.filter(published_at__isnull=False).exists():
            raise TypeError("A published notice never changes: write a new version.")
        return super().update(**kwargs)

    def delete(self):
        if self.filter(published_at__isnull=False).exists():
            raise TypeError("A published notice is evidence and is never deleted.")
        return super().delete()


class Notice(models.Model):
    """The parent letter, the meeting protocol and the privacy notice, as one versioned document.

    A draft is edited freely; `consent.services.notice_publish` numbers it, hashes it and freezes it.
    Consent events point at the exact version the parent read, with its hash copied beside it.
    """

    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="notices")
    version = models.PositiveIntegerField(null=True, blank=True, editable=False)
    letter = models.TextField(blank=True)
    protocol = models.TextField(blank=True)
    privacy_notice = models.TextField(blank=True)
    material_change = models.BooleanField(default=False, editable=False)
    renewal_deadline = models.DateField(
        null=True, blank=True, help_text="For a material change: earlier consents lapse after this day."
    )
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    sha256 = models.CharField("SHA-256", max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = NoticeQuerySet.as_manager()

    class Meta:
        ordering = ["purpose", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["purpose", "version"], name="notice_version_unique_in_purpose",
                condition=Q(version__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} — version {self.version}" if self.version else f"{self.purpose} — draft"

    def save(self, *args, **kwargs):
        # Checked against the stored row, so publishing a draft (draft in the database) is allowed once.
        if not self._state.adding and Notice.objects.filter(pk=self.pk, published_at__isnull=False).exists():
            raise TypeError("A published notice never changes: write a new version.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.is_published:
            raise TypeError("A published notice is evidence and is never deleted.")
        return super().delete(*args, **kwargs)

    @property
    def is_published(self) -> bool:
        return self.published_at is not None

    def canonical_text(self) -> str:
        payload = {"letter": self.letter, "protocol": self.protocol, "privacy_notice": self.privacy_notice}
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def compute_sha256(self) -> str:
        return hashlib.sha256(self.canonical_text().encode()).hexdigest()

    def hash_verifies(self) -> bool:
        return self.is_published and self.sha256 == self.compute_sha256()


class ConsentState(models.TextChoices):
    NONE = "none", "No answer"
    GIVEN = "given", "Consented"
    REFUSED = "refused", "Refused"
    WITHDRAWN = "withdrawn", "Withdrawn"
    LAPSED = "lapsed", "Lapsed"


MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
# Scanned forms and saved emails. The leading bytes are checked too, so a renamed file is refused.
ATTACHMENT_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "pdf": (b"%PDF-",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpg": (b"\xff\xd8\xff",),
    "jpeg": (b"\xff\xd8\xff",),
    "eml": (),  # plain text: any leading bytes, but not a disguised binary (checked below)
}


def validate_evidence_attachment(file) -> None:
    """A scanned paper form or a saved email reply: PDF, PNG, JPEG or .eml, at most 10 MB."""
    max_bytes = getattr(settings, "CONSENT_ATTACHMENT_MAX_BYTES", MAX_ATTACHMENT_BYTES)
    if file.size > max_bytes:
        raise ValidationError(f"The file is larger than {max_bytes // (1024 * 1024)} MB.")
    extension = file.name.rsplit(".", 1)[-1].lower() if "." in file.name else ""
    if extension not in ATTACHMENT_SIGNATURES:
        raise ValidationError("Attach a PDF, PNG or JPEG scan, or a saved email (.eml).")
    position = file.tell() if hasattr(file, "tell") else 0
    file.seek(0)
    head = file.read(16)
    file.seek(position)
    signatures = ATTACHMENT_SIGNATURES[extension]
    if signatures and not head.startswith(signatures):
        raise ValidationError("The file's contents do not match its name.")
    if not signatures and (b"\x00" in head or head.startswith((b"PK\x03\x04", b"%PDF-"))):
        raise ValidationError("The file's contents do not match its name.")


class ConsentEvent(AppendOnlyModel):
    """One decision, or one change the system made (a lapse): the evidence, append-only.

    Who: the guardian, and `recorded_by` when a member of staff recorded it. When: `created_at`, and
    `received_on` for a decision that reached the school by email, paper or phone. How: `channel`.
    To what: the notice version and its hash, copied so that the evidence reads on its own.
    """

    class Kind(models.TextChoices):
        GIVEN = "given", "Consent given"
        REFUSED = "refused", "Consent refused"
        WITHDRAWN = "withdrawn", "Consent withdrawn"
        LAPSED = "lapsed", "Consent lapsed"
        SUPERSEDED = "superseded", "Superseded"

    class Channel(models.TextChoices):
        PARENT_LINK = "parent_link", "Parent's personal link"
        EMAIL_REPLY = "email_reply", "Email reply"
        PAPER_FORM = "paper_form", "Paper form"
        PHONE = "phone", "Phone call"
        SYSTEM = "system", "Gatehouse"

    guardian = models.ForeignKey(Guardian, on_delete=models.PROTECT, related_name="consent_events")
    pupil = models.ForeignKey(Pupil, on_delete=models.PROTECT, related_name="consent_events")
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="consent_events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    notice = models.ForeignKey(Notice, on_delete=models.PROTECT, related_name="consent_events")
    notice_version = models.PositiveIntegerField()
    notice_sha256 = models.CharField("notice SHA-256", max_length=64)
    channel = models.CharField(max_length=20, choices=Channel.choices)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    received_on = models.DateField(null=True, blank=True)
    note = models.TextField(blank=True)
    attachment = models.FileField(
        upload_to="consent/evidence/%Y/%m/", blank=True, validators=[validate_evidence_attachment]
    )
    attestation = models.BooleanField(
        "parental responsibility attested", default=False,
    )
    # Request metadata kept deliberately minimal: a browser family, never an IP address.
    user_agent_family = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)


    class Meta:
        ordering = ["guardian", "pupil", "purpose", "id"]
        indexes = [models.Index(fields=["pupil", "purpose", "id"], name="consent_event_pupil_purpose")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.pupil} by {self.guardian}"

    def audit_repr(self) -> str:
        return f"{self.get_kind_display()}: pupil #{self.pupil_id} by parent or carer #{self.guardian_id}"



class ConsentStatus(models.Model):
    """The current state of one guardian's decision for one pupil and purpose.

    Derived from the events (`consent.services.fold_events`) and written only by the services, in the
    same transaction as the event. It is also the row that sending locks `FOR SHARE` while a
    withdrawal locks it `FOR UPDATE`, so every claim happens strictly before or after a withdrawal.
    """

    guardian = models.ForeignKey(Guardian, on_delete=models.CASCADE, related_name="consent_statuses")
    pupil = models.ForeignKey(Pupil, on_delete=models.CASCADE, related_name="consent_statuses")
    purpose = models.ForeignKey(Purpose, on_delete=models.CASCADE, related_name="consent_statuses")
    state = models.CharField(max_length=20, choices=ConsentState.choices, default=ConsentState.NONE)
    renewal_needed = models.BooleanField(default=False)
    last_event = models.ForeignKey(
        ConsentEvent, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "consent statuses"
        constraints = [
            models.UniqueConstraint(fields=["guardian", "pupil", "purpose"], name="consent_status_unique"),
        ]
        indexes = [models.Index(fields=["purpose", "pupil"], name="consent_status_purpose_pupil")]

    def __str__(self) -> str:
        return f"{self.pupil} / {self.guardian}: {self.get_state_display()}"

    def audit_repr(self) -> str:
        return f"Consent of pupil #{self.pupil_id} by parent or carer #{self.guardian_id}"


# --- Parent links ----------------------------------------------------------------------------------


def _default_give_until():
    return timezone.now() + GuardianLink.GIVE_PERIOD


class GuardianLink(models.Model):
    """A guardian's personal link for one purpose. Only the SHA-256 of its token is stored (promise 8):
    the token itself exists in the email and nowhere else. After `give_until` the link still withdraws
    (promise 5); a revoked link does nothing."""

    GIVE_PERIOD = timedelta(days=30)

    guardian = models.ForeignKey(Guardian, on_delete=models.CASCADE, related_name="links")
    purpose = models.ForeignKey(Purpose, on_delete=models.CASCADE, related_name="guardian_links")
    token_sha256 = models.CharField("token SHA-256", max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    give_until = models.DateTimeField(default=_default_give_until)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Link for {self.guardian} ({self.purpose})"

    def may_give(self, now=None) -> bool:
        return (now or timezone.now()) < self.give_until


# --- Imports from the school's MIS -----------------------------------------------------------------


class ImportRun(models.Model):
    """One uploaded roster: planned (preview), then applied on confirmation, all or nothing.

    The upload is kept, encrypted, so that confirming re-reads and re-plans exactly the file that was
    previewed (the registry may have changed meanwhile); it is erased once the run is applied, failed
    or discarded, and by the retention task after a day in any case.
    """

    class Format(models.TextChoices):
        CSV = "csv", "MIS export (CSV)"
        ONEROSTER = "oneroster", "OneRoster 1.2 bundle (zip)"

    class Status(models.TextChoices):
        INVALID = "invalid", "Has errors"
        PLANNED = "planned", "Ready to confirm"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Importing"
        APPLIED = "applied", "Imported"
        FAILED = "failed", "Failed"
        DISCARDED = "discarded", "Discarded"

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="import_runs")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    format = models.CharField(max_length=20, choices=Format.choices, default=Format.CSV)
    full_import = models.BooleanField(
        default=False, help_text="A full import marks pupils it does not list as left."
    )
    # For a OneRoster bundle that holds several schools: which of them this school is.
    org_sourced_id = models.CharField("school's sourcedId in the bundle", max_length=64, blank=True)
    filename = models.CharField(max_length=255)
    size = models.PositiveIntegerField(default=0)
    sha256 = models.CharField("SHA-256", max_length=64)
    # base64 of the uploaded bytes, encrypted at rest; emptied when the run ends.
    content = EncryptedTextField(blank=True)
    # The preview's per-row actions with the names in the file (JSON), encrypted; emptied with `content`.
    preview = EncryptedTextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PLANNED)
    # Set when confirming found the registry changed since the preview: the summary is the new plan's.
    replanned = models.BooleanField(default=False)
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    failure = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)  # when a worker claimed it (queued → running)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["school", "-created_at"], name="import_run_school_created")]

    def __str__(self) -> str:
        return f"Import of {self.filename} ({self.get_status_display()})"

    def audit_repr(self) -> str:
        return f"Import #{self.pk} of {self.filename}"

    @property
    def is_in_progress(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def has_ended(self) -> bool:
        return self.status in (self.Status.APPLIED, self.Status.FAILED, self.Status.DISCARDED, self.Status.INVALID)


# --- Consent requests and their reminders ------------------------------------------------------------


class ConsentRequest(models.Model):
    """One guardian asked to decide on one notice version: the first email, then capped reminders.

    Every email is an `OutboxMessage` related to this row, so its delivery status shows per guardian.
    `next_reminder_at` is when the reminder task may next write to them; it is cleared when the guardian
    has answered for every child or the purpose's cap is reached (`closed_at`, `closed_reason`).
    """

    class Closed(models.TextChoices):
        ANSWERED = "answered", "Answered"
        CAP_REACHED = "cap_reached", "All reminders sent"
        NO_LONGER_NEEDED = "no_longer_needed", "No longer needed"

    guardian = models.ForeignKey(Guardian, on_delete=models.CASCADE, related_name="consent_requests")
    purpose = models.ForeignKey(Purpose, on_delete=models.CASCADE, related_name="consent_requests")
    notice = models.ForeignKey(Notice, on_delete=models.PROTECT, related_name="consent_requests")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    reminders_sent = models.PositiveSmallIntegerField(default=0)
    next_reminder_at = models.DateTimeField(null=True, blank=True, db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_reason = models.CharField(max_length=20, choices=Closed.choices, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["guardian", "notice"], name="consent_request_once_per_notice"),
        ]

    def __str__(self) -> str:
        return f"Consent request #{self.pk}"


# --- Parents' rights ----------------------------------------------------------------------------------


class RightsRequest(models.Model):
    """A parent's request about the data held on them and their children (GDPR arts. 15–18): access,
    correction, deletion or suppression. The school must answer within one calendar month (`due_on`).

    The guardian is kept by label as well as by key, so that the request's record survives the
    retention schedule's deletion of the guardian.
    """

    class Kind(models.TextChoices):
        ACCESS = "access", "Access (a copy of everything held)"
        CORRECTION = "correction", "Correction"
        DELETION = "deletion", "Deletion"
        SUPPRESSION = "suppression", "Suppression (stop using the data)"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        REFUSED = "refused", "Refused"

    class Channel(models.TextChoices):
        PARENT_LINK = "parent_link", "Parent's personal link"
        EMAIL = "email", "Email"
        LETTER = "letter", "Letter"
        PHONE = "phone", "Phone call"
        IN_PERSON = "in_person", "In person"

    ACTIVE = (Status.OPEN, Status.IN_PROGRESS)

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="rights_requests")
    guardian = models.ForeignKey(
        Guardian, on_delete=models.SET_NULL, null=True, blank=True, related_name="rights_requests"
    )
    guardian_label = models.CharField(max_length=300)
    pupil = models.ForeignKey(Pupil, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    details = EncryptedTextField(blank=True)
    channel = models.CharField(max_length=20, choices=Channel.choices, default=Channel.PARENT_LINK)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    received_at = models.DateTimeField(default=timezone.now)
    due_on = models.DateField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    response = EncryptedTextField(blank=True)
    responded_at = models.DateTimeField(null=True, blank=True)
    responded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["due_on", "received_at"]
        indexes = [models.Index(fields=["school", "status", "due_on"], name="rights_request_queue")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} request #{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    def is_overdue(self, today: date) -> bool:
        return self.is_active and self.due_on < today


# --- Retention ---------------------------------------------------------------------------------------


class RetentionSchedule(models.Model):
    """How long the organisation keeps a leaver's data (design.md, "Rights and retention").

    In `leaver_month` after a pupil leaves (default: the August after), the pupil's and their
    guardians' personal data is erased, except what the consent evidence needs; that evidence is kept
    `evidence_years` more, then deleted with the pupil. Applied daily by `consent.tasks.retention_run`;
    `manage.py retention_apply --dry-run` shows what the next run would do.
    """

    MONTHS = [(n, date(2000, n, 1).strftime("%B")) for n in range(1, 13)]

    organisation = models.OneToOneField(Organisation, on_delete=models.CASCADE, related_name="retention")
    leaver_month = models.PositiveSmallIntegerField(
        "month after leaving when data is erased", choices=MONTHS, default=8,
    )
    evidence_years = models.PositiveSmallIntegerField(
        "years consent evidence is kept after that", default=6,
        validators=[MinValueValidator(1), MaxValueValidator(25)],
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Retention schedule of {self.organisation}"


# --- Maintained figures ------------------------------------------------------------------------------


class ConsentCounts(models.Model):
    """Per school and purpose: how many pupils on roll are in each effective consent state. The home page's
    rows for every school of an organisation read these instead of folding every pupil's status rows.

    Maintained by `consent.counts` in the same transaction as every change to what they count (how they
    stay true is told there); `manage.py consent_counts_rebuild` recounts them. Pupils on roll and "no answer"
    are not stored: the first is counted live, the second is what is left."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="+")
    purpose = models.ForeignKey(Purpose, on_delete=models.CASCADE, related_name="+")
    given = models.PositiveIntegerField(default=0)
    renewal = models.PositiveIntegerField(default=0)
    refused = models.PositiveIntegerField(default=0)
    withdrawn = models.PositiveIntegerField(default=0)
    lapsed = models.PositiveIntegerField(default=0)
    # False only between the row's creation and its first count, inside the transaction that creates it.
    counted = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "consent counts"
        constraints = [models.UniqueConstraint(fields=["school", "purpose"], name="consent_counts_unique")]

    def __str__(self) -> str:
        return f"Consent counts of school #{self.school_id} for purpose #{self.purpose_id}"
