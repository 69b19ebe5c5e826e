"""`{{ starts_at|zone_abbr }}`: the time zone's abbreviation at that instant ("BST", "GMT").

Django's `date:"T"` prints nothing for a wall-clock time that happens twice (01:30 on the night the
clocks go back), which is exactly when parents most need to be told which one. A datetime made by
`timezone.localtime` knows which of the two it is (`fold`), so its own `tzname()` is right.
"""

from datetime import datetime

from django import template

register = template.Library()


@register.filter
def zone_abbr(value) -> str:
    if not isinstance(value, datetime) or value.tzinfo is None:
        return ""
    return value.tzname() or ""
