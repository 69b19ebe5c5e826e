"""Mandatory second factor: a signed-in but unverified user reaches only the pages that get them verified.

A password alone gives access to nothing else for headteachers, DPOs, SIROs and organisation admins
(who must use a second factor) nor for anyone who has chosen to set one up.
"""

from urllib.parse import urlencode

from django.contrib.staticfiles.views import serve as staticfiles_serve
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.static import serve as static_serve

from schools.scope import user_requires_two_factor

from .services import user_has_second_factor

# Matched against the resolved view name, not the path: a crafted path cannot pass as one of these.
PAGES_BEFORE_SECOND_FACTOR = frozenset(
    {
        "accounts:verify",
        "accounts:two-factor-setup",
        "accounts:logout",
        "accounts:password-reset",
        "accounts:password-reset-done",
        "accounts:password-reset-confirm",
        "accounts:password-reset-complete",
    }
)
STATIC_VIEWS = (staticfiles_serve, static_serve)


class TwoFactorRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        # process_view runs after URL resolution, so the view's name is known without resolving twice.
        if view_func in STATIC_VIEWS or request.resolver_match.view_name in PAGES_BEFORE_SECOND_FACTOR:
            return None
        user = request.user
        if not user.is_authenticated or user.is_verified():
            return None
        if user_has_second_factor(user):
            target = "accounts:verify"
        elif user_requires_two_factor(user):
            target = "accounts:two-factor-setup"
        else:
            # Known now; the page layout asks the same question (schools.context_processors).
            request.second_factor_pending = False
            return None
        url = reverse(target)
        if request.method in ("GET", "HEAD"):
            url = f"{url}?{urlencode({'next': request.get_full_path()})}"
        return redirect(url)
