"""A refusal that tells the person why, in the school's words."""

from django.core.exceptions import PermissionDenied


class Refused(PermissionDenied):
    """A 403 whose message is written for the person refused: the 403 page shows it (`config.errors`).

    Raise it only with a sentence written here in the code, never with anything built from an error or a
    request. A plain `PermissionDenied`'s message is never shown: it may say anything."""
