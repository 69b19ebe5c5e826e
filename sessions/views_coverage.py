"""Who a session is for, on the schedule and edit forms: the consent coverage of the groups and pupils chosen,
and the hand-picked pupils' picker.

The forms work without JavaScript (their "Check coverage" and "Find" buttons re-show the form with everything
kept); static/js/sessions-schedule.js reads the two small GET endpoints below to update them as boxes are
ticked and names typed. Both answer for the schedulers of the school only; another school answers 404, and ids
of another school's groups or pupils are ignored.
"""

import re
from collections.abc import Iterable, Mapping

from django.http import HttpRequest, JsonResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_safe

from consent.models import Purpose
from consent.requests import REQUEST_ROLES
from schools.models import School
from schools.scope import get_school_or_404, scope_for, staff_required

from .coverage import Coverage, coverage_for
from .picker import Picker, picker_read
from .services import SCHEDULE_ROLES

# Bounds the IN lists a crafted query string could ask for (a school's groups and pupils are far fewer).
IDS_MAX = 5000
_ID = re.compile(r"[0-9]{1,18}")


def posted_ids(values: Iterable[str]) -> list[int]:
    return [int(v) for v in list(values)[:IDS_MAX] if _ID.fullmatch(v or "")]


def purpose_of(school: School, raw: str | None) -> Purpose | None:
    """The organisation's purpose with this id, else its first (the one for live video lessons)."""
    purposes = Purpose.objects.filter(organisation_id=school.organisation_id).order_by("id")
    chosen = purposes.filter(pk=int(raw)).first() if raw and _ID.fullmatch(raw) else None
    return chosen or purposes.first()


def audience_context(request: HttpRequest, *, school: School, purpose: Purpose | None, data: Mapping,
                     confirm_verb: str, confirm_errors: Iterable[str] = (), coverage: Coverage | None = None,
                     saved: Mapping | None = None) -> dict:
    """What the audience part of a form shows: the coverage of the chosen groups and pupils, with the box to
    tick when it is below the organisation's share, and the picker. `data` is the posted form (or the initial
    values of an unposted one); a `coverage` the form has just computed is shown as it is. `saved`: the groups
    and pupils a session already has (on the edit form), for which no confirmation is asked again."""
    group_ids = posted_ids(str(v) for v in _list(data, "groups"))
    pupil_ids = posted_ids(str(v) for v in _list(data, "pupils"))
    unchanged = saved is not None and (set(group_ids), set(pupil_ids)) == (
        set(saved.get("groups") or ()), set(saved.get("pupils") or ()))
    if coverage is None and purpose is not None:
        coverage = coverage_for(school=school, purpose=purpose, group_ids=group_ids, pupil_ids=pupil_ids)
    picker = picker_read(school=school, purpose=purpose, chosen_ids=pupil_ids, query=data.get("pupil_search") or "")
    return {
        "coverage": coverage, "picker": picker, "purpose": purpose,
        "may_remind": bool(scope_for(request).roles_at_school(school.pk) & REQUEST_ROLES),
        "confirmed": data.get("confirm_coverage") or "", "confirm_verb": confirm_verb,
        "confirm_label": coverage.confirm_label(confirm_verb) if coverage else "",
        "confirm_errors": list(confirm_errors), "audience_school": school, "ask_confirmation": not unchanged,
        "saved_groups": ",".join(str(pk) for pk in (saved or {}).get("groups") or ()),
        "saved_pupils": ",".join(str(pk) for pk in (saved or {}).get("pupils") or ()),
        "coverage_url": reverse("video_sessions:schedule-coverage", kwargs={"school_pk": school.pk}),
        "pupils_url": reverse("video_sessions:schedule-pupils", kwargs={"school_pk": school.pk}),
    }


def _list(data: Mapping, name: str) -> list:
    if hasattr(data, "getlist"):
        return data.getlist(name)
    value = data.get(name) or []
    return list(value) if isinstance(value, list | tuple | set) else [value]


@staff_required(SCHEDULE_ROLES)
@require_safe
def schedule_coverage(request: HttpRequest, school_pk: int) -> JsonResponse:
    """?groups=…&pupils=…&purpose=…&verb=Save&ask=0: the coverage, its figures and the HTML the form shows (`ask=0`:
    the edit form's groups and pupils are the session's own, so no confirmation is asked)."""
    school = get_school_or_404(request, school_pk, roles=SCHEDULE_ROLES)
    purpose = purpose_of(school, request.GET.get("purpose"))
    if purpose is None:
        return JsonResponse({"html": ""})
    coverage = coverage_for(school=school, purpose=purpose, group_ids=posted_ids(request.GET.getlist("groups")),
                            pupil_ids=posted_ids(request.GET.getlist("pupils")))
    verb = "Save" if request.GET.get("verb") == "Save" else "Schedule"
    html = render_to_string("sessions/_coverage.html", {
        "coverage": coverage, "purpose": purpose, "audience_school": school, "confirm_verb": verb,
        "confirm_label": coverage.confirm_label(verb), "confirmed": request.GET.get("confirm_coverage") or "",
        "may_remind": bool(scope_for(request).roles_at_school(school.pk) & REQUEST_ROLES),
        "ask_confirmation": request.GET.get("ask") != "0",
    }, request=request)
    response = JsonResponse({**coverage.as_data(), "key": coverage.key, "summary": coverage.summary, "html": html})
    response["Cache-Control"] = "no-store"
    return response


@staff_required(SCHEDULE_ROLES)
@require_safe
def schedule_pupils(request: HttpRequest, school_pk: int) -> JsonResponse:
    """?q=…&chosen=…&purpose=…: the pupils the search finds (apart from those chosen), as the picker's rows."""
    school = get_school_or_404(request, school_pk, roles=SCHEDULE_ROLES)
    purpose = purpose_of(school, request.GET.get("purpose"))
    picker: Picker = picker_read(school=school, purpose=purpose, chosen_ids=posted_ids(request.GET.getlist("chosen")),
                                 query=request.GET.get("q") or "")
    html = render_to_string("sessions/_picker_found.html", {"picker": picker}, request=request)
    response = JsonResponse({"found": len(picker.found), "more": picker.more, "html": html})
    response["Cache-Control"] = "no-store"
    return response
