import hashlib
import json
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from lib.models import AppendOnlyModel


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a time zone name such as Europe/London.")


class Organisation(models.Model):
    """A federation, trust, district or department: the data controller's umbrella over schools."""

    class Kind(models.TextChoices):
        FEDERATION = "federation", "Federation"
        TRUST = "trust", "Trust"
        DISTRICT = "district", "District"
        DEPARTMENT = "department", "Department of education"
        OTHER = "other", "Other"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.FEDERATION)
    time_zone = models.CharField(max_length=64, default="Europe/London", validators=[validate_time_zone])
    # Scheduling a lesson that fewer than this share of its children may attend asks for a confirmation,
    # and the lesson's page keeps a warning.
    coverage_warning_percent = models.PositiveSmallIntegerField(
        "warn below this share of children with consent (%)", default=50,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
    )
    # The daily digest goes out at this hour, in each school's own time zone.
    digest_hour = models.PositiveSmallIntegerField(
        "hour of the daily digest", default=7, validators=[MinValueValidator(0), MaxValueValidator(23)],
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class School(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="schools")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80)
    time_zone = models.CharField(max_length=64, default="Europe/London", validators=[validate_time_zone])
    contact_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "slug"], name="school_slug_unique_in_org"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class Role(models.TextChoices):
    HEADTEACHER = "headteacher", "Headteacher"
    TEACHER = "teacher", "Teacher"
    OFFICE = "office", "Office / data manager"
    DPO = "dpo", "Data Protection Officer"
    SIRO = "siro", "Senior Information Risk Owner"
    ORG_ADMIN = "org_admin", "Organisation admin"


SCHOOL_ROLES = frozenset({Role.HEADTEACHER, Role.TEACHER, Role.OFFICE})
ORGANISATION_ROLES = frozenset({Role.DPO, Role.SIRO, Role.ORG_ADMIN})
# Roles that sign or approve, or administer: a second factor is mandatory for them.
TWO_FACTOR_ROLES = frozenset({Role.HEADTEACHER, Role.DPO, Role.SIRO, Role.ORG_ADMIN})
ALL_ROLES = SCHOOL_ROLES | ORGANISATION_ROLES


class Membership(models.Model):
    """A staff member's role at one school, or across one organisation (DPO, SIRO, org admin).

    `organisation` is always set (for a school role it is the school's), so that organisation-wide
    queries need no join through schools.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    school = models.ForeignKey(
        School, on_delete=models.CASCADE, related_name="memberships", null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organisation__name", "school__name", "role"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(role__in=sorted(SCHOOL_ROLES), school__isnull=False)
                    | Q(role__in=sorted(ORGANISATION_ROLES), school__isnull=True)
                ),
                name="membership_role_matches_level",
            ),
            models.UniqueConstraint(
                fields=["user", "role", "school"], name="membership_unique_school_role",
                condition=Q(school__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["user", "role", "organisation"], name="membership_unique_org_role",
                condition=Q(school__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} at {self.school or self.organisation}"

    @property
    def is_organisation_wide(self) -> bool:
        return self.school_id is None


class AuditEntry(AppendOnlyModel):
    """One state change, by anyone. Append-only and hash-chained: each entry's hash covers its own
    fields and the previous entry's hash, so an edited or deleted row breaks the chain from there on
    (`manage.py audit_verify` names the first broken entry).

    Actor, school and organisation are kept as plain values, not foreign keys, so that deleting a user
    or a school never rewrites history.
    """

    class ActorKind(models.TextChoices):
        STAFF = "staff", "Staff"
        GUARDIAN = "guardian", "Parent or carer"
        SYSTEM = "system", "Gatehouse"

    seq = models.PositiveBigIntegerField(unique=True, editable=False)
    created_at = models.DateTimeField(editable=False, db_index=True)
    actor_kind = models.CharField(max_length=10, choices=ActorKind.choices)
    actor_id = models.PositiveBigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=300)
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=300, blank=True)
    organisation_id = models.PositiveBigIntegerField(null=True, blank=True)
    school_id = models.PositiveBigIntegerField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-seq"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["school_id", "-seq"], name="audit_school_seq"),
            models.Index(fields=["organisation_id", "-seq"], name="audit_org_seq"),
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_label}"

    @property
    def object_is_actor(self) -> bool:
        """A sign-in is about the person signing in: no need to name them twice."""
        return self.object_type == "accounts.user" and self.object_id == str(self.actor_id)

    def compute_hash(self) -> str:
        payload = {
            "seq": self.seq,
            "created_at": self.created_at.isoformat(),
            "actor_kind": self.actor_kind,
            "actor_id": self.actor_id,
            "actor_label": self.actor_label,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "object_repr": self.object_repr,
            "organisation_id": self.organisation_id,
            "school_id": self.school_id,
            "data": self.data,
            "prev_hash": self.prev_hash,
        }
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


class Digest(models.Model):
    """One person's daily digest for one day of their time zone (`schools.digest`). At most one a day, by the
    unique constraint; recorded even when there was nothing to tell (`sent` false), so that the dispatcher does
    not ask again that day. The email itself is in the outbox, related to this row."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="digests")
    day = models.DateField()
    created_at = models.DateTimeField(default=timezone.now)
    changes = models.PositiveIntegerField(default=0)  # notices listed under "What changed"
    needs_you = models.PositiveIntegerField(default=0)  # lines listed under "Needs you"
    sent = models.BooleanField(default=False)

    class Meta:
        ordering = ["-day", "user"]
        constraints = [models.UniqueConstraint(fields=["user", "day"], name="digest_once_per_person_and_day")]

    def __str__(self) -> str:
        return f"Daily digest of {self.day:%-d %B %Y} for {self.user}"


class DigestItem(models.Model):
    """Something one person is to hear of: in their next daily digest as news, or at once by email (then
    `told_at` is set and the digest lists it as already told). `digest` is the digest that carried it; until
    then it is pending. Written by the services where the thing happens (`schools.notices`)."""

    class Kind(models.TextChoices):
        GATE_RED = "gate_red", "A lesson cannot go ahead"
        INCIDENT = "incident", "An incident was reported"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="digest_items")
    school = models.ForeignKey(School, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # What it is about (a session, an incident), as the outbox and the audit trail name objects.
    related_type = models.CharField(max_length=100, blank=True)
    related_id = models.CharField(max_length=64, blank=True)
    title = models.CharField(max_length=300)
    text = models.CharField(max_length=500, blank=True)
    path = models.CharField(max_length=300, blank=True)  # a page of the site; the email puts SITE_URL in front
    created_at = models.DateTimeField(default=timezone.now)
    told_at = models.DateTimeField(null=True, blank=True)
    # Deleting a digest deletes what it carried: an item must never fall back to pending and be told twice.
    digest = models.ForeignKey(Digest, on_delete=models.CASCADE, null=True, blank=True, related_name="items")

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["user", "created_at"], condition=Q(digest__isnull=True), name="digest_item_pending"),
            models.Index(fields=["related_type", "related_id"], name="digest_item_related"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.title}"
