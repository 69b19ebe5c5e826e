from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django_otp.plugins.otp_static.admin import StaticDeviceAdmin
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

from schools.admin import AuditedAdmin

from .models import User


@admin.register(User)
class StaffUserAdmin(AuditedAdmin, UserAdmin):
    list_display = ["username", "email", "first_name", "last_name", "is_active", "is_superuser"]
    search_fields = ["username", "email", "first_name", "last_name"]


# Removing someone's authenticator is how an admin resets a lost second factor: it must be on record.
for model, base in ((TOTPDevice, TOTPDeviceAdmin), (StaticDevice, StaticDeviceAdmin)):
    admin.site.unregister(model)
    admin.site.register(model, type(f"Audited{base.__name__}", (AuditedAdmin, base), {}))
