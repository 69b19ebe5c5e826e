"""The pages of a request that fails: 403, 404 and 500 in the staff layout, with the navigation for a signed-in
member of staff and a plain sentence of what happened (on a 403, why, when the view says so with
`lib.refusal.Refused`). Parent links (/p/…) keep their own pages: the one
generic page of a link that does not work (nothing tells a guesser how close they came), and a parent-styled
page when the server fails.

The 500 page is rendered without the request's context: the navigation's context processor reads the
database, which may be the very thing that is down. It shows no detail of the error.
"""

from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.shortcuts import render
from django.template import loader

from consent.views_parent import parent_link_headers
from lib.refusal import Refused

PARENT_PREFIX = "/p/"  # config.urls mounts the parent links there


def _from_parent_link(request: HttpRequest) -> bool:
    return request.path_info.startswith(PARENT_PREFIX)


@parent_link_headers
def _parent_link_page(request: HttpRequest, status: int) -> HttpResponse:
    return render(request, "parent/consent/link_invalid.html", {"too_many": False}, status=status)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _from_parent_link(request):
        return _parent_link_page(request, 403)
    # Only a refusal written for people says why (`lib.refusal.Refused`); any other message stays unsaid.
    reason = str(exception) if isinstance(exception, Refused) else ""
    return render(request, "errors/403.html", {"reason": reason}, status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _from_parent_link(request):
        return _parent_link_page(request, 404)
    return render(request, "errors/404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    name = "parent/server_error.html" if _from_parent_link(request) else "errors/500.html"
    response = HttpResponseServerError(loader.get_template(name).render({}))
    if _from_parent_link(request):
        response["Referrer-Policy"] = "no-referrer"
        response["Cache-Control"] = "no-store"
    return response
