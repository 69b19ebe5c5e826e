"""The governance gate: may this session go ahead? Green only when all three checks are.

1. The platform is approved for the school: its PIA signed and in date (`pia.platforms.platform_status`).
2. The school's video-lessons risk assessment is approved and in date
   (`riskassess.services.video_lessons_assessment_status`).
3. The host is a member of staff of that school: a headteacher, teacher or office membership at the school
   itself (an organisation-wide role such as the DPO's does not make someone the school's staff).

A red gate refuses scheduling and changes (`sessions.services`) and sending (the dispatch re-checks it at
each claim). Each reason is a sentence for the page, and each check says who can put it right. A check may
also carry notices, which block nothing: an organisation-wide risk assessment under review after an incident at
another school leaves this school green, with a notice that says so.

`gates_for_sessions` answers for many sessions at once in a constant number of queries (the dashboards'
and the sessions list's lessons), with the same rules as `session_gate`.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from pia.models import Platform
from pia.platforms import platform_status, with_pia_versions
from riskassess.services import AssessmentStatus, video_lessons_assessment_status, video_lessons_assessment_statuses
from schools.models import SCHOOL_ROLES, Membership, School

# Who can turn each check green, in the words of the people on the page.
FIXERS = {
    "platform": "The DPO advises on the PIA, then the headteacher and the SIRO sign it.",
    "assessment": "The headteacher approves the risk assessment.",
    "host": "The headteacher adds the host to the school's staff, or the lesson gets another host.",
}


@dataclass(frozen=True)
class Check:
    key: str
    label: str
    ok: bool
    reasons: tuple[str, ...]
    # What the people of the lesson should know without it blocking anything (amber on the page): e.g. the
    # organisation's risk assessment under review after an incident at another school.
    notices: tuple[str, ...] = ()
    # Who can put it right, when not the usual people (FIXERS): e.g. the reviewer after an incident.
    fix: str = ""

    @property
    def fixer(self) -> str:
        return self.fix or FIXERS[self.key]


@dataclass(frozen=True)
class Gate:
    ok: bool
    reasons: tuple[str, ...]
    checks: tuple[Check, ...]

    @property
    def failing(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)

    @property
    def notices(self) -> tuple[str, ...]:
        return tuple(notice for check in self.checks for notice in check.notices)

    @property
    def first_reason(self) -> str:
        return self.reasons[0] if self.reasons else ""

    @property
    def first_fixer(self) -> str:
        return self.failing[0].fixer if self.failing else ""


def host_is_staff(*, host, school: School) -> bool:
    if host is None or not host.is_active:
        return False
    return Membership.objects.filter(user=host, school=school, role__in=sorted(SCHOOL_ROLES)).exists()


def _gate(*, school: School, platform, host, platform_answer, assessment: AssessmentStatus, host_staff: bool) -> Gate:
    if platform is None:
        platform_check = Check("platform", "Platform approved by a signed, in-date PIA", False,
                               ("Choose a platform.",))
    else:
        platform_check = Check("platform", f"{platform.name} approved by a signed, in-date PIA", platform_answer.ok,
                               tuple(platform_answer.reasons))
    assessment_check = Check("assessment", "Risk assessment for live video lessons approved and in date",
                             assessment.ok, tuple(assessment.reasons), tuple(assessment.notices),
                             assessment.fixer)
    if host is None:
        host_check = Check("host", "The host is a member of staff of the school", False, ("Choose a host.",))
    else:
        name = host.get_full_name() or host.get_username()
        host_check = Check("host", "The host is a member of staff of the school", host_staff,
                           () if host_staff else (f"{name} is not a member of staff of {school.name}.",))
    checks = (platform_check, assessment_check, host_check)
    reasons = tuple(reason for check in checks for reason in check.reasons)
    return Gate(ok=all(check.ok for check in checks), reasons=reasons, checks=checks)


def session_gate(*, school: School, platform, host, today: date | None = None) -> Gate:
    return _gate(
        school=school, platform=platform, host=host,
        platform_answer=platform_status(platform=platform, school=school, today=today) if platform else None,
        assessment=video_lessons_assessment_status(school=school, today=today),
        host_staff=host is not None and host_is_staff(host=host, school=school),
    )


def gates_for_combinations(combinations: Iterable[tuple], today: date | None = None) -> dict[tuple, Gate]:
    """(school, platform id, host) → its gate, keyed by (school id, platform id, host id): four queries
    however many (five while a risk assessment is flagged for review). Schools and hosts are instances (the
    host may be None), platforms are ids."""
    combinations = list(combinations)
    if not combinations:
        return {}
    schools = {school.pk: school for school, _, _ in combinations}
    platforms = {p.pk: p for p in with_pia_versions(Platform.objects.filter(
        pk__in={platform_id for _, platform_id, _ in combinations}))}
    assessments = video_lessons_assessment_statuses(schools=schools.values(), today=today)
    staff = set(Membership.objects.filter(
        user_id__in={host.pk for _, _, host in combinations if host is not None}, school_id__in=list(schools),
        role__in=sorted(SCHOOL_ROLES),
    ).values_list("user_id", "school_id"))
    platform_answers: dict[tuple, object] = {}
    gates = {}
    for school, platform_id, host in combinations:
        key = (school.pk, platform_id, host.pk if host is not None else None)
        if key in gates:
            continue
        platform = platforms.get(platform_id)
        if platform is not None and (platform_id, school.pk) not in platform_answers:
            platform_answers[platform_id, school.pk] = platform_status(platform=platform, school=school, today=today)
        gates[key] = _gate(
            school=school, platform=platform, host=host,
            platform_answer=platform_answers.get((platform_id, school.pk)),
            assessment=assessments[school.pk],
            host_staff=host is not None and host.is_active and (host.pk, school.pk) in staff,
        )
    return gates


def gates_for_sessions(sessions: Iterable, today: date | None = None) -> dict[int, Gate]:
    """session id → its gate, for sessions loaded with their school and host: four queries however many
    sessions, schools and platforms. Each (school, platform, host) is answered once."""
    sessions = list(sessions)
    gates = gates_for_combinations([(s.school, s.platform_id, s.host) for s in sessions], today)
    return {s.pk: gates[s.school_id, s.platform_id, s.host_id] for s in sessions}


def gate_for(session, today: date | None = None) -> Gate:
    return session_gate(school=session.school, platform=session.platform, host=session.host, today=today)
