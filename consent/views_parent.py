"""The parent page: a guardian's personal link (no account) to read the notice and decide per child.

Opening the page (GET or HEAD, as mail scanners do) never writes to the database (promise 4); only the
POST of a form with a visible button does. The same link withdraws after it has expired for giving
(promise 5). A bad token gets one generic page whatever was wrong with it, and bad tokens are counted
per client address so that guessing is throttled.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import decorator_from_middleware
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from lib.client_ip import client_ip
from lib.http import as_download

from .forms_rights import ParentRightsRequestForm
from .links import guardian_link_resolve
from .models import ConsentEvent, ConsentState, ConsentStatus, GuardianLink, Notice, Pupil, RightsRequest
from .rights import DOWNLOAD_FORMATS, PARENT_KINDS, guardian_data_download, rights_request_create
from .services import consent_give, consent_refuse, consent_withdraw

BAD_TOKEN_LIMIT = 20
BAD_TOKEN_WINDOW_SECONDS = 10 * 60


def parent_link_headers(view: Callable) -> Callable:
    """The token is in the URL: keep it out of Referer headers and out of every cache on the way."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Referrer-Policy"] = "no-referrer"
        response["Cache-Control"] = "no-store"
        return response

    return wrapper


class _NoReferrerCsrf(CsrfViewMiddleware):
    """Django's CSRF check for pages served with `Referrer-Policy: no-referrer`.

    Under that policy browsers send the form's POST with `Origin: null` and no Referer, which Django's
    origin and (on HTTPS) referer checks reject. Here "null" and a missing Referer are accepted; a real
    foreign Origin or Referer is still refused, and the secret token check (cookie and form field, which
    a cross-site page cannot read) applies in full. The URL's link token is a second secret on top."""

    def _origin_verified(self, request: HttpRequest) -> bool:
        return request.META.get("HTTP_ORIGIN") == "null" or super()._origin_verified(request)

    def _check_referer(self, request: HttpRequest) -> None:
        if request.META.get("HTTP_REFERER"):
            super()._check_referer(request)


def no_referrer_csrf_protect(view: Callable) -> Callable:
    # Exempt from the global middleware only to be checked by the variant above, never unchecked.
    return csrf_exempt(decorator_from_middleware(_NoReferrerCsrf)(view))


def _bad_token_key(request: HttpRequest) -> str:
    # The client address exactly as the sign-in lockout (django-axes) sees it, so that making axes see
    # through the reverse proxy fixes both; keyed on the proxy's own address, every parent shares a count.
    return f"parent-link:bad-token:{client_ip(request) or ''}"


def _generic_page(request: HttpRequest, status: int) -> HttpResponse:
    # One page for every kind of bad token: nothing tells a guesser how close they came.
    return render(request, "parent/consent/link_invalid.html", {"too_many": status == 429}, status=status)


def _resolve_or_refuse(request: HttpRequest, token: str) -> GuardianLink | HttpResponse:
    key = _bad_token_key(request)
    if cache.get(key, 0) >= BAD_TOKEN_LIMIT:
        return _generic_page(request, 429)
    link = guardian_link_resolve(token)
    if link is None:
        # Only failures count: a parent reopening a good link many times is never throttled.
        cache.add(key, 0, BAD_TOKEN_WINDOW_SECONDS)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, BAD_TOKEN_WINDOW_SECONDS)
        return _generic_page(request, 404)
    return link


@dataclass(frozen=True)
class Child:
    pupil: Pupil
    state: str
    state_label: str
    # The notice the last decision was made on: a withdrawal may answer any published version.
    decided_on: Notice | None
    # Consent given on an older notice is asked again (renewal); otherwise a "yes" only offers withdrawing.
    asks_answer: bool


def _children(link: GuardianLink, notice: Notice | None) -> list[Child]:
    guardian = link.guardian
    pupils = list(
        # A child archived by the retention schedule is no longer in the registry: only their consent
        # evidence is kept, and there is nothing left to decide.
        Pupil.objects.filter(guardianships__guardian=guardian, school_id=guardian.school_id, archived_at__isnull=True)
        .order_by("first_name", "pk")
    )
    statuses = {
        s.pupil_id: s
        for s in ConsentStatus.objects.filter(guardian=guardian, purpose=link.purpose)
        .select_related("last_event__notice")
    }
    children = []
    for pupil in pupils:
        status = statuses.get(pupil.pk)
        state = status.state if status else ConsentState.NONE
        decided_on = status.last_event.notice if status and status.last_event else None
        children.append(Child(
            pupil=pupil,
            state=state,
            state_label=ConsentState(state).label,
            decided_on=decided_on,
            asks_answer=state != ConsentState.GIVEN or (notice is not None and decided_on != notice),
        ))
    return children


def _decide(request: HttpRequest, link: GuardianLink, children: list[Child], notice: Notice | None) -> ConsentEvent:
    """Carry out the posted decision; ValidationError for anything the parent must put right."""
    by_id = {str(child.pupil.pk): child for child in children}
    child = by_id.get(request.POST.get("pupil", ""))
    if child is None:
        raise ValidationError("Choose one of your children.")
    decision = request.POST.get("decision", "")
    common = {"guardian": link.guardian, "pupil": child.pupil, "user_agent": request.headers.get("User-Agent", "")}
    if decision == "withdraw":
        if child.state != ConsentState.GIVEN:
            raise ValidationError(f"There is no consent to withdraw for {child.pupil.first_name}.")
        return consent_withdraw(notice=child.decided_on or notice, **common)
    if decision not in ("yes", "no"):
        raise ValidationError(f"Choose “Yes” or “No” for {child.pupil.first_name}.")
    if not link.may_give():
        raise ValidationError(
            "This link can no longer be used to give or refuse consent. Ask the school for a new link."
        )
    if notice is None:
        raise ValidationError("The school has not published its letter yet.")
    attestation = request.POST.get("attestation") == "on"
    if decision == "yes":
        if not attestation:
            raise ValidationError(
                "Tick “I have parental responsibility for this child” to give consent "
                f"for {child.pupil.first_name}."
            )
        return consent_give(notice=notice, attestation=True, **common)
    return consent_refuse(notice=notice, attestation=attestation, **common)


@no_referrer_csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
@parent_link_headers
def parent_page(request: HttpRequest, token: str) -> HttpResponse:
    link = _resolve_or_refuse(request, token)
    if isinstance(link, HttpResponse):
        return link
    notice = link.purpose.current_notice()
    children = _children(link, notice)
    error, error_pupil = "", ""
    if request.method == "POST":
        try:
            event = _decide(request, link, children, notice)
        except ValidationError as exc:
            error, error_pupil = " ".join(exc.messages), request.POST.get("pupil", "")
        else:
            return redirect(reverse("parent:done", kwargs={"token": token}) + f"?event={event.pk}")
    context = {
        "school": link.guardian.school,
        "guardian": link.guardian,
        "purpose": link.purpose,
        "notice": notice,
        "children": children,
        "may_give": link.may_give(),
        "error": error,
        "error_pupil": error_pupil,
        "posted": request.POST if error else {},
        "token": token,
    }
    return render(request, "parent/consent/page.html", context, status=400 if error else 200)


@require_safe
@parent_link_headers
def parent_done(request: HttpRequest, token: str) -> HttpResponse:
    link = _resolve_or_refuse(request, token)
    if isinstance(link, HttpResponse):
        return link
    event = None
    event_id = request.GET.get("event", "")
    if re.fullmatch(r"[0-9]{1,18}", event_id):
        event = (
            ConsentEvent.objects.filter(pk=int(event_id), guardian=link.guardian, purpose=link.purpose)
            .select_related("pupil").first()
        )
    sent_ahead = []
    if event is not None and event.kind in (ConsentEvent.Kind.WITHDRAWN, ConsentEvent.Kind.REFUSED):
        # Promise 5: an invitation already sent cannot be called back; say so (the host has been alerted).
        from sessions.withdrawals import invitations_sent_ahead

        sent_ahead = invitations_sent_ahead(guardian=link.guardian, pupil_id=event.pupil_id,
                                            purpose_id=event.purpose_id)
    context = {
        "school": link.guardian.school,
        "event": event,
        "children": _children(link, link.purpose.current_notice()),
        "token": token,
        "sent_ahead": sent_ahead,
    }
    return render(request, "parent/consent/done.html", context)


# --- Your data: parents' rights from the same link (consent/rights.py) ------------------------------


def _rights_context(link: GuardianLink, token: str, forms: dict[str, ParentRightsRequestForm]) -> dict:
    guardian = link.guardian
    return {
        "school": guardian.school,
        "guardian": guardian,
        "token": token,
        "forms": forms,
        "requests": list(
            RightsRequest.objects.filter(guardian=guardian).select_related("pupil").order_by("-received_at")[:20]
        ),
    }


@no_referrer_csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
@parent_link_headers
def parent_rights(request: HttpRequest, token: str) -> HttpResponse:
    """The "Your data" page: download a copy of everything held, and ask for a correction, a deletion or a
    suppression. Opening it writes nothing; each request is the POST of its own form."""
    link = _resolve_or_refuse(request, token)
    if isinstance(link, HttpResponse):
        return link
    guardian = link.guardian
    forms = {kind: ParentRightsRequestForm(guardian=guardian, kind=kind) for kind in PARENT_KINDS}
    status = 200
    if request.method == "POST":
        kind = request.POST.get("kind", "")
        if kind not in forms:
            return render(request, "parent/rights.html", {
                **_rights_context(link, token, forms), "error": "Choose one of the requests below.",
            }, status=400)
        form = forms[kind] = ParentRightsRequestForm(request.POST, guardian=guardian, kind=kind)
        if form.is_valid():
            try:
                rights_request = rights_request_create(
                    guardian=guardian, kind=kind, details=form.cleaned_data["details"],
                    pupil=form.cleaned_data["pupil"], purpose=link.purpose,
                )
            except ValidationError as exc:
                _form_errors(form, exc)
            else:
                done = reverse("parent:rights-done", kwargs={"token": token})
                return redirect(f"{done}?request={rights_request.pk}")
        status = 400
    return render(request, "parent/rights.html", _rights_context(link, token, forms), status=status)


def _form_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


@no_referrer_csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
@parent_link_headers
def parent_rights_download(request: HttpRequest, token: str) -> HttpResponse:
    """The copy of everything held, as JSON or PDF. A POST with a visible button, not a GET link: mail
    scanners and link previews open GET URLs (promise 4), and a download is worth an audit entry
    ("rights.data_downloaded"), which a GET must never write. A GET here just goes back to the page."""
    link = _resolve_or_refuse(request, token)
    if isinstance(link, HttpResponse):
        return link
    fmt = request.POST.get("format", "") if request.method == "POST" else ""
    if fmt not in DOWNLOAD_FORMATS:
        return redirect(reverse("parent:rights", kwargs={"token": token}))
    data = guardian_data_download(guardian=link.guardian, fmt=fmt)
    return as_download(HttpResponse(data.content, content_type=data.content_type), data.filename)


@require_safe
@parent_link_headers
def parent_rights_done(request: HttpRequest, token: str) -> HttpResponse:
    link = _resolve_or_refuse(request, token)
    if isinstance(link, HttpResponse):
        return link
    rights_request = None
    request_id = request.GET.get("request", "")
    if re.fullmatch(r"[0-9]{1,18}", request_id):
        rights_request = (
            RightsRequest.objects.filter(pk=int(request_id), guardian=link.guardian).select_related("pupil").first()
        )
    return render(request, "parent/rights_done.html", {
        "school": link.guardian.school, "guardian": link.guardian, "rights_request": rights_request, "token": token,
    })
