"""Privacy impact assessments, following the ICO's method as the seed's PIA does.

A `Pia` is the register entry ("Zoom", for the federation or one school). Its content lives in numbered
`PiaVersion`s. The author edits a draft (and a version returned with changes requested); once submitted
it is frozen for the sign-off chain: the DPO advises (`Decision` kind "dpo_advice") or requests changes,
the data controller (the headteacher) accepts the advice or overrules it with reasons, the SIRO signs.
Each decision records who, when, and the SHA-256 of the snapshot it was made on. The signed version keeps
its snapshot and hash and never changes again: `revise` starts the next version, and signing that one
supersedes it.

The screening and the GDPR principle answers are small fixed questionnaires (`pia.questions`), kept as
JSON keyed by question; the tables of the form (data inventory, consultations, risks with their solutions,
actions) are rows.
"""

import hashlib
import json

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from schools.models import Organisation, School


class FrozenError(TypeError):
    """An edit of a version that is no longer editable (submitted, in sign-off, signed or superseded)."""


class Pia(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="pias")
    school = models.ForeignKey(
        School, on_delete=models.PROTECT, null=True, blank=True, related_name="pias",
        help_text="Empty for a PIA that covers every school of the organisation.",
    )
    title = models.CharField("project title", max_length=200)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["organisation__name", "school__name", "title"]
        verbose_name = "privacy impact assessment"

    def __str__(self) -> str:
        return self.title


class VersionQuerySet(models.QuerySet):
    # Bulk writes bypass save() and delete(): a signed or superseded version in the set refuses them, and only
    # drafts never submitted are deleted (as `PiaVersion.delete` says).
    def update(self, **kwargs):
        if self.filter(status__in=PiaVersion.FROZEN_FOR_GOOD).exists():
            raise FrozenError("A signed PIA never changes: revise it to start a new version.")
        return super().update(**kwargs)

    def delete(self):
        if self.exclude(status=PiaVersion.Status.DRAFT).exists():
            raise FrozenError("Only a draft that was never submitted can be deleted.")
        return super().delete()


class PiaVersion(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Waiting for the DPO's advice"
        CHANGES_REQUESTED = "changes_requested", "Changes requested by the DPO"
        ADVISED = "advised", "Waiting for the data controller"
        DECIDED = "decided", "Waiting for the SIRO"
        SIGNED = "signed", "Signed"
        SUPERSEDED = "superseded", "Superseded"

    # The author edits these; every other status is frozen for sign-off or for good.
    EDITABLE = (Status.DRAFT, Status.CHANGES_REQUESTED)
    OPEN = (Status.DRAFT, Status.SUBMITTED, Status.CHANGES_REQUESTED, Status.ADVISED, Status.DECIDED)
    FROZEN_FOR_GOOD = (Status.SIGNED, Status.SUPERSEDED)
    # What the chain writes on a version in sign-off (`PiaVersion.save` refuses anything else).
    SIGN_OFF_FIELDS = frozenset({"status", "submitted_at", "submitted_by", "signed_at", "snapshot", "sha256"})

    pia = models.ForeignKey(Pia, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    # The form's header.
    division = models.CharField("school / division / team", max_length=200, blank=True)
    lead_officer = models.CharField("lead / contact officer", max_length=200, blank=True)
    review_on = models.DateField("review date", null=True, blank=True)

    # Screening: {question key: {"answer": "yes" | "no" | "", "note": str}} (pia.questions.SCREENING).
    screening = models.JSONField(default=dict, blank=True)

    # Step one: the need.
    aims = models.TextField("what the project aims to achieve", blank=True)
    benefits_organisation = models.TextField("benefits to the organisation", blank=True)
    benefits_individuals = models.TextField("benefits to individuals", blank=True)
    benefits_others = models.TextField("benefits to other parties", blank=True)
    related_documents = models.TextField("other relevant documents", blank=True)
    need_reason = models.TextField("why the need for a PIA was identified", blank=True)

    # Step two: information flows (the number affected is computed from the registry, and frozen in
    # the snapshot at each decision).
    collection = models.TextField(blank=True)
    use = models.TextField(blank=True)
    deletion = models.TextField(blank=True)
    flow_description = models.TextField("flow description", blank=True)

    # Consultation.
    risks_identified = models.TextField("practical steps to ensure that risks are identified", blank=True)
    risks_addressed = models.TextField("practical steps to ensure that privacy risks are addressed", blank=True)
    internal_consultees = models.TextField("internal consultation with", blank=True)
    external_consultees = models.TextField("external consultation with", blank=True)
    consultation_method = models.TextField("consultation methodology", blank=True)

    # Step six: who to contact about privacy concerns in future.
    contact_point = models.TextField("contact point for future privacy concerns", blank=True)

    # GDPR principles: {question key: answer} (pia.questions.PRINCIPLES).
    principles = models.JSONField(default=dict, blank=True)

    # The likelihood × severity matrix the risks were scored on (riskassess Matrix.as_dict).
    matrix = models.JSONField()

    submitted_at = models.DateTimeField(null=True, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    signed_at = models.DateTimeField(null=True, blank=True)
    # The signed version's frozen content and its hash; each decision also hashes what it was made on.
    snapshot = models.JSONField(null=True, blank=True, editable=False)
    sha256 = models.CharField("SHA-256", max_length=64, blank=True, editable=False)
    # The signed version's PDF, rendered once and kept as it was, with its own hash.
    pdf = models.FileField(upload_to="pia/pdf/%Y/", blank=True, editable=False)
    pdf_sha256 = models.CharField("PDF SHA-256", max_length=64, blank=True, editable=False)
    # {step key: SHA-256 of the step's content}, taken at submission (the content is frozen from then on), so the
    # DPO's queue tells what changed without rebuilding every snapshot.
    step_hashes = models.JSONField(default=dict, blank=True, editable=False)

    objects = VersionQuerySet.as_manager()

    class Meta:
        ordering = ["pia", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["pia", "number"], name="pia_version_number_unique"),
            models.UniqueConstraint(fields=["pia"], condition=Q(status="signed"), name="pia_one_signed_version"),
            models.UniqueConstraint(
                fields=["pia"],
                condition=Q(status__in=["draft", "submitted", "changes_requested", "advised", "decided"]),
                name="pia_one_open_version",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pia} — version {self.number} ({self.get_status_display()})"

    def save(self, *args, **kwargs):
        if self.pk:
            self._check_write(kwargs.get("update_fields"))
        super().save(*args, **kwargs)

    def _check_write(self, update_fields) -> None:
        """Let through only the writes the sign-off makes once a version left the author's hands.

        In sign-off (submitted, advised, decided) only the moves of the chain: its status, and at signing the
        time, the snapshot and its hash. Once signed: signed → superseded, and storing the PDF once. Superseded:
        nothing."""
        stored = type(self).objects.filter(pk=self.pk).values("status", "pdf").first()
        if stored is None or stored["status"] in self.EDITABLE:
            return
        fields = set(update_fields or ())
        status = stored["status"]
        if status in (self.Status.SUBMITTED, self.Status.ADVISED, self.Status.DECIDED):
            if fields and fields <= self.SIGN_OFF_FIELDS:
                return
            raise FrozenError("This version is in sign-off: its content cannot change.")
        if status == self.Status.SIGNED:
            if fields == {"status"} and self.status == self.Status.SUPERSEDED:
                return
            if fields and fields <= {"pdf", "pdf_sha256"} and not stored["pdf"]:
                return
        raise FrozenError("A signed PIA never changes: revise it to start a new version.")

    def delete(self, *args, **kwargs):
        if self.status != self.Status.DRAFT:
            raise FrozenError("Only a draft that was never submitted can be deleted.")
        return super().delete(*args, **kwargs)

    @property
    def is_editable(self) -> bool:
        return self.status in self.EDITABLE

    @property
    def is_frozen_for_good(self) -> bool:
        return self.status in self.FROZEN_FOR_GOOD

    def get_matrix(self):
        from riskassess.matrix import Matrix

        return Matrix.from_dict(self.matrix)

    @staticmethod
    def hash_of(snapshot: dict) -> str:
        canonical = json.dumps(snapshot, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def hash_verifies(self) -> bool:
        return bool(self.snapshot) and self.sha256 == self.hash_of(self.snapshot)

    def is_out_of_date(self, today=None) -> bool:
        today = today or timezone.localdate()
        return self.review_on is not None and self.review_on < today

class RowQuerySet(models.QuerySet):
    # Bulk writes bypass save() and delete(): refuse them whenever a row of a frozen version is in the set.
    def _check_editable(self) -> None:
        if self.exclude(version__status__in=PiaVersion.EDITABLE).exists():
            raise FrozenError("This version of the PIA is frozen: its rows cannot change.")

    def update(self, **kwargs):
        self._check_editable()
        return super().update(**kwargs)

    def delete(self):
        self._check_editable()
        return super().delete()

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        version_ids = {obj.version_id for obj in objs}
        if version_ids and PiaVersion.objects.filter(pk__in=version_ids).exclude(
                status__in=PiaVersion.EDITABLE).exists():
            raise FrozenError("This version of the PIA is frozen: rows cannot be added to it.")
        return super().bulk_create(objs, *args, **kwargs)


class _VersionRow(models.Model):
    """A row of one of the form's tables: written only while its version is editable."""

    position = models.PositiveIntegerField(default=0)

    objects = RowQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["version", "position", "id"]

    def save(self, *args, **kwargs):
        self._check_editable()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        self._check_editable()
        return super().delete(*args, **kwargs)

    def _check_editable(self) -> None:
        status = PiaVersion.objects.filter(pk=self.version_id).values_list("status", flat=True).first()
        if status is not None and status not in PiaVersion.EDITABLE:
            raise FrozenError("This version of the PIA is frozen: its rows cannot change.")


class DataItem(_VersionRow):
    """The platform's data inventory (the seed's Zoom table): type of data, examples, what it is used for."""

    version = models.ForeignKey(PiaVersion, on_delete=models.CASCADE, related_name="data_items")
    data_type = models.CharField("type of data", max_length=300)
    examples = models.TextField(blank=True)
    platform_uses = models.TextField("what the platform uses it for", blank=True)

    def __str__(self) -> str:
        return self.data_type


class Consultation(_VersionRow):
    """A dated consultation (staff meeting 19.05.2020; email exchange with the DPO 21.05.2020)."""

    class Kind(models.TextChoices):
        INTERNAL = "internal", "Internal"
        EXTERNAL = "external", "External"

    version = models.ForeignKey(PiaVersion, on_delete=models.CASCADE, related_name="consultations")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    held_on = models.DateField("date")
    description = models.CharField(max_length=300)

    class Meta(_VersionRow.Meta):
        ordering = ["version", "held_on", "position", "id"]

    def __str__(self) -> str:
        return self.description


class PrivacyRisk(_VersionRow):
    """Step three (the risk, scored on the organisation's matrix) with its step four solution."""

    class Result(models.TextChoices):
        ELIMINATED = "eliminated", "Eliminated"
        REDUCED = "reduced", "Reduced"
        ACCEPTED = "accepted", "Accepted"

    version = models.ForeignKey(PiaVersion, on_delete=models.CASCADE, related_name="risks")
    privacy_issue = models.TextField()
    risk_to_individuals = models.TextField(blank=True)
    compliance_risk = models.TextField(blank=True)
    organisational_risk = models.TextField("associated organisation / corporate risk", blank=True)
    likelihood = models.PositiveSmallIntegerField()
    severity = models.PositiveSmallIntegerField()
    rating = models.PositiveSmallIntegerField(editable=False)
    # Step four.
    solution = models.TextField(blank=True)
    result = models.CharField(max_length=10, choices=Result.choices, blank=True)
    evaluation = models.TextField(
        blank=True, help_text="Is the final impact on individuals a justified, compliant and proportionate "
                              "response to the aims of the project?",
    )

    def __str__(self) -> str:
        return self.privacy_issue[:80]


class Action(_VersionRow):
    """Step six: integrating the outcomes into the project plan."""

    version = models.ForeignKey(PiaVersion, on_delete=models.CASCADE, related_name="actions")
    action = models.TextField("action to be taken")
    due_on = models.DateField("date for completion", null=True, blank=True)
    due_note = models.CharField("or when", max_length=100, blank=True, help_text='e.g. "On release", "Immediately"')
    responsibility = models.CharField("responsibility for action", max_length=200, blank=True)
    responsible_user = models.ForeignKey(
        # PROTECT: deleting the user must not rewrite a signed version's rows (deactivate them instead).
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="pia_actions",
        help_text="The member of staff reminded of this action.",
    )

    def __str__(self) -> str:
        return self.action[:80]


class ActionCompletion(models.Model):
    """An action marked done. Kept apart from the (frozen) signed version it belongs to."""

    action = models.OneToOneField(Action, on_delete=models.CASCADE, related_name="completion")
    done_on = models.DateField()
    done_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.action} done on {self.done_on}"



class DecisionQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise FrozenError("A decision is a record and never changes.")

    def delete(self):
        raise FrozenError("A decision is a record and is never deleted.")


class Decision(models.Model):
    """One step of the sign-off chain, bound to the account that made it after "confirm it's you"."""

    class Kind(models.TextChoices):
        DPO_ADVICE = "dpo_advice", "DPO advice"
        CHANGES_REQUESTED = "changes_requested", "Changes requested by the DPO"
        CONTROLLER_ACCEPTED = "controller_accepted", "Data controller accepted the DPO's advice"
        CONTROLLER_OVERRULED = "controller_overruled", "Data controller overruled the DPO's advice"
        SIRO_SIGNED = "siro_signed", "Signed by the SIRO"

    version = models.ForeignKey(PiaVersion, on_delete=models.PROTECT, related_name="decisions")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # As they were at the time: names and roles change, the record does not.
    name = models.CharField(max_length=200)
    role = models.CharField(max_length=100)
    comments = models.TextField(blank=True, help_text="The advice, or the reasons for overruling it.")
    # {step key: comment} — the DPO's comments per step (pia.questions.STEPS).
    step_comments = models.JSONField(default=dict, blank=True)
    decided_at = models.DateTimeField(default=timezone.now)
    sha256 = models.CharField("SHA-256 of the snapshot decided on", max_length=64)

    objects = DecisionQuerySet.as_manager()

    class Meta:
        ordering = ["version", "decided_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} — {self.name}"

    def save(self, *args, **kwargs):
        if self.pk:
            raise FrozenError("A decision is a record and never changes.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise FrozenError("A decision is a record and is never deleted.")


class SeenSnapshot(models.Model):
    """What a reviewer (the DPO) last saw of a PIA, so their queue can show what changed since."""

    pia = models.ForeignKey(Pia, on_delete=models.CASCADE, related_name="seen")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    version_number = models.PositiveIntegerField()
    snapshot = models.JSONField()
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pia", "user"], name="pia_seen_once_per_user")]

    def __str__(self) -> str:
        return f"{self.pia} seen at version {self.version_number}"



class Notification(models.Model):
    """An email already sent about a version waiting for someone: once per version and stage."""

    version = models.ForeignKey(PiaVersion, on_delete=models.CASCADE, related_name="notifications")
    stage = models.CharField(max_length=20, choices=PiaVersion.Status.choices)
    # The round: a version returned with changes and submitted again waits for the DPO a second time.
    round = models.PositiveSmallIntegerField(default=1)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "stage", "round"], name="pia_notification_once_per_stage"),
        ]

    def __str__(self) -> str:
        return f"{self.version}: {self.stage} (round {self.round})"



class ActionReminder(models.Model):
    """An action-plan reminder already sent: once per action, stage and due date."""

    class Stage(models.TextChoices):
        DUE_SOON = "due_soon", "Action due soon"
        OVERDUE = "overdue", "Action overdue"

    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="reminders")
    stage = models.CharField(max_length=10, choices=Stage.choices)
    due_on = models.DateField()
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["action", "stage", "due_on"], name="pia_action_reminder_once"),
        ]

    def __str__(self) -> str:
        return f"{self.get_stage_display()} ({self.due_on})"



class Platform(models.Model):
    """A video platform an organisation uses; approved only while its PIA is signed and in date."""

    class Kind(models.TextChoices):
        ZOOM = "zoom", "Zoom"
        TEAMS = "teams", "Microsoft Teams"
        WEBEX = "webex", "Webex"
        BIGBLUEBUTTON = "bigbluebutton", "BigBlueButton"
        JITSI = "jitsi", "Jitsi Meet"
        OTHER = "other", "Other"

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="platforms")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    pia = models.ForeignKey(
        Pia, on_delete=models.PROTECT, null=True, blank=True, related_name="platforms",
        help_text="The PIA whose signed, in-date version approves this platform.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["organisation__name", "name"]
        constraints = [models.UniqueConstraint(fields=["organisation", "name"], name="platform_name_unique")]

    def __str__(self) -> str:
        return self.name
