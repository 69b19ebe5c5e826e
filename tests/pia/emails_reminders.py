"""PIA emails for tests/test_email_links.py's every_email fixture: made through the real services."""


def produce(personas) -> None:
    """Make one of each PIA reminders email (none yet)."""
