from django.contrib import admin

from schools.admin import ReadOnlyScopedAdmin, ScopedAdmin
from schools.models import School

from .counts import counts_recount_school
from .models import (
    ConsentEvent,
    ConsentRequest,
    ConsentStatus,
    Group,
    Guardian,
    GuardianLink,
    Guardianship,
    ImportRun,
    Notice,
    Pupil,
    Purpose,
    RetentionSchedule,
    RightsRequest,
)


class RecountsConsentCounts:
    """Pupils and guardianships changed here change what `consent.counts` counts: recount their school."""

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        counts_recount_school(school=form.instance.school)

    def delete_model(self, request, obj):
        school = obj.school
        super().delete_model(request, obj)
        counts_recount_school(school=school)

    def delete_queryset(self, request, queryset):
        schools = list(School.objects.filter(pk__in=queryset.values("school_id")))
        super().delete_queryset(request, queryset)
        for school in schools:
            counts_recount_school(school=school)


class GuardianshipInline(admin.TabularInline):
    model = Guardianship
    extra = 0
    raw_id_fields = ["guardian", "pupil"]


@admin.register(Pupil)
class PupilAdmin(RecountsConsentCounts, ScopedAdmin):
    list_display = ["last_name", "first_name", "school", "year_group", "left_on"]
    list_filter = ["school", "year_group"]
    search_fields = ["last_name", "first_name", "mis_id"]
    inlines = [GuardianshipInline]


@admin.register(Guardian)
class GuardianAdmin(RecountsConsentCounts, ScopedAdmin):
    list_display = ["last_name", "first_name", "email", "school"]
    list_filter = ["school"]
    search_fields = ["last_name", "first_name", "email", "mis_id"]
    inlines = [GuardianshipInline]


@admin.register(Group)
class GroupAdmin(ScopedAdmin):
    list_display = ["name", "kind", "school"]
    list_filter = ["school", "kind"]
    search_fields = ["name"]
    filter_horizontal = ["pupils"]


@admin.register(Purpose)
class PurposeAdmin(ScopedAdmin):
    school_path = None
    organisation_path = "organisation"
    list_display = ["name", "organisation", "reminder_interval_days", "max_reminders"]
    list_filter = ["organisation"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Notice)
class NoticeAdmin(ReadOnlyScopedAdmin):
    school_path = None
    organisation_path = "purpose__organisation"
    list_display = ["purpose", "version", "published_at", "material_change", "renewal_deadline", "sha256"]
    list_filter = ["purpose__organisation", "material_change"]


@admin.register(ConsentEvent)
class ConsentEventAdmin(ReadOnlyScopedAdmin):
    school_path = "pupil__school"
    list_display = ["created_at", "kind", "pupil", "guardian", "channel", "notice_version", "recorded_by"]
    list_filter = ["kind", "channel", "pupil__school"]
    search_fields = ["pupil__last_name", "guardian__last_name"]
    raw_id_fields = ["pupil", "guardian", "notice"]


@admin.register(ConsentStatus)
class ConsentStatusAdmin(ReadOnlyScopedAdmin):
    school_path = "pupil__school"
    list_display = ["pupil", "guardian", "purpose", "state", "renewal_needed", "updated_at"]
    list_filter = ["state", "renewal_needed", "pupil__school"]
    search_fields = ["pupil__last_name", "guardian__last_name"]


@admin.register(GuardianLink)
class GuardianLinkAdmin(ReadOnlyScopedAdmin):
    """Only the token's hash is stored: nothing here opens a parent's page."""

    school_path = "guardian__school"
    list_display = ["guardian", "purpose", "created_at", "give_until", "revoked_at"]
    list_filter = ["purpose"]
    exclude = ["token_sha256"]


@admin.register(ConsentRequest)
class ConsentRequestAdmin(ReadOnlyScopedAdmin):
    school_path = "guardian__school"
    list_display = ["guardian", "notice", "created_at", "reminders_sent", "next_reminder_at", "closed_reason"]
    list_filter = ["closed_reason"]


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyScopedAdmin):
    list_display = ["created_at", "school", "filename", "format", "status", "uploaded_by"]
    list_filter = ["status", "format", "school"]
    exclude = ["content", "preview"]


@admin.register(RightsRequest)
class RightsRequestAdmin(ReadOnlyScopedAdmin):
    list_display = ["received_at", "school", "kind", "status", "due_on", "responded_at"]
    list_filter = ["kind", "status", "school"]
    exclude = ["details", "response"]


@admin.register(RetentionSchedule)
class RetentionScheduleAdmin(ScopedAdmin):
    school_path = None
    organisation_path = "organisation"
    list_display = ["organisation", "leaver_month", "evidence_years", "updated_at"]
