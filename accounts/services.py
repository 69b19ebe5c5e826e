"""Staff sign-in workflows: second factors, backup codes, password changes and reset emails.

Each function here is the only way its state change happens; views, the demo-data command and tests
call the same ones.
"""

import math
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django_otp import devices_for_user, verify_token
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from outbox.services import email_queue
from schools.audit import audit_log
from schools.models import Membership

from .models import User

BACKUP_CODE_COUNT = 10
BACKUP_DEVICE_NAME = "Backup codes"
AUTHENTICATOR_DEVICE_NAME = "Authenticator app"
# Enough to recognise a mistyped name in the audit trail; not enough to hold a whole pasted secret.
ATTEMPTED_USERNAME_MAX = 64


def audit_scope(user) -> dict:
    """The school and organisation an auth event belongs to, so it shows on the right audit page.

    A member of one school files under that school; a member of several schools of one organisation
    (or an organisation-wide role) under the organisation; anyone else under neither.
    """
    if user is None or user.pk is None:
        return {}
    places = set(Membership.objects.filter(user=user).values_list("school_id", "organisation_id"))
    schools = {school_id for school_id, _ in places}
    organisations = {organisation_id for _, organisation_id in places}
    if len(organisations) != 1:
        return {}
    if len(schools) == 1 and None not in schools:
        return {"school": schools.pop(), "organisation": organisations.pop()}
    return {"organisation": organisations.pop()}


def user_named(identifier: str) -> User | None:
    """The account a sign-in attempt was aimed at (by username or email), for the audit trail only."""
    identifier = (identifier or "").strip()
    if not identifier:
        return None
    return (
        User.objects.filter(username=identifier).first()
        or User.objects.filter(email__iexact=identifier).first()
    )


def auth_audit(*, actor, action: str, user=None, data: dict | None = None) -> None:
    """One audit entry for a sign-in event, filed under the user's school or organisation."""
    audit_log(actor=actor, action=action, obj=user, data=data, **audit_scope(user))


@dataclass(frozen=True)
class SecondFactorResult:
    device: Device | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.device is not None


def _throttled_message(devices: list[Device]) -> str | None:
    """django-otp's back-off after wrong codes, in words; None if any device may be tried now."""
    waits = []
    for device in devices:
        allowed, info = device.verify_is_allowed()
        if allowed:
            return None
        locked_until = (info or {}).get("locked_until")
        if locked_until is not None:
            waits.append(math.ceil((locked_until - timezone.now()).total_seconds()))
    wait = max(1, min(waits)) if waits else 1
    unit = "second" if wait == 1 else "seconds"
    return f"Too many wrong codes in a row. Wait {wait} {unit}, then try again with a new code."


def second_factor_verify(*, user, code: str = "", backup_code: str = "") -> SecondFactorResult:
    """Check a code from the user's authenticator app, or one of their backup codes.

    A backup code is deleted as it is accepted, and a TOTP code cannot be used twice, so a code that
    someone watched being typed is worthless afterwards. Wrong codes slow further attempts down
    exponentially (django-otp's throttling), which is what makes guessing six digits impractical.
    """
    model = StaticDevice if backup_code else TOTPDevice
    token = backup_code or code
    devices = list(model.objects.devices_for_user(user, confirmed=True))
    if not devices:
        if backup_code:
            return SecondFactorResult(None, "You have no backup codes. Use the code from your authenticator app.")
        return SecondFactorResult(None, "You have no authenticator app set up. Use one of your backup codes.")
    throttled = _throttled_message(devices)
    if throttled:
        return SecondFactorResult(None, throttled)
    for device in devices:
        # verify_token locks the device row, so one backup code cannot be spent twice concurrently.
        verified = verify_token(user, device.persistent_id, token)
        if verified is not None:
            return SecondFactorResult(verified)
    if backup_code:
        return SecondFactorResult(None, "That backup code is not right, or has already been used.")
    return SecondFactorResult(
        None, "That code is not right. Check that it is the Gatehouse code in your app and that it has not expired; "
              "each code works only once, so if you have just used it, wait for the next one."
    )


def user_has_second_factor(user) -> bool:
    return next(devices_for_user(user, confirmed=True), None) is not None


def totp_device_for_enrolment(*, user) -> TOTPDevice:
    """The user's unconfirmed authenticator device, created on first use.

    Reusing it means that reloading the set-up page does not invalidate a QR code already scanned.
    """
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_DEVICE_NAME, confirmed=False)
    return device


@transaction.atomic
def backup_codes_generate(*, user, actor) -> list[str]:
    """Replace the user's backup codes with ten new single-use ones and return them.

    They are shown once and never again: a lost list means generating a new one.
    """
    device, _ = StaticDevice.objects.select_for_update().get_or_create(
        user=user, name=BACKUP_DEVICE_NAME, defaults={"confirmed": True}
    )
    device.token_set.all().delete()
    codes = []
    while len(codes) < BACKUP_CODE_COUNT:
        code = StaticToken.random_token()
        if code not in codes:
            codes.append(code)
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    device.confirmed = True
    device.throttle_reset(commit=False)
    device.save()
    auth_audit(actor=actor, action="auth.backup_codes_generated", user=user, data={"count": len(codes)})
    return codes


@transaction.atomic
def two_factor_enrol(*, user, device: TOTPDevice) -> list[str]:
    """Confirm an authenticator the user has just proved they hold, and give them backup codes.

    Any other authenticator of theirs is removed: one phone per person keeps "which code?" simple.
    """
    device = TOTPDevice.objects.select_for_update().get(pk=device.pk, user=user)
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.name = AUTHENTICATOR_DEVICE_NAME
    device.save(update_fields=["confirmed", "name"])
    auth_audit(actor=user, action="auth.two_factor_enrolled", user=user)
    return backup_codes_generate(user=user, actor=user)


def digest_preference_set(*, user: User, daily_digest: bool) -> bool:
    """Turn the person's own daily digest on or off. Returns whether it changed (a repeated submission
    changes and records nothing)."""
    with transaction.atomic():
        changed = User.objects.filter(pk=user.pk).exclude(daily_digest=daily_digest).update(daily_digest=daily_digest)
        if changed:
            auth_audit(actor=user, action="account.digest_changed", user=user, data={"daily_digest": daily_digest})
    user.daily_digest = daily_digest
    return bool(changed)


def password_reset_email_queue(*, user: User, uidb64: str, token: str):
    """Queue the reset link through the outbox.

    The link is built from SITE_URL, never from the request: a forged Host header must not be able to
    point a real user's reset link at someone else's server. The message is filed under no school, so
    it never appears on a school's outbox page, where a colleague could use the link.
    """
    path = reverse("accounts:password-reset-confirm", kwargs={"uidb64": uidb64, "token": token})
    return email_queue(
        template="password-reset",
        to=user.email,
        context={
            "first_name": user.first_name,
            "username": user.get_username(),
            "reset_url": f"{settings.SITE_URL}{path}",
            "valid_minutes": settings.PASSWORD_RESET_TIMEOUT // 60,
            "site_url": settings.SITE_URL,
        },
        related=user,
    )
