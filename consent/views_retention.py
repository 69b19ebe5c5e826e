"""The retention schedule's page: what the organisation keeps, for how long, and what goes next."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from schools.models import Organisation, Role
from schools.scope import scope_for, scoped_get_or_404, staff_required

from .forms import RetentionScheduleForm
from .retention import retention_outlook, retention_schedule_update, schedule_for

# The schedule is the organisation's (the data controller's) decision: its admin sets it; those who
# answer for data protection read it.
RETENTION_READERS = frozenset({Role.HEADTEACHER, Role.DPO, Role.SIRO, Role.ORG_ADMIN})
RETENTION_EDITORS = frozenset({Role.ORG_ADMIN})


@staff_required(roles=RETENTION_READERS)
def retention_list(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request)
    ids = [oid for oid in scope.organisation_ids if scope.roles_in_organisation(oid) & RETENTION_READERS]
    if len(ids) == 1:
        return redirect("consent:retention", organisation_pk=ids[0])
    organisations = Organisation.objects.filter(pk__in=ids).order_by("name")
    return render(request, "consent/retention/list.html", {"active_nav": "retention", "organisations": organisations})


@login_required  # the scope decides: another organisation's page is 404, too low a role 403
def retention_detail(request: HttpRequest, organisation_pk: int) -> HttpResponse:
    organisation = scoped_get_or_404(
        request, Organisation, roles=RETENTION_READERS, school_path=None, organisation_path="pk", pk=organisation_pk
    )
    can_edit = bool(scope_for(request).roles_in_organisation(organisation.pk) & RETENTION_EDITORS)
    schedule = schedule_for(organisation)
    form = RetentionScheduleForm(instance=schedule)
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied
        form = RetentionScheduleForm(request.POST, instance=schedule_for(organisation))
        if form.is_valid():
            try:
                retention_schedule_update(
                    organisation=organisation, actor=request.user,
                    leaver_month=form.cleaned_data["leaver_month"], evidence_years=form.cleaned_data["evidence_years"],
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, "Retention schedule saved. The next hourly run applies it.")
                return redirect("consent:retention", organisation_pk=organisation.pk)
        schedule = schedule_for(organisation)
    return render(request, "consent/retention/detail.html", {
        "active_nav": "retention",
        "organisation": organisation,
        "schedule": schedule,
        "form": form,
        "can_edit": can_edit,
        "outlook": retention_outlook(organisation=organisation, schedule=schedule),
        "today": timezone.localdate(),
    })
