from django.contrib import admin

from .models import OutboxMessage


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    """Read-only, and without the bodies: they hold parents' personal links and meeting passwords."""

    list_display = ("id", "created_at", "recipient", "subject", "template", "status", "attempts", "sent_at",
                    "possible_duplicate")
    list_filter = ("status", "template")
    search_fields = ("recipient", "message_id", "subject")
    date_hierarchy = "created_at"
    fields = ("school", "organisation", "template", "recipient", "subject", "message_id", "related_type",
              "related_id", "status", "attempts", "next_attempt_at", "dispatched_at", "lease_until",
              "last_error", "possible_duplicate", "created_at", "sent_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("body_text", "body_html", "attachments")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
