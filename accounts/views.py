"""Staff sign-in: password, then a second factor; enrolment; the security page; 'confirm it's you'."""

from base64 import b32encode
from urllib.parse import urlencode, urlsplit

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from schools.audit import Actor
from schools.digest import digest_place
from schools.models import AuditEntry
from schools.scope import user_requires_two_factor

from .forms import (
    ConfirmIdentityForm,
    EmailPreferencesForm,
    LoginForm,
    PasswordResetForm,
    TwoFactorSetupForm,
    VerifyForm,
)
from .reauth import confirm_identity_required, identity_confirmation_record
from .services import (
    ATTEMPTED_USERNAME_MAX,
    auth_audit,
    backup_codes_generate,
    digest_preference_set,
    totp_device_for_enrolment,
    two_factor_enrol,
    user_has_second_factor,
    user_named,
)

# The backup codes just generated, kept in the session only until the page that shows them once.
NEW_BACKUP_CODES_KEY = "gatehouse_new_backup_codes"


def _next_url(request: HttpRequest, default: str | None = None) -> str:
    """Where to go afterwards: `next` if it stays on this site, else the dashboard."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default or resolve_url(settings.LOGIN_REDIRECT_URL)


def _with_next(url_name: str, next_url: str) -> str:
    return f"{reverse(url_name)}?{urlencode({'next': next_url})}"


def _idle_minutes() -> int:
    return settings.SESSION_COOKIE_AGE // 60


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = _next_url(request)
    if request.user.is_authenticated and request.method == "GET":
        return redirect(next_url)
    form = LoginForm(request, data=request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if form.is_valid():
            user = form.get_user()
            auth_login(request, user)
            has_device = user_has_second_factor(user)
            auth_audit(
                actor=user,
                action="auth.login",
                user=user,
                data={"second_factor": "pending" if has_device else "not set up"},
            )
            if has_device:
                return redirect(_with_next("accounts:verify", next_url))
            if user_requires_two_factor(user):
                messages.info(request, "Your role needs two-factor authentication. Please set it up now.")
                return redirect(_with_next("accounts:two-factor-setup", next_url))
            identity_confirmation_record(request)  # the password is all "confirm it's you" asks of them
            return redirect(next_url)
        if form.has_error(NON_FIELD_ERRORS):
            # Credentials were checked and refused (a blank field never reaches authenticate).
            _audit_failed_login(request.POST.get("username") or "")
    return render(
        request,
        "accounts/login.html",
        {"form": form, "next": next_url, "idle_minutes": _idle_minutes()},
    )


def _audit_failed_login(attempted: str) -> None:
    # The attempted username is evidence of who was targeted, filed under that account's school if
    # there is one (only staff read the trail); the password never leaves the form.
    attempted = attempted.strip()[:ATTEMPTED_USERNAME_MAX]
    auth_audit(
        actor=Actor(kind=AuditEntry.ActorKind.SYSTEM, label=f"Sign-in attempt as “{attempted}”"),
        action="auth.login_failed",
        user=user_named(attempted),
        data={"username": attempted},
    )


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    if user.is_authenticated:
        auth_audit(actor=user, action="auth.logout", user=user)
    auth_logout(request)
    messages.info(request, "You have signed out.")
    return redirect(settings.LOGOUT_REDIRECT_URL)


@sensitive_post_parameters("code", "backup_code")
@login_required
@never_cache
def verify(request: HttpRequest) -> HttpResponse:
    next_url = _next_url(request)
    user = request.user
    if user.is_verified():
        return redirect(next_url)
    if not user_has_second_factor(user):
        if user_requires_two_factor(user):
            return redirect(_with_next("accounts:two-factor-setup", next_url))
        return redirect(next_url)
    form = VerifyForm(request.POST if request.method == "POST" else None, user=user)
    if request.method == "POST":
        if form.is_valid():
            device = form.second_factor.device
            otp_login(request, device)
            # A new session key now that the session is worth more: a key planted before sign-in is useless.
            request.session.cycle_key()
            # Password and code just given: as good as "confirm it's you", for the next few minutes.
            identity_confirmation_record(request)
            auth_audit(actor=user, action="auth.two_factor_verified", user=user, data={"device": device.name})
            if form.used_backup_code:
                _audit_backup_code_used(user, device)
                messages.warning(
                    request,
                    "You used a backup code. It will not work again. If your phone is lost, set up a new "
                    "authenticator from your security page.",
                )
            return redirect(next_url)
        if form.second_factor is not None:
            auth_audit(
                actor=user,
                action="auth.two_factor_failed",
                user=user,
                data={"with": "backup code" if form.used_backup_code else "authenticator code"},
            )
    return render(request, "accounts/verify.html", {"form": form, "next": next_url})


def _audit_backup_code_used(user, device) -> None:
    remaining = device.token_set.count() if isinstance(device, StaticDevice) else None
    auth_audit(actor=user, action="auth.backup_code_used", user=user, data={"remaining": remaining})


def _qr_svg(uri: str) -> str:
    # segno's inline SVG carries presentation attributes only (no style attribute or element), so it
    # passes the strict style-src CSP; the size comes from `.qr-code svg` in gatehouse.css.
    svg = segno.make(uri, error="m").svg_inline(
        scale=5, border=4, dark="#000", light="#fff", omitsize=True, title="QR code for your authenticator app"
    )
    svg = svg.replace("<svg ", '<svg role="img" aria-label="QR code for your authenticator app" ', 1)
    # Safe to mark: segno writes every character of it, and the URI is encoded as modules, not as text.
    return mark_safe(svg)  # noqa: S308


def _secret_for_typing(device: TOTPDevice) -> str:
    secret = b32encode(device.bin_key).decode()
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


@sensitive_post_parameters("code")
@login_required
@never_cache
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    user = request.user
    next_url = _next_url(request)
    if TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        if not user.is_verified():
            return redirect(_with_next("accounts:verify", next_url))
        messages.info(request, "Two-factor authentication is already set up.")
        return redirect("accounts:security")
    if user_has_second_factor(user) and not user.is_verified():
        # Someone holding only the password must not be able to add their own authenticator.
        return redirect(_with_next("accounts:verify", next_url))
    device = totp_device_for_enrolment(user=user)
    form = TwoFactorSetupForm(request.POST if request.method == "POST" else None, device=device)
    if request.method == "POST":
        if form.is_valid():
            codes = two_factor_enrol(user=user, device=device)
            device.refresh_from_db()
            otp_login(request, device)
            request.session.cycle_key()
            request.session[NEW_BACKUP_CODES_KEY] = codes
            messages.success(request, "Two-factor authentication is on.")
            return redirect(_with_next("accounts:backup-codes", next_url))
        auth_audit(actor=user, action="auth.two_factor_failed", user=user, data={"with": "set-up code"})
    context = {
        "form": form,
        "next": next_url,
        "qr_svg": _qr_svg(device.config_url),
        "secret": _secret_for_typing(device),
        "required": user_requires_two_factor(user),
        "issuer": settings.OTP_TOTP_ISSUER,
    }
    return render(request, "accounts/two_factor_setup.html", context)


@login_required
@never_cache  # like the set-up page, it shows secrets: keep it out of a shared computer's cache
def backup_codes(request: HttpRequest) -> HttpResponse:
    codes = request.session.pop(NEW_BACKUP_CODES_KEY, None)
    context = {"codes": codes, "next": _next_url(request, default=reverse("accounts:security"))}
    return render(request, "accounts/backup_codes.html", context)


@confirm_identity_required
@never_cache
def backup_codes_regenerate(request: HttpRequest) -> HttpResponse:
    if not user_has_second_factor(request.user):
        return redirect("accounts:two-factor-setup")
    if request.method == "POST":
        request.session[NEW_BACKUP_CODES_KEY] = backup_codes_generate(user=request.user, actor=request.user)
        return redirect("accounts:backup-codes")
    return render(request, "accounts/backup_codes_regenerate.html")


@login_required
def security(request: HttpRequest) -> HttpResponse:
    user = request.user
    authenticator = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    backup = StaticDevice.objects.filter(user=user, confirmed=True).first()
    context = {
        "authenticator": authenticator,
        "backup_codes_left": backup.token_set.count() if backup else 0,
        "has_backup_codes": backup is not None,
        "required": user_requires_two_factor(user),
        "idle_minutes": _idle_minutes(),
        "email_form": EmailPreferencesForm(initial={"daily_digest": user.daily_digest}),
        "digest_place": digest_place(user),
    }
    return render(request, "accounts/security.html", context)


@require_POST
@login_required
def email_preferences(request: HttpRequest) -> HttpResponse:
    """The signed-in person's own choices only: the form names no account."""
    form = EmailPreferencesForm(request.POST)
    if form.is_valid():
        on = form.cleaned_data["daily_digest"]
        digest_preference_set(user=request.user, daily_digest=on)
        place = digest_place(request.user)
        if on and place is not None:
            messages.success(request, f"The daily digest is on. It comes each day at {place.hour:02d}:00 "
                                      f"({place.time_zone}) when there is something to tell.")
        elif on:
            messages.success(request, "The daily digest is on. It starts once you are a member of staff of a "
                                      "school or an organisation.")
        else:
            messages.success(request, "The daily digest is off. Lessons within 24 hours that cannot go ahead, "
                                      "and incidents, are still emailed to you at once.")
    return redirect("accounts:security")


@sensitive_post_parameters("password", "code", "backup_code")
@login_required
@never_cache
def confirm(request: HttpRequest) -> HttpResponse:
    next_url = _next_url(request, default=reverse("accounts:security"))
    user = request.user
    form = ConfirmIdentityForm(
        request.POST if request.method == "POST" else None,
        request=request,
        needs_code=user_has_second_factor(user),
    )
    if request.method == "POST":
        if form.is_valid():
            identity_confirmation_record(request)
            auth_audit(actor=user, action="auth.reauthenticated", user=user)
            if form.used_backup_code:
                _audit_backup_code_used(user, form.second_factor.device)
            return redirect(next_url)
        if form.failure:
            auth_audit(actor=user, action="auth.reauthentication_failed", user=user, data={"failed": form.failure})
    context = {
        "form": form,
        "next": next_url,
        "max_age_minutes": max(1, settings.REAUTH_MAX_AGE_SECONDS // 60),
    }
    return render(request, "accounts/confirm.html", context)


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:security")

    def form_valid(self, form):
        response = super().form_valid(form)
        auth_audit(actor=self.request.user, action="auth.password_changed", user=self.request.user)
        messages.success(self.request, "Your password has been changed.")
        return response


class PasswordResetView(auth_views.PasswordResetView):
    form_class = PasswordResetForm
    template_name = "accounts/password_reset_form.html"
    success_url = reverse_lazy("accounts:password-reset-done")

    def form_valid(self, form):
        # The links are built from SITE_URL, so the request's Host header is never consulted.
        form.save(
            domain_override=urlsplit(settings.SITE_URL).netloc,
            use_https=settings.SITE_URL.startswith("https://"),
            token_generator=self.token_generator,
            request=self.request,
        )
        # Recorded the same way whether or not the address has an account: the trail must not become
        # a way to find out which addresses do.
        auth_audit(
            actor=Actor(kind=AuditEntry.ActorKind.SYSTEM, label="Someone using the password reset form"),
            action="auth.password_reset_requested",
        )
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password-reset-complete")
    # Never signed in straight from an emailed link: the person signs in again, second factor included.
    post_reset_login = False

    def form_valid(self, form):
        response = super().form_valid(form)
        auth_audit(actor=form.user, action="auth.password_changed", user=form.user, data={"via": "reset link"})
        return response


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"
