"""PIA emails for tests/test_email_links.py's every_email fixture: made through the real services."""

import datetime as dt

from django.utils import timezone


def produce(personas) -> None:
    """Make one of each PIA reminders email: pia-action-reminder, for an overdue action of a signed PIA."""
    from pia.reminders import reminders_send
    from tests.pia.matrix_outputs import signed_pia

    signed_pia(personas, title="Zoom (action plan)", responsible=personas.teacher,
               due_on=timezone.localdate() - dt.timedelta(days=2))
    assert reminders_send(now=timezone.now())["overdue"] == 1
