from functools import wraps

from csp.constants import NONE, SELF, UNSAFE_INLINE
from csp.decorators import csp_replace
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_POST

from schools.models import School
from schools.scope import scope_for, scoped_get_or_404, staff_required

from .forms import OutboxFilterForm
from .models import OutboxMessage
from .services import OUTBOX_ROLES, outbox_retry, outbox_visible_to

PAGE_SIZE = 50
# Everything but the bodies: the outbox page never shows them (they hold parents' links and passwords).
LIST_FIELDS = ("id", "school", "organisation", "template", "recipient", "subject", "status", "attempts",
               "last_error", "possible_duplicate", "created_at", "sent_at", "message_id")


@staff_required(roles=OUTBOX_ROLES)
def outbox_list(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request)
    rows = outbox_visible_to(scope).only(*LIST_FIELDS)
    form = OutboxFilterForm(request.GET or None)
    if form.is_valid():
        rows = form.apply(rows)
    page = Paginator(rows.order_by("-created_at", "-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "outbox/list.html",
        {
            "active_nav": "outbox",
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "school_names": dict(School.objects.filter(pk__in=scope.school_ids).values_list("pk", "name")),
            "failed_count": outbox_visible_to(scope).filter(status=OutboxMessage.Status.FAILED).count(),
        },
    )


@require_POST
@staff_required(roles=OUTBOX_ROLES)
def outbox_retry_view(request: HttpRequest, pk: int) -> HttpResponse:
    message = scoped_get_or_404(
        request, outbox_visible_to(scope_for(request)).only(*LIST_FIELDS), roles=OUTBOX_ROLES,
        school_path="school", organisation_path="organisation", pk=pk,
    )
    if outbox_retry(message=message, actor=request.user):
        messages.success(request, f"Email to {message.recipient} queued again; it will be sent in a moment.")
    else:
        messages.error(request, f"Email to {message.recipient} is not failed any more, so it was not retried.")
    return redirect("outbox:list")


# ---------------------------------------------------------------------------------------------------
# Demo mailbox: every email the demo "sent", readable in the browser (DEMO_MODE only).


def demo_only(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not settings.DEMO_MODE:
            raise Http404("The demo mailbox exists in demo mode only.")
        return view(request, *args, **kwargs)

    return wrapper


@demo_only
@staff_required()
@never_cache
def demo_mailbox(request: HttpRequest) -> HttpResponse:
    rows = OutboxMessage.objects.only(*LIST_FIELDS).select_related("school").order_by("-created_at", "-id")
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "outbox/demo_mailbox.html", {"active_nav": "demo_mailbox", "page": page, "query": ""})


@demo_only
@staff_required()
@never_cache
def demo_message(request: HttpRequest, pk: int) -> HttpResponse:
    message = get_object_or_404(OutboxMessage.objects.select_related("school", "organisation"), pk=pk)
    return render(
        request,
        "outbox/demo_message.html",
        {"active_nav": "demo_mailbox", "message": message, "attachments": message.attachment_list(),
         "from_email": settings.DEFAULT_FROM_EMAIL},
    )


# An email's HTML legitimately uses inline styles, which the site's CSP forbids; this one response
# allows them, and nothing else: no scripts, no plugins, no forms, no loads from elsewhere. It is framed
# (sandboxed) by the demo message page only.
EMAIL_HTML_CSP = {
    "default-src": [NONE],
    "style-src": [UNSAFE_INLINE],
    "img-src": [SELF, "data:"],
    "font-src": [NONE],
    "script-src": [NONE],
    "connect-src": [NONE],
    "form-action": [NONE],
    "frame-ancestors": [SELF],
    "base-uri": [NONE],
    "object-src": [NONE],
}


@demo_only
@staff_required()
@never_cache
@xframe_options_sameorigin
@csp_replace(EMAIL_HTML_CSP)
def demo_message_html(request: HttpRequest, pk: int) -> HttpResponse:
    message = get_object_or_404(OutboxMessage, pk=pk)
    # Links open in a new top-level tab: inside the frame the site's own pages refuse to be framed.
    html = message.body_html
    base = '<base target="_blank">'
    head = html.lower().find("<head>")
    html = html[: head + 6] + base + html[head + 6 :] if head >= 0 else base + html
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    response["Referrer-Policy"] = "no-referrer"
    return response
