from django.contrib import admin

from schools.admin import ScopedAdmin

from .models import Group, Guardian, Guardianship, Pupil


class GuardianshipInline(admin.TabularInline):
    model = Guardianship
    extra = 0
    raw_id_fields = ["guardian", "pupil"]


@admin.register(Pupil)
class PupilAdmin(ScopedAdmin):
    list_display = ["last_name", "first_name", "school", "year_group", "left_on"]
    list_filter = ["school", "year_group"]
    search_fields = ["last_name", "first_name", "mis_id"]
    inlines = [GuardianshipInline]


@admin.register(Guardian)
class GuardianAdmin(ScopedAdmin):
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
