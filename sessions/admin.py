from django.contrib import admin

from schools.admin import ReadOnlyScopedAdmin

from .models import Protocol, VideoSession


@admin.register(Protocol)
class ProtocolAdmin(ReadOnlyScopedAdmin):
    """Versions are saved on the protocol pages (`sessions.protocol.protocol_save`), never here."""

    organisation_path = "organisation"
    list_display = ["organisation", "school", "version", "max_duration_minutes", "lock_after_minutes", "created_at"]
    list_filter = ["organisation"]


@admin.register(VideoSession)
class VideoSessionAdmin(ReadOnlyScopedAdmin):
    """Scheduled, changed and cancelled on the session pages. The meeting link and password never show here
    (promise 8): they are left out of the page, not only made read-only."""

    list_display = ["title", "school", "starts_at", "host", "platform", "status", "revision"]
    list_filter = ["status", "school"]
    exclude = ["meeting_url", "password"]
    search_fields = ["title"]
