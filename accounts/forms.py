import re

from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.forms import PasswordResetForm as DjangoPasswordResetForm
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest

from .models import User
from .services import SecondFactorResult, password_reset_email_queue, second_factor_verify

# The longest email address there can be; usernames are shorter still.
IDENTIFIER_MAX_LENGTH = 254
CODE_HELP = "Open your authenticator app and type the 6-digit code it shows for Gatehouse."
BACKUP_HELP = "One of the backup codes you printed or saved when you set up two-factor authentication."


def _code_field() -> forms.CharField:
    return forms.CharField(
        label="6-digit code",
        required=False,
        max_length=12,
        help_text=CODE_HELP,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*", "size": 8}
        ),
    )


def _backup_code_field() -> forms.CharField:
    return forms.CharField(
        label="Backup code",
        required=False,
        max_length=24,
        help_text=BACKUP_HELP,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"}),
    )


class SecondFactorFormMixin:
    """A TOTP code, or a backup code instead (for a lost or flat phone). Exactly one is needed."""

    second_factor: SecondFactorResult | None = None

    def clean_code(self) -> str:
        code = re.sub(r"\s", "", self.cleaned_data["code"])
        if code and not re.fullmatch(r"\d{6}", code):
            raise forms.ValidationError("Enter all 6 digits your authenticator app shows, and nothing else.")
        return code

    def clean_backup_code(self) -> str:
        code = re.sub(r"[\s-]", "", self.cleaned_data["backup_code"]).lower()
        if code and not re.fullmatch(r"[a-z0-9]{4,16}", code):
            raise forms.ValidationError("A backup code has only letters and digits. Check it and try again.")
        return code

    def verify_second_factor(self, user) -> None:
        code, backup_code = self.cleaned_data.get("code"), self.cleaned_data.get("backup_code")
        if "code" in self.errors or "backup_code" in self.errors:
            return
        if not code and not backup_code:
            self.add_error("code", "Enter the 6-digit code from your authenticator app, or a backup code.")
            return
        if code and backup_code:
            self.add_error("backup_code", "Enter either a code from your app or a backup code, not both.")
            return
        self.second_factor = second_factor_verify(user=user, code=code, backup_code=backup_code)
        if not self.second_factor.ok:
            self.add_error("backup_code" if backup_code else "code", self.second_factor.error)

    @property
    def used_backup_code(self) -> bool:
        return bool(self.cleaned_data.get("backup_code"))


class LoginForm(AuthenticationForm):
    """Username or email address, and password. The request is passed so django-axes counts failures."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That username or email address and password do not match an account. "
        "Check them and try again; after several wrong attempts, sign-in is paused for a while.",
    }

    def __init__(self, request: HttpRequest | None = None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = "Username or email address"
        self.fields["username"].max_length = IDENTIFIER_MAX_LENGTH
        self.fields["username"].widget.attrs["maxlength"] = str(IDENTIFIER_MAX_LENGTH)
        self.fields["username"].widget.attrs.update({"autocomplete": "username", "autocapitalize": "none"})
        self.fields["password"].widget.attrs["autocomplete"] = "current-password"

    def clean_username(self) -> str:
        # AuthenticationForm sets max_length after the field is built, so nothing enforces it; an
        # over-long value would reach django-axes, whose username column is 255 characters.
        username = self.cleaned_data["username"]
        if len(username) > IDENTIFIER_MAX_LENGTH:
            raise forms.ValidationError("That is longer than any username or email address.")
        return username

    def clean(self):
        identifier = (self.cleaned_data.get("username") or "").strip()
        if "@" in identifier and not User.objects.filter(username=identifier).exists():
            # Sign-in by email: authenticate (and django-axes) then see the same username whichever
            # the person typed, so switching between the two does not double the attempts allowed.
            username = User.objects.filter(email__iexact=identifier).values_list("username", flat=True).first()
            if username:
                self.cleaned_data["username"] = username
        return super().clean()


class VerifyForm(SecondFactorFormMixin, forms.Form):
    code = _code_field()
    backup_code = _backup_code_field()

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["code"].widget.attrs["autofocus"] = True

    def clean(self):
        cleaned = super().clean()
        self.verify_second_factor(self.user)
        return cleaned


class TwoFactorSetupForm(forms.Form):
    code = forms.CharField(
        label="6-digit code from your app",
        max_length=12,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*", "size": 8}
        ),
    )

    def __init__(self, *args, device, **kwargs):
        super().__init__(*args, **kwargs)
        self.device = device

    def clean_code(self) -> str:
        code = re.sub(r"\s", "", self.cleaned_data["code"])
        if not re.fullmatch(r"\d{6}", code):
            raise forms.ValidationError("Enter the 6 digits your authenticator app shows.")
        allowed, _ = self.device.verify_is_allowed()
        if not allowed:
            raise forms.ValidationError("Too many wrong codes in a row. Wait a minute, then try the newest code.")
        if not self.device.verify_token(code):
            raise forms.ValidationError(
                "That code does not match. Check that the time on your phone is right, then try the newest code."
            )
        return code


class ConfirmIdentityForm(SecondFactorFormMixin, forms.Form):
    """Password again, and a second factor for those who have one.

    Failures count towards the same lockout as the sign-in page: a wrong password through
    `authenticate(request, …)`, a wrong code by the same signal django-axes listens to.
    """

    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )

    def __init__(self, *args, request: HttpRequest, needs_code: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request
        self.user = request.user
        self.failure = ""
        if needs_code:
            self.fields["code"] = _code_field()
            self.fields["backup_code"] = _backup_code_field()

    def clean(self):
        cleaned = super().clean()
        password = cleaned.get("password")
        if not password:
            return cleaned
        user = authenticate(self.request, username=self.user.get_username(), password=password)
        if user is None or user.pk != self.user.pk:
            self.failure = "password"
            self.add_error("password", "That is not your current password.")
            return cleaned
        if "code" in self.fields:
            self.verify_second_factor(self.user)
            if self.second_factor is None or not self.second_factor.ok:
                self.failure = "second_factor"
                user_login_failed.send(
                    sender=type(self),
                    credentials={"username": self.user.get_username()},
                    request=self.request,
                )
        return cleaned


class PasswordResetForm(DjangoPasswordResetForm):
    """Django's reset form, sending through the outbox rather than straight to the mail server."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].widget.attrs.update({"autocomplete": "email", "autofocus": True})

    def send_mail(
        self,
        subject_template_name,
        email_template_name,
        context,
        from_email,
        to_email,
        html_email_template_name=None,
    ) -> None:
        password_reset_email_queue(user=context["user"], uidb64=context["uid"], token=context["token"])


class EmailPreferencesForm(forms.Form):
    daily_digest = forms.BooleanField(
        label="Send me the daily digest", required=False,
        help_text="One email a day with what changed and what needs you, instead of one email per event.",
    )
