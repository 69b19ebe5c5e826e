"""The home page: what each person sees at once when they sign in — what is ready, what is blocked, and what
needs them.

One page, sections by role; a person with several roles sees each of theirs:

- headteachers: the next 14 days of lessons with their readiness, consent coverage per class (per school
  for an executive head), risk assessments and PIAs waiting or out of date, overdue actions, parents'
  requests with the days left, emails that failed, incidents;
- teachers: their lessons, incidents they reported, attendance not yet recorded;
- office: parents not yet asked or not answering, imports waiting for confirmation, requests, failed emails;
- the DPO, SIRO and organisation admin: the DPO's queue, PIAs and assessments due across the organisation,
  requests near or past their deadline in any school, incidents, and a row of readiness figures per school.

"Needs you" (`needs_you`) lists what only this person can move forward, most urgent first: what stops lessons,
then what has a due date (soonest first), then the rest (oldest first); its count is in the navigation bar of
every staff page.

Every figure is an aggregate query or one page of rows: the number of queries does not grow with the number
of schools, lessons or pupils, and a list shows its first few items with a link to the full page.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery, Value
from django.urls import reverse
from django.utils import timezone

from consent.counts import school_figures
from consent.figures import Figures, consent_figures
from consent.models import Group, ImportRun, Purpose, RightsRequest
from consent.requests import RequestStatus, unanswered_counts_by_school
from consent.rights import RIGHTS_ROLES
from outbox.models import OutboxMessage
from outbox.services import OUTBOX_ROLES, outbox_visible_to
from pia.models import PiaVersion
from riskassess.models import Assessment, AssessmentVersion, Hazard, ReviewFlag
from riskassess.services import APPROVE_ROLES
from sessions.gate import gates_for_combinations
from sessions.models import Attendance, Delivery, Incident, VideoSession
from sessions.readiness import Readiness, sessions_readiness

from .models import ORGANISATION_ROLES, Organisation, Role, School
from .scope import StaffScope

User = get_user_model()
LESSON_DAYS = 14
LIST_SIZE = 8  # items of a list shown on the home page; the rest are on the full page
REVIEW_SOON_DAYS = 30
REQUEST_SOON_DAYS = 7
INCIDENT_DAYS = 14
ATTENDANCE_DAYS = 14
PiaStatus = PiaVersion.Status


def _url(name: str, *args, query: str = "") -> str:
    return reverse(name, args=args) + (f"?{query}" if query else "")


@dataclass(frozen=True)
class Todo:
    """Something only this person can move forward."""

    kind: str  # advise, decide, sign, approve, review, answer, attendance, action
    title: str
    url: str
    since: datetime
    school_name: str
    blocking: bool = False  # it stops lessons until it is done
    due: date | None = None

    @property
    def urgency(self) -> tuple:
        """Sort key: what stops lessons first, then what is due soonest, then the oldest."""
        return (not self.blocking, self.due is None, self.due or date.min, self.since)


@dataclass
class Listing:
    """The first items of a list, its total and where the rest are."""

    items: list
    total: int
    url: str = ""

    @property
    def more(self) -> int:
        return max(self.total - len(self.items), 0)


# --- The pieces ---------------------------------------------------------------------------------------------


def _lessons(sessions_qs, now: datetime, url: str) -> tuple[list[Readiness], dict]:
    window = sessions_qs.filter(status=VideoSession.Status.SCHEDULED, starts_at__gte=now - timedelta(hours=1),
                                starts_at__lt=now + timedelta(days=LESSON_DAYS))
    shown = list(window.select_related("school__organisation", "host", "platform").order_by("starts_at", "pk")
                 [:LIST_SIZE * 2])
    readiness = sessions_readiness(shown, now)
    total = window.count()
    return readiness, {"total": total, "url": url, "more": max(total - len(shown), 0),
                       "blocked_shown": sum(r.blocked for r in readiness)}


def _purposes(organisation_ids) -> dict[int, Purpose]:
    """Each organisation's first purpose (live video lessons): the one the home page counts consent for."""
    found: dict[int, Purpose] = {}
    for purpose in Purpose.objects.filter(organisation_id__in=list(organisation_ids)).order_by("id"):
        found.setdefault(purpose.organisation_id, purpose)
    return found


def _coverage_row(figures: Figures) -> dict:
    return {"total": figures.total, "consented": figures.consented, "refused": figures.refused + figures.withdrawn,
            "no_answer": figures.no_answer, "lapsed": figures.lapsed, "renewal": figures.renewal}


def coverage_by_group(school: School, purpose: Purpose | None) -> list[dict]:
    """One school's classes and groups with their consent figures: two queries."""
    counts = consent_figures(school_ids=[school.pk], purpose=purpose, by="group") if purpose else {}
    rows = []
    for group in Group.objects.filter(school=school).order_by("kind", "name"):
        row = _coverage_row(counts.get(group.pk, Figures()))
        rows.append({"group": group, **row, "url": _url("consent:pupils", school.pk, query=f"group={group.pk}")})
    return [row for row in rows if row["total"]]


def coverage_by_school(schools: list[School], purposes: dict[int, Purpose]) -> dict[int, dict]:
    """school id → its consent figures (only the children on roll where the organisation has no purpose yet):
    two queries per organisation, the states from the maintained counts (`consent.counts`)."""
    result: dict[int, dict] = {}
    for organisation_id in sorted({s.organisation_id for s in schools}):
        ids = [s.pk for s in schools if s.organisation_id == organisation_id]
        figures = school_figures(school_ids=ids, purpose=purposes.get(organisation_id))
        result.update({pk: _coverage_row(row) for pk, row in figures.items()})
    return result


def _assessments_due(scope: StaffScope, school_ids, organisation_ids, today: date) -> Listing:
    approved = AssessmentVersion.objects.filter(assessment=OuterRef("pk"), status=AssessmentVersion.Status.APPROVED)
    assessments = (
        Assessment.objects.filter(Q(school_id__in=school_ids)
                                  | Q(school__isnull=True, organisation_id__in=organisation_ids))
        .annotate(review_on=Subquery(approved.values("review_on")[:1]))
        .filter(Q(review_on__lte=today + timedelta(days=REVIEW_SOON_DAYS)) | Q(review_flagged_at__isnull=False))
    )
    items = list(assessments.select_related("school").order_by("review_on", "pk")[:LIST_SIZE])
    for item in items:
        item.overdue = bool(item.review_on and item.review_on < today)
    return Listing(items, assessments.count(), _url("riskassess:reviews-due"))


def _pias_out_of_date(school_ids, organisation_ids, today: date) -> Listing:
    signed = (PiaVersion.objects.filter(status=PiaStatus.SIGNED, review_on__lt=today)
              .filter(Q(pia__school_id__in=school_ids) | Q(pia__school__isnull=True,
                                                            pia__organisation_id__in=organisation_ids)))
    items = list(signed.select_related("pia__school").order_by("review_on", "pk")[:LIST_SIZE])
    return Listing(items, signed.count(), _url("pia:list"))


def _rights(school_ids, today: date, *, soon_only: bool = False) -> Listing:
    requests = RightsRequest.objects.filter(school_id__in=school_ids, status__in=RightsRequest.ACTIVE)
    if soon_only:
        requests = requests.filter(due_on__lte=today + timedelta(days=REQUEST_SOON_DAYS))
    items = list(requests.select_related("school").order_by("due_on", "received_at", "pk")[:LIST_SIZE])
    for item in items:
        item.days_left = (item.due_on - today).days
        item.days_late = -item.days_left
    return Listing(items, requests.count(), _url("consent:rights"))


def _email_problems(scope: StaffScope, school_ids) -> dict:
    outbox = {"failed": 0, "possible_duplicates": 0}
    if scope.has_any_role(OUTBOX_ROLES):
        outbox = outbox_visible_to(scope).aggregate(
            failed=Count("id", filter=Q(status=OutboxMessage.Status.FAILED)),
            possible_duplicates=Count("id", filter=Q(possible_duplicate__gt=0)),
        )
    invitations = Delivery.objects.filter(session__school_id__in=school_ids).aggregate(
        failed=Count("id", filter=Q(status=Delivery.Status.FAILED)),
        possible_duplicates=Count("id", filter=Q(possible_duplicate__gt=0)),
    )
    failed_sessions = list(
        VideoSession.objects.filter(school_id__in=school_ids, deliveries__status=Delivery.Status.FAILED)
        .select_related("school").distinct().order_by("-starts_at", "-pk")[:LIST_SIZE])
    return {"outbox": outbox, "invitations": invitations, "failed_sessions": failed_sessions,
            "outbox_url": _url("outbox:list") if scope.has_any_role(OUTBOX_ROLES) else "",
            "any": bool(outbox["failed"] or outbox["possible_duplicates"] or invitations["failed"]
                        or invitations["possible_duplicates"])}


def _incidents(school_ids, now: datetime, url: str = "", **conditions) -> Listing:
    """The incidents of the last 14 days, and any older one not closed yet; `url` is the incidents log."""
    recent = Q(reported_at__gte=now - timedelta(days=INCIDENT_DAYS))
    not_closed = ~Q(status=Incident.Status.CLOSED)
    incidents = Incident.objects.filter(session__school_id__in=school_ids, **conditions).filter(recent | not_closed)
    items = list(incidents.select_related("session__school", "flagged_assessment").order_by("-reported_at", "-pk")
                 [:LIST_SIZE])
    return Listing(items, incidents.count(), url)


def _attendance_missing_queryset(user, now: datetime) -> QuerySet:
    """The person's lessons of the last 14 days that have started and have no attendance recorded."""
    return (VideoSession.objects.filter(host=user, status=VideoSession.Status.SCHEDULED,
                                        starts_at__gte=now - timedelta(days=ATTENDANCE_DAYS), starts_at__lt=now)
            .exclude(Exists(Attendance.objects.filter(session=OuterRef("pk")))))


@dataclass
class Fix:
    """Who can let blocked lessons go ahead, said once for all the lessons it holds up rather than under each:
    to the reader ("You can review it") when it is theirs to do, with the page where they do it."""

    text: str
    lessons: int = 0
    url: str = ""  # the page where the reader does it, when it is theirs


def _flag_stops(flag: ReviewFlag, school: School) -> bool:
    assessment = flag.assessment
    return (assessment.organisation_id == school.organisation_id and flag.blocks(school)
            and (flag.is_escalated or assessment.school_id in (None, school.pk)))


def lesson_fixes(lessons: list[Readiness], scope: StaffScope) -> list[Fix]:
    """For the blocked lessons among `lessons`: who can put each right, one line per distinct answer. A lesson
    stopped by a review after an incident that this person reviews says so to them, with the assessment's page.
    One query when a lesson's risk assessment is what stops it, none otherwise."""
    blocked = [r for r in lessons if r.blocked]
    flags: list[ReviewFlag] = []
    if any(r.gate.failing[0].key == "assessment" for r in blocked):
        flags = list(_flags_i_review(*_approvers(scope)).select_related("assessment").order_by("raised_at", "pk"))
    fixes: dict[tuple, Fix] = {}
    for r in blocked:
        check = r.gate.failing[0]
        mine = [flag for flag in flags if check.key == "assessment" and _flag_stops(flag, r.session.school)]
        if mine:
            assessment = mine[0].assessment
            key = ("review", assessment.pk)
            fix = fixes.setdefault(key, Fix(f"You can review it: open the risk assessment “{assessment.title}”",
                                            url=_url("riskassess:assessment", assessment.pk) + "#review"))
        else:
            fix = fixes.setdefault(("who", check.fixer), Fix(check.fixer))
        fix.lessons += 1
    return sorted(fixes.values(), key=lambda fix: not fix.url)


# --- Needs you ----------------------------------------------------------------------------------------------


def _controller_pias(scope: StaffScope) -> Q:
    """PIAs this person decides on as data controller: their schools' as headteacher, and an organisation's
    whole-organisation PIAs where they are headteacher of every school (`pia.services.controller_roles`)."""
    head_schools = scope.schools_where({Role.HEADTEACHER})
    whole = [oid for oid in scope.organisation_ids
             if Role.HEADTEACHER in _whole_organisation_roles(scope, oid)]
    return Q(pia__school_id__in=head_schools) | Q(pia__school__isnull=True, pia__organisation_id__in=whole)


def _whole_organisation_roles(scope: StaffScope, organisation_id: int) -> frozenset[str]:
    """Like `StaffScope.roles_for_whole_organisation`, from the scope alone (no query per organisation)."""
    schools = [sid for sid, oid in scope.organisation_by_school.items() if oid == organisation_id]
    held = set(scope.roles_by_organisation.get(organisation_id, frozenset()))
    if schools:
        held |= frozenset.intersection(*(scope.roles_at_school(sid) for sid in schools))
    return frozenset(held)


PIA_STEPS = {
    PiaStatus.SUBMITTED: ("advise", "Give your advice on"),
    PiaStatus.ADVISED: ("decide", "Decide, as data controller, on"),
    PiaStatus.DECIDED: ("sign", "Sign, as SIRO,"),
}


def _where(obj) -> str:
    """The school of a PIA or an assessment, or its whole organisation."""
    return obj.school.name if obj.school_id else f"All of {obj.organisation.name}"


def _org_roles(scope: StaffScope, role: str) -> list[int]:
    return [oid for oid, roles in scope.roles_by_organisation.items() if role in roles]


def _approvers(scope: StaffScope) -> tuple[frozenset[int], list[int]]:
    """The schools whose assessments this person approves, and the organisations whose organisation-wide ones."""
    return (scope.schools_where(APPROVE_ROLES),
            [oid for oid in scope.organisation_ids if _whole_organisation_roles(scope, oid) & APPROVE_ROLES])


def _flags_i_review(approvers, approver_orgs) -> QuerySet:
    """The open review flags this person reviews. A flag is reviewed where the incident happened
    (`riskassess.services.may_review_flag`): by the headteacher of that school, even for the organisation's
    assessment; a flag of no school, by the assessment's approvers."""
    return ReviewFlag.objects.filter(
        Q(school_id__in=approvers)
        | Q(school__isnull=True, assessment__school_id__in=approvers)
        | Q(school__isnull=True, assessment__school__isnull=True, assessment__organisation_id__in=approver_orgs),
        cleared_at__isnull=True)


def _my_open_flags(approvers, approver_orgs) -> QuerySet:
    """`_flags_i_review` of the outer assessment."""
    return _flags_i_review(approvers, approver_orgs).filter(assessment=OuterRef("pk"))


def _todo_querysets(user, scope: StaffScope, now: datetime) -> dict[str, QuerySet]:
    """What waits for this person, source by source: the one definition behind both the list and the count."""
    sources: dict[str, QuerySet] = {}
    steps = []
    if dpo := _org_roles(scope, Role.DPO):
        steps.append(Q(status=PiaStatus.SUBMITTED, pia__organisation_id__in=dpo))
    if scope.has_any_role({Role.HEADTEACHER}):
        steps.append(Q(status=PiaStatus.ADVISED) & _controller_pias(scope))
    if siro := _org_roles(scope, Role.SIRO):
        steps.append(Q(status=PiaStatus.DECIDED, pia__organisation_id__in=siro))
    if steps:
        condition = steps[0]
        for step in steps[1:]:
            condition |= step
        # Nobody decides on a version they wrote (`pia.services`): it is not theirs to move.
        sources["pia"] = PiaVersion.objects.filter(condition).exclude(created_by=user)
    approvers, approver_orgs = _approvers(scope)
    if approvers or approver_orgs:
        sources["approve"] = (AssessmentVersion.objects.filter(
            Q(assessment__school_id__in=approvers)
            | Q(assessment__school__isnull=True, assessment__organisation_id__in=approver_orgs),
            status=AssessmentVersion.Status.SUBMITTED).exclude(submitted_by=user))
        open_flags = ReviewFlag.objects.filter(assessment=OuterRef("pk"), cleared_at__isnull=True)
        approver_of = Q(school_id__in=approvers) | Q(school__isnull=True, organisation_id__in=approver_orgs)
        sources["review"] = (Assessment.objects.filter(review_flagged_at__isnull=False)
                             .filter(Exists(_my_open_flags(approvers, approver_orgs))
                                     | (~Exists(open_flags) & approver_of)))
    # The school answers a parent's request (its headteacher or office); the DPO and the organisation admin
    # follow the deadlines in their own section rather than each being told the request is theirs.
    if rights_schools := scope.schools_where(RIGHTS_ROLES & {Role.HEADTEACHER, Role.OFFICE}):
        sources["answer"] = RightsRequest.objects.filter(school_id__in=rights_schools, status__in=RightsRequest.ACTIVE)
    sources["attendance"] = _attendance_missing_queryset(user, now)
    sources["action"] = (Hazard.objects.filter(action_owner=user, action_done_on__isnull=True,
                                               action_due_on__lt=timezone.localdate(now),
                                               version__status=AssessmentVersion.Status.APPROVED)
                         .exclude(further_action=""))
    return sources


def needs_you_count(user, scope: StaffScope, now: datetime | None = None) -> int:
    """How many things wait for this person (the navigation bar's badge): one query, whatever the roles."""
    sources = _todo_querysets(user, scope, now or timezone.now())
    counts = {kind: Subquery(qs.order_by().annotate(one=Value(1)).values("one").annotate(n=Count("*")).values("n"))
              for kind, qs in sources.items()}
    row = User.objects.filter(pk=user.pk).annotate(**counts).values(*counts).first() or {}
    return sum(n or 0 for n in row.values())


def needs_you(user, scope: StaffScope, now: datetime | None = None) -> list[Todo]:
    """What only this person can move forward, most urgent first (`Todo.urgency`; at most 50 of each kind)."""
    now = now or timezone.now()
    sources = _todo_querysets(user, scope, now)
    items: list[Todo] = []
    if "pia" in sources:
        for version in (sources["pia"].select_related("pia__school", "pia__organisation")
                        .order_by("submitted_at", "pk")[:50]):
            kind, verb = PIA_STEPS[version.status]
            items.append(Todo(kind, f"{verb} the PIA “{version.pia.title}” (version {version.number})",
                              _url(f"pia:{kind}", version.pk), version.submitted_at or version.created_at,
                              _where(version.pia)))
    if "approve" in sources:
        for version in (sources["approve"].select_related("assessment__school", "assessment__organisation")
                        .order_by("submitted_at", "pk")[:50]):
            items.append(Todo("approve", f"Approve the risk assessment “{version.assessment.title}” "
                                         f"(version {version.number})",
                              _url("riskassess:version", version.pk), version.submitted_at or version.created_at,
                              _where(version.assessment)))
        # Named after the school where the incident happened, whose lessons it stops (the flag's school), not
        # the whole organisation of an organisation-wide assessment.
        where = _my_open_flags(*_approvers(scope)).order_by("raised_at", "pk").values("school__name")[:1]
        reviews = (sources["review"].select_related("school", "organisation")
                   .annotate(flag_school=Subquery(where)).order_by("review_flagged_at")[:50])
        for assessment in reviews:
            items.append(Todo("review", f"Review the risk assessment “{assessment.title}”: flagged after an incident",
                              _url("riskassess:assessment", assessment.pk), assessment.review_flagged_at,
                              assessment.flag_school or _where(assessment), blocking=True))
    if "answer" in sources:
        for request in sources["answer"].select_related("school").order_by("received_at", "pk")[:50]:
            days = (request.due_on - timezone.localdate(now, request.school.tz)).days
            left = f"{days} days left" if days > 1 else ("1 day left" if days == 1 else
                                                           "due today" if days == 0 else f"{-days} days late")
            items.append(Todo("answer", f"Answer a parent's {request.get_kind_display().split(' (')[0].lower()} "
                                        f"request ({left})",
                              _url("consent:rights-request", request.pk), request.received_at, request.school.name,
                              due=request.due_on))
    for session in sources["attendance"].select_related("school").order_by("starts_at", "pk")[:50]:
        items.append(Todo("attendance", f"Record attendance for “{session.title}”",
                          _url("video_sessions:attendance", session.pk), session.ends_at, session.school.name))
    for hazard in sources["action"].select_related("version__assessment__school",
                                                   "version__assessment__organisation").order_by("action_due_on")[:50]:
        items.append(Todo("action", f"Overdue action: {hazard.further_action[:80]}",
                          _url("riskassess:actions-overdue"),
                          timezone.make_aware(datetime.combine(hazard.action_due_on, datetime.min.time())),
                          _where(hazard.version.assessment), due=hazard.action_due_on))
    return sorted(items, key=lambda item: item.urgency)


# --- The page -----------------------------------------------------------------------------------------------


@dataclass
class Home:
    needs_you: list[Todo]
    head: dict | None = None
    teacher: dict | None = None
    office: dict | None = None
    organisation: dict | None = None
    roles: list[str] = field(default_factory=list)


def _school_rows(schools: list[School], purposes: dict[int, Purpose], now: datetime) -> list[dict]:
    """Per school: lessons in the next 14 days and how many are blocked, consent coverage, failed emails.
    A constant number of queries whatever the number of schools."""
    ids = [s.pk for s in schools]
    window = (VideoSession.objects.filter(school_id__in=ids, status=VideoSession.Status.SCHEDULED,
                                          starts_at__gte=now - timedelta(hours=1),
                                          starts_at__lt=now + timedelta(days=LESSON_DAYS)))
    lessons = dict(window.values_list("school_id").annotate(n=Count("pk")).order_by())
    # Blocked: the gate of each (school, platform, host) of the window's lessons, asked once each.
    combos = list(window.values_list("school_id", "platform_id", "host_id").annotate(n=Count("pk")).order_by())
    hosts = {user.pk: user for user in User.objects.filter(pk__in={host for _, _, host, _ in combos})}
    by_id = {s.pk: s for s in schools}
    gates = gates_for_combinations([(by_id[school], platform, hosts.get(host)) for school, platform, host, _ in combos])
    blocked: dict[int, int] = defaultdict(int)
    for school, platform, host, n in combos:
        if not gates[school, platform, host].ok:
            blocked[school] += n
    coverage = coverage_by_school(schools, purposes)
    failed = dict(Delivery.objects.filter(session__school_id__in=ids, status=Delivery.Status.FAILED)
                  .values_list("session__school_id").annotate(n=Count("pk")).order_by())
    rows = []
    for school in schools:
        figures = coverage.get(school.pk, {})
        total = figures.get("total", 0)
        consented = figures.get("consented", 0)
        rows.append({"school": school, "lessons": lessons.get(school.pk, 0), "blocked": blocked.get(school.pk, 0),
                     "children": total, "consented": consented,
                     "percent": consented * 100 // total if total else None,
                     "no_answer": figures.get("no_answer", 0), "failed": failed.get(school.pk, 0),
                     "url": _url("consent:pupils", school.pk)})
    return rows


def home_page(user, scope: StaffScope, now: datetime | None = None, coverage_school: int | None = None) -> Home:
    """Everything the home page shows this person, section by section. `coverage_school` picks the school
    whose classes a head of several schools sees."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    home = Home(needs_you=needs_you(user, scope, now))
    schools = list(School.objects.filter(pk__in=scope.school_ids).select_related("organisation").order_by("name"))
    by_id = {s.pk: s for s in schools}
    purposes = _purposes(scope.organisation_ids)

    head_schools = sorted(scope.schools_where({Role.HEADTEACHER}), key=lambda pk: by_id[pk].name)
    if head_schools:
        head_orgs = {by_id[pk].organisation_id for pk in head_schools}
        lessons, lesson_totals = _lessons(VideoSession.objects.filter(school_id__in=head_schools), now,
                                          _url("video_sessions:list"))
        head = {
            "schools": [by_id[pk] for pk in head_schools], "several": len(head_schools) > 1,
            "lessons": lessons, "lesson_totals": lesson_totals, "fixes": lesson_fixes(lessons, scope),
            "assessments": _assessments_due(scope, head_schools, head_orgs, today),
            "pias_waiting": [todo for todo in home.needs_you if todo.kind == "decide"],
            "pias_out_of_date": _pias_out_of_date(head_schools, head_orgs, today),
            "actions_overdue": Hazard.objects.filter(
                Q(version__assessment__school_id__in=head_schools)
                | Q(version__assessment__school__isnull=True, version__assessment__organisation_id__in=head_orgs),
                version__status=AssessmentVersion.Status.APPROVED, action_done_on__isnull=True,
                action_due_on__lt=today).exclude(further_action="").count(),
            "rights": _rights(head_schools, today),
            "emails": _email_problems(scope, head_schools),
            "incidents": _incidents(head_schools, now, _url("video_sessions:incidents")),
        }
        # Every school's row, and the classes of one school at a time (the first, or the one asked for).
        # Default: the school of the next lesson (where the head's attention is), else the first by name.
        default = lessons[0].session.school_id if lessons else head_schools[0]
        chosen = by_id[coverage_school if coverage_school in head_schools else default]
        head["school_rows"] = _school_rows([by_id[pk] for pk in head_schools], purposes, now)
        head["coverage_school"] = chosen
        head["coverage"] = coverage_by_group(chosen, purposes.get(chosen.organisation_id))
        home.head = head
        home.roles.append("head")

    if Role.TEACHER in scope.roles:
        mine = VideoSession.objects.filter(Q(host=user) | Q(created_by=user), school_id__in=scope.school_ids)
        lessons, lesson_totals = _lessons(mine, now, _url("video_sessions:list", query="show=mine"))
        home.teacher = {
            "lessons": lessons, "lesson_totals": lesson_totals, "fixes": lesson_fixes(lessons, scope),
            "incidents": _incidents(scope.school_ids, now, reported_by=user),
            "attendance": [todo for todo in home.needs_you if todo.kind == "attendance"],
        }
        home.roles.append("teacher")

    office_schools = sorted(scope.schools_where({Role.OFFICE}), key=lambda pk: by_id[pk].name)
    if office_schools:
        asked = unanswered_counts_by_school(school_ids=office_schools,
                                            purposes=[p for oid, p in purposes.items()
                                                      if oid in {by_id[pk].organisation_id for pk in office_schools}])
        home.office = {
            "requests": [{"school": by_id[pk], **{k.value: v for k, v in asked.get(pk, {}).items()},
                          "url": _url("consent:requests", pk)} for pk in office_schools],
            "imports": Listing(*_imports_waiting(office_schools)),
            "rights": _rights(office_schools, today),
            "emails": _email_problems(scope, office_schools),
        }
        home.office["not_asked"] = sum(row.get(RequestStatus.NOT_ASKED.value, 0) for row in home.office["requests"])
        home.office["waiting"] = sum(row.get(RequestStatus.WAITING.value, 0) + row.get(RequestStatus.EXHAUSTED.value, 0)
                                     for row in home.office["requests"])
        home.roles.append("office")

    org_ids = sorted(oid for oid, roles in scope.roles_by_organisation.items() if roles & ORGANISATION_ROLES)
    if org_ids:
        org_schools = [s for s in schools if s.organisation_id in org_ids]
        ids = [s.pk for s in org_schools]
        dpo = _org_roles(scope, Role.DPO)
        queue = dict(PiaVersion.objects.filter(pia__organisation_id__in=dpo, status__in=PiaVersion.OPEN)
                     .values_list("status").annotate(n=Count("pk")).order_by()) if dpo else {}
        home.organisation = {
            "is_dpo": bool(dpo),
            "queue": {"advice": queue.get(PiaStatus.SUBMITTED, 0), "controller": queue.get(PiaStatus.ADVISED, 0),
                      "siro": queue.get(PiaStatus.DECIDED, 0), "changes": queue.get(PiaStatus.CHANGES_REQUESTED, 0)},
            "assessments": _assessments_due(scope, ids, org_ids, today),
            "pias_out_of_date": _pias_out_of_date(ids, org_ids, today),
            "rights": _rights([pk for pk in ids if pk in scope.schools_where(RIGHTS_ROLES)], today, soon_only=True),
            "incidents": _incidents(ids, now, _url("video_sessions:incidents")),
            "school_rows": _school_rows(org_schools, purposes, now),
            "settings_for": list(Organisation.objects.filter(pk__in=[
                oid for oid in org_ids if Role.ORG_ADMIN in scope.roles_by_organisation[oid]]).order_by("name")),
        }
        home.roles.append("organisation")
    return home


def _imports_waiting(school_ids) -> tuple[list, int, str]:
    runs = ImportRun.objects.filter(school_id__in=school_ids, status=ImportRun.Status.PLANNED)
    items = list(runs.select_related("school", "uploaded_by").order_by("created_at", "pk")[:LIST_SIZE])
    return items, runs.count(), ""
