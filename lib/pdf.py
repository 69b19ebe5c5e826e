"""Render a Django template to PDF with WeasyPrint.

Documents extend templates/pdf/base.html. WeasyPrint may fetch only Gatehouse's own static files: a
name or title typed by a user can never make the server fetch a URL.
"""

from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from weasyprint import HTML
from weasyprint.urls import URLFetcher

_STATIC_PREFIX = "gatehouse-static:/"


class StaticOnlyFetcher(URLFetcher):
    def fetch(self, url, headers=None):
        if url.startswith(_STATIC_PREFIX):
            path = finders.find(url.removeprefix(_STATIC_PREFIX))
            if path:
                return super().fetch(Path(path).as_uri(), headers)
        raise ValueError(f"PDF rendering may only load Gatehouse's static files, not {url[:80]!r}")


def render_pdf(template_name: str, context: dict) -> bytes:
    html = render_to_string(template_name, {"static_prefix": _STATIC_PREFIX, **context})
    return HTML(string=html, base_url=str(settings.BASE_DIR), url_fetcher=StaticOnlyFetcher()).write_pdf()
