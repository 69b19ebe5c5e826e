"""Models for this app arrive with its issue; the app exists now so migrations start here."""
