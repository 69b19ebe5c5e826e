"""The PIA models in the admin: readable (within the admin user's scope), never written there.

Every change goes through the pages and their services, which keep the sign-off chain, the audit trail and
the frozen signed versions intact; a signed PIA cannot be edited through the admin either.
"""

from django.contrib import admin

from schools.admin import ReadOnlyScopedAdmin

from .models import (
    Action,
    ActionCompletion,
    ActionReminder,
    Consultation,
    DataItem,
    Decision,
    Notification,
    Pia,
    PiaVersion,
    Platform,
    PrivacyRisk,
    SeenSnapshot,
)

VERSION_SCOPE = {"school_path": "pia__school", "organisation_path": "pia__organisation"}


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class DataItemInline(ReadOnlyInline):
    model = DataItem
    fields = ["position", "data_type", "examples", "platform_uses"]


class ConsultationInline(ReadOnlyInline):
    model = Consultation
    fields = ["held_on", "kind", "description"]


class PrivacyRiskInline(ReadOnlyInline):
    model = PrivacyRisk
    fields = ["position", "privacy_issue", "likelihood", "severity", "rating", "solution", "result"]


class ActionInline(ReadOnlyInline):
    model = Action
    fields = ["position", "action", "due_on", "due_note", "responsibility", "responsible_user"]


class DecisionInline(ReadOnlyInline):
    model = Decision
    fields = ["kind", "name", "role", "decided_at", "sha256"]


@admin.register(Pia)
class PiaAdmin(ReadOnlyScopedAdmin):
    organisation_path = "organisation"
    list_display = ["title", "school", "organisation", "created_at"]
    list_filter = ["organisation"]
    search_fields = ["title"]


@admin.register(PiaVersion)
class PiaVersionAdmin(ReadOnlyScopedAdmin):
    """Drafts are written on the PIA pages; the sign-off services submit, decide, sign and supersede."""

    school_path = VERSION_SCOPE["school_path"]
    organisation_path = VERSION_SCOPE["organisation_path"]
    list_display = ["pia", "number", "status", "submitted_at", "signed_at", "review_on", "sha256"]
    list_filter = ["status"]
    search_fields = ["pia__title"]
    inlines = [DataItemInline, ConsultationInline, PrivacyRiskInline, ActionInline, DecisionInline]
    # Shown although not editable anywhere: what a reader of a signed version checks.
    readonly_fields = ["created_at", "signed_at", "sha256", "snapshot_verifies", "pdf_sha256"]

    @admin.display(boolean=True, description="hash verifies")
    def snapshot_verifies(self, obj: PiaVersion) -> bool | None:
        return obj.hash_verifies() if obj.snapshot else None


@admin.register(Decision)
class DecisionAdmin(ReadOnlyScopedAdmin):
    school_path = "version__pia__school"
    organisation_path = "version__pia__organisation"
    list_display = ["version", "kind", "name", "role", "decided_at", "sha256"]
    list_filter = ["kind"]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyScopedAdmin):
    school_path = "version__pia__school"
    organisation_path = "version__pia__organisation"
    list_display = ["version", "stage", "round", "sent_at"]
    list_filter = ["stage"]


@admin.register(SeenSnapshot)
class SeenSnapshotAdmin(ReadOnlyScopedAdmin):
    organisation_path = "pia__organisation"
    school_path = "pia__school"
    list_display = ["pia", "user", "version_number", "seen_at"]


@admin.register(ActionCompletion)
class ActionCompletionAdmin(ReadOnlyScopedAdmin):
    school_path = "action__version__pia__school"
    organisation_path = "action__version__pia__organisation"
    list_display = ["action", "done_on", "done_by", "recorded_at"]


@admin.register(ActionReminder)
class ActionReminderAdmin(ReadOnlyScopedAdmin):
    school_path = "action__version__pia__school"
    organisation_path = "action__version__pia__organisation"
    list_display = ["action", "stage", "due_on", "sent_at"]
    list_filter = ["stage"]


@admin.register(Platform)
class PlatformAdmin(ReadOnlyScopedAdmin):
    school_path = None
    organisation_path = "organisation"
    list_display = ["name", "kind", "organisation", "pia"]
    list_filter = ["kind", "organisation"]
