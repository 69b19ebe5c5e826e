"""In the demo (DEBUG on), a page that does not exist answers with Gatehouse's own 404 page, as production
does, instead of Django's technical page, which lists every URL pattern: the demo is a school's first look
at the app. Only 404s: with DEBUG on, a 403 already uses the app's page, and a 500 keeps Django's traceback
for whoever runs the demo from a checkout. Installed only in demo mode (config.settings)."""

from django.http import Http404, HttpRequest, HttpResponse

from .errors import page_not_found


class DemoNotFoundMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 404 and getattr(request, "resolver_match", None) is None:
            return page_not_found(request)  # no URL matched: Django answered with its technical page
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, Http404):
            return page_not_found(request, exception)
        return None
