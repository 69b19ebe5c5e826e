"""Wording helpers for the lockout page, whose context django-axes builds (a timedelta, no end time)."""

import math
from datetime import datetime, timedelta

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def minutes(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds() / 60))


@register.filter
def from_now(delta: timedelta) -> datetime:
    return timezone.localtime(timezone.now() + delta)
