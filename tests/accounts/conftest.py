"""Helpers for driving the real sign-in pages (django-axes needs the request, so no client.login())."""

import time

import pytest
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from schools.models import Role
from tests.factories import PASSWORD, MembershipFactory, UserFactory


def totp_code(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """The code the user's app shows now (or `steps_ahead` periods from now)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def post_password(client, username: str, password: str = PASSWORD, **extra):
    return client.post(reverse("accounts:login"), {"username": username, "password": password}, **extra)


def post_code(client, code: str = "", backup_code: str = "", **extra):
    return client.post(reverse("accounts:verify"), {"code": code, "backup_code": backup_code}, **extra)


@pytest.fixture
def headteacher_without_device(personas):
    user = UserFactory()
    MembershipFactory(user=user, role=Role.HEADTEACHER, school=personas.school)
    return user
