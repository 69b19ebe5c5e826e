"""Staff pages of consent requests: who has been asked, who is waiting, and every email's delivery status.

Only the office, the headteacher and the organisation admin of the school see these pages (403 for other
roles at the school): they show parents' addresses with their delivery failures, as the outbox does.
Another school answers 404. Sending is a GET confirmation (which writes nothing) then a POST.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from schools.scope import get_school_or_404

from .forms_requests import RequestsFilterForm, RequestsSendForm
from .requests import (
    REQUEST_ROLES,
    RequestStatus,
    consent_requests_plan,
    consent_requests_send,
    guardians_with_request_status,
    request_rows,
    request_status_counts,
)
from .views_staff import purpose_choices, purpose_for_school

PAGE_SIZE = 50


@login_required
@require_safe
def request_list(request: HttpRequest, school_pk: int) -> HttpResponse:
    school = get_school_or_404(request, school_pk, roles=REQUEST_ROLES)
    purpose = purpose_for_school(school, request)
    notice = purpose.current_notice() if purpose else None
    form = RequestsFilterForm(request.GET or None, school=school)
    filters = form.cleaned_data if form.is_valid() else {}
    group = filters.get("group")
    context = {
        "active_nav": "dashboard",
        "school": school,
        "purpose": purpose,
        "purposes": purpose_choices(school, purpose),
        "notice": notice,
        "form": form,
        "group": group,
        "statuses": RequestStatus,
        "send_form": RequestsSendForm(school=school, initial={"group": group}),
    }
    if purpose is None:
        return render(request, "consent/requests/list.html", context)
    guardians = guardians_with_request_status(school=school, purpose=purpose, notice=notice, group=group)
    counts = request_status_counts(guardians)
    if filters.get("status"):
        guardians = guardians.filter(request_status=filters["status"])
    for word in (filters.get("q") or "").split():
        guardians = guardians.filter(
            Q(first_name__icontains=word) | Q(last_name__icontains=word) | Q(email__icontains=word)
        )
    page = Paginator(guardians.order_by("last_name", "first_name", "pk"), PAGE_SIZE).get_page(request.GET.get("page"))
    query = urlencode([(k, v) for k, v in request.GET.items() if k != "page" and v])
    context.update({
        "counts": counts,
        "page": page,
        "rows": request_rows(page.object_list, purpose),
        "query": query,
        "filtered": bool(filters.get("status") or filters.get("q")),
    })
    return render(request, "consent/requests/list.html", context)


def _list_url(school_pk: int, group, purpose=None) -> str:
    url = reverse("consent:requests", kwargs={"school_pk": school_pk})
    params = {"purpose": purpose.pk} if purpose else {}
    if group:
        params["group"] = group.pk
    return f"{url}?{urlencode(params)}" if params else url


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def requests_send(request: HttpRequest, school_pk: int) -> HttpResponse:
    school = get_school_or_404(request, school_pk, roles=REQUEST_ROLES)
    purpose = purpose_for_school(school, request)
    form = RequestsSendForm(request.POST if request.method == "POST" else request.GET, school=school)
    if not form.is_valid():
        messages.error(request, "Choose a group of this school, or the whole school.")
        return redirect("consent:requests", school_pk=school.pk)
    group, include_exhausted = form.cleaned_data["group"], form.cleaned_data["include_exhausted"]
    if purpose is None:
        messages.error(request, "Nothing has been set up yet for parents of this organisation to agree to.")
        return redirect("consent:requests", school_pk=school.pk)
    if request.method == "POST":
        try:
            result = consent_requests_send(
                school=school, purpose=purpose, group=group, actor=request.user, include_exhausted=include_exhausted
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            where = f"guardians of {group.name}" if group else "the whole school"
            messages.success(request, f"Consent requests to {where}: {result}.")
        return redirect(_list_url(school.pk, group, purpose))
    plan = consent_requests_plan(school=school, purpose=purpose, group=group, include_exhausted=include_exhausted)
    return render(request, "consent/requests/confirm.html", {
        "active_nav": "dashboard",
        "school": school,
        "purpose": purpose,
        "group": group,
        "form": form,
        "plan": plan,
        "include_exhausted": include_exhausted,
        "back_url": _list_url(school.pk, group, purpose),
    })
