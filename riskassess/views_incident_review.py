"""The review of a risk assessment flagged after an incident: what the assessment page shows of it, and
"Reviewed — no change needed" (after "confirm it's you"). The other way out, "Revise", is the assessment's own
new version (`views_assessments.assessment_revise`), whose approval clears the flags.

Who reviews a flag: the headteacher of the school where it happened, or the organisation admin
(`services.may_review_flag`); teachers and the office read; another school's assessment answers 404.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.reauth import confirm_page_url, identity_confirmation_consume, identity_recently_confirmed
from schools.scope import scope_for, scoped_get_or_404, staff_required

from .forms import ReviewNoChangeForm
from .models import Assessment, ReviewFlag
from .services import assessment_review_no_change, may_review_flag

NAV = "risks"
HISTORY_SIZE = 10
# What was typed on the review page while the confirmation ran out: kept across "confirm it's you".
TYPED_KEY = "gatehouse_review_reason"


def review_flags(assessment: Assessment) -> tuple[list[ReviewFlag], list[ReviewFlag]]:
    """The assessment's open flags, oldest first, and its last reviews, newest first, each with the incidents
    that raised it and their lessons: three queries."""
    # The incidents are the sessions' (above the register on the ladder): reached through the relation only.
    incident_model = ReviewFlag._meta.get_field("incidents").related_model
    incidents = Prefetch("incidents", queryset=incident_model.objects.select_related("session__school")
                         .order_by("reported_at", "pk"))
    flags = (ReviewFlag.objects.filter(assessment=assessment)
             .select_related("school", "raised_by", "escalated_by", "cleared_by").prefetch_related(incidents))
    open_flags = list(flags.filter(cleared_at__isnull=True).order_by("raised_at", "pk"))
    history = list(flags.filter(cleared_at__isnull=False).order_by("-cleared_at", "-pk")[:HISTORY_SIZE])
    for flag in open_flags + history:
        flag.assessment = assessment
    return open_flags, history


def review_context(request: HttpRequest, assessment: Assessment) -> dict:
    """For the assessment page: the review after an incident, and whether this person may do it."""
    open_flags, history = review_flags(assessment)
    scope = scope_for(request)
    return {"open_flags": open_flags, "review_history": history,
            "may_review": any(may_review_flag(scope, flag) for flag in open_flags)}


def _assessment(request: HttpRequest, pk: int) -> Assessment:
    return scoped_get_or_404(request, Assessment.objects.select_related("school", "organisation"), pk=pk,
                             school_path="school", organisation_path="organisation")


@staff_required()
@require_http_methods(["GET", "POST"])
@never_cache
def assessment_review(request: HttpRequest, pk: int) -> HttpResponse:
    """"Reviewed — no change needed": confirm it's you, say why, and the flags this person reviews are cleared
    (the gate turns green again where they blocked it, their incidents close)."""
    assessment = _assessment(request, pk)
    open_flags, _ = review_flags(assessment)
    if not open_flags:
        messages.info(request, "This assessment is not flagged for review: there is nothing to review.")
        return redirect("riskassess:assessment", pk=assessment.pk)
    scope = scope_for(request)
    mine = [flag for flag in open_flags if may_review_flag(scope, flag)]
    if not mine:
        raise PermissionDenied
    url = reverse("riskassess:assessment-review", kwargs={"pk": assessment.pk})
    typed = request.session.get(TYPED_KEY, {})
    if request.method == "POST":
        form = ReviewNoChangeForm(request.POST)
        if form.is_valid() and not identity_recently_confirmed(request):
            # Kept, so that confirming does not cost what was written (design promise 12).
            request.session[TYPED_KEY] = {"assessment": assessment.pk, "reason": form.cleaned_data["reason"]}
            messages.info(request, "Please confirm it's you: your reason is kept and shown again.")
            return redirect(confirm_page_url(url))
        if form.is_valid():
            try:
                cleared = assessment_review_no_change(assessment=assessment, actor=request.user,
                                                      reason=form.cleaned_data["reason"])
            except ValidationError as error:
                for name, errors in (error.message_dict.items() if hasattr(error, "error_dict")
                                     else [(None, error.messages)]):
                    form.add_error(name if name in form.fields else None, errors)
            else:
                identity_confirmation_consume(request)
                request.session.pop(TYPED_KEY, None)
                places = sorted({flag.school.name for flag in cleared if flag.school_id})
                where = f"at {' and '.join(places)}" if places else "where it applies"
                messages.success(request, f"Reviewed, no change needed: lessons {where} may go ahead again, and "
                                          "the incidents are closed with your reason.")
                return redirect("riskassess:assessment", pk=assessment.pk)
    else:
        if not identity_recently_confirmed(request):
            return redirect(confirm_page_url(url))
        initial = {"reason": typed["reason"]} if typed.get("assessment") == assessment.pk else {}
        form = ReviewNoChangeForm(initial=initial)
    return render(request, "riskassess/reviews/review_no_change.html", {
        "active_nav": NAV, "assessment": assessment, "flags": mine,
        "others": [flag for flag in open_flags if flag not in mine], "form": form,
        "where": assessment.school.name if assessment.school_id else f"All of {assessment.organisation.name}",
    })
