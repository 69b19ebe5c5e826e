from django.contrib import admin

from schools.admin import ReadOnlyScopedAdmin

from .models import Assessment, AssessmentVersion, Hazard, Reminder, ReviewFlag, RiskMatrix


class HazardInline(admin.TabularInline):
    model = Hazard
    extra = 0
    fields = ["position", "activity_element", "hazard", "likelihood", "severity", "rating", "residual_rating"]
    readonly_fields = fields
    can_delete = False


@admin.register(Assessment)
class AssessmentAdmin(ReadOnlyScopedAdmin):
    organisation_path = "organisation"
    list_display = ["title", "school", "organisation", "topic", "review_flagged_at"]
    list_filter = ["organisation", "topic"]
    search_fields = ["title"]


@admin.register(AssessmentVersion)
class AssessmentVersionAdmin(ReadOnlyScopedAdmin):
    """Approved versions are frozen: the register's pages write drafts, the services approve."""

    school_path = "assessment__school"
    organisation_path = "assessment__organisation"
    list_display = ["assessment", "number", "status", "approved_at", "review_on", "sha256"]
    list_filter = ["status"]
    inlines = [HazardInline]


@admin.register(RiskMatrix)
class RiskMatrixAdmin(ReadOnlyScopedAdmin):
    """Changed only on the matrix page, which re-maps the open drafts' scores explicitly."""

    school_path = None
    organisation_path = "organisation"
    list_display = ["organisation", "updated_at"]


@admin.register(Reminder)
class ReminderAdmin(ReadOnlyScopedAdmin):
    school_path = "version__assessment__school"
    list_display = ["stage", "due_on", "sent_at"]
    list_filter = ["stage"]


@admin.register(ReviewFlag)
class ReviewFlagAdmin(ReadOnlyScopedAdmin):
    """Raised by an incident report, cleared by the review on the assessment's page, never here."""

    school_path = "assessment__school"
    organisation_path = "assessment__organisation"
    list_display = ["assessment", "school", "raised_at", "escalated_at", "cleared_at", "outcome"]
    list_filter = ["outcome"]
