"""'Confirm it's you': a fresh password (and second factor) before signing or approving.

A signed PIA or an approved risk assessment is evidence that a named person decided: a session left
open on a staffroom computer must not be enough to produce it. Pages that sign wrap their view in
`confirm_identity_required`; a page that wants one confirmation per signature calls
`identity_confirmation_consume` when it records the signature.
"""

from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

SESSION_KEY = "gatehouse_identity_confirmed"


def identity_confirmation_record(request: HttpRequest) -> None:
    request.session[SESSION_KEY] = {"user": request.user.pk, "at": timezone.now().timestamp()}


def identity_recently_confirmed(request: HttpRequest) -> bool:
    """True if this user confirmed their identity in this session less than REAUTH_MAX_AGE_SECONDS ago."""
    confirmed = request.session.get(SESSION_KEY)
    if not confirmed or confirmed.get("user") != request.user.pk:
        return False
    age = timezone.now().timestamp() - confirmed.get("at", 0)
    # A confirmation from the future (a clock stepped back) is not trusted either.
    return 0 <= age <= settings.REAUTH_MAX_AGE_SECONDS


def identity_confirmation_consume(request: HttpRequest) -> bool:
    """Use up the current confirmation: True if there was a fresh one, which is now gone.

    A page that records a signature calls this in the same request, so that each signature needs its
    own confirmation; checking the return value also catches two tabs racing to sign.
    """
    fresh = identity_recently_confirmed(request)
    request.session.pop(SESSION_KEY, None)
    return fresh


def confirm_page_url(next_url: str) -> str:
    return f"{reverse('accounts:confirm')}?{urlencode({'next': next_url})}"


def confirm_identity_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Send the user to 'confirm it's you' first unless they did so in the last few minutes.

    After confirming they come back to the same address with GET, so a stale POST is not replayed:
    they see the form again and submit it themselves.
    """

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not identity_recently_confirmed(request):
            return redirect(confirm_page_url(request.get_full_path()))
        return view(request, *args, **kwargs)

    return wrapper
