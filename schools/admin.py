from django.contrib import admin
from django_otp.admin import OTPAdminSite

from .audit import audit_log
from .models import AuditEntry, Membership, Organisation, School
from .scope import build_scope

# The admin asks for a verified second factor, like every page that can change data.
admin.site.__class__ = OTPAdminSite
admin.site.site_header = "Gatehouse administration"
admin.site.site_title = "Gatehouse admin"


class AuditedAdmin(admin.ModelAdmin):
    """Changes made in the admin reach the audit trail like any other state change."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit_log(actor=request.user, action="admin.changed" if change else "admin.added", obj=obj,
                  data={"fields": sorted(form.changed_data)})

    def delete_model(self, request, obj):
        audit_log(actor=request.user, action="admin.deleted", obj=obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            audit_log(actor=request.user, action="admin.deleted", obj=obj)
        super().delete_queryset(request, queryset)


class ScopedAdmin(AuditedAdmin):
    """Superusers see everything; any other admin user sees only their own schools' rows."""

    school_path: str | None = "school"
    organisation_path: str | None = None

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return build_scope(request.user).filter(
            queryset, school_path=self.school_path, organisation_path=self.organisation_path
        )


class ReadOnlyScopedAdmin(ScopedAdmin):
    """Evidence and records the app's own pages write: readable here, changed only by the services."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Organisation)
class OrganisationAdmin(ScopedAdmin):
    school_path = None
    organisation_path = "pk"
    list_display = ["name", "kind", "time_zone", "digest_hour"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(School)
class SchoolAdmin(ScopedAdmin):
    school_path = "pk"
    list_display = ["name", "organisation", "time_zone"]
    list_filter = ["organisation"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Membership)
class MembershipAdmin(ScopedAdmin):
    organisation_path = "organisation"
    list_display = ["user", "role", "school", "organisation"]
    list_filter = ["role", "organisation"]
    search_fields = ["user__email", "user__last_name"]
    autocomplete_fields = ["user"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is append-only, even for superusers."""

    list_display = ["seq", "created_at", "actor_label", "action", "object_repr"]
    list_filter = ["action", "actor_kind"]
    search_fields = ["actor_label", "object_repr", "action"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        scope = build_scope(request.user)
        return queryset.filter(school_id__in=scope.school_ids)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
