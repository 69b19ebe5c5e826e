"""Small response helpers shared by the apps."""

from django.http import HttpResponseBase
from django.utils.http import content_disposition_header


def as_download(response: HttpResponseBase, filename: str) -> HttpResponseBase:
    """Make the browser save the response as a file rather than show it, under a safely quoted name.

    Every download is personal data (a register, a parent's data, an import template to fill): it is
    never cached either. `nosniff` comes with every response (SECURE_CONTENT_TYPE_NOSNIFF)."""
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    response["Cache-Control"] = "no-store"
    return response
