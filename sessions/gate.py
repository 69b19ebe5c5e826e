"""The governance gate: may this session go ahead? Green only when all three checks are.

1. The platform is approved for the school: its PIA signed and in date (`pia.platforms.platform_status`).
2. The school's video-lessons risk assessment is approved and in date
   (`riskassess.services.video_lessons_assessment_status`).
3. The host is a member of staff of that school: a headteacher, teacher or office membership at the school
   itself (an organisation-wide role such as the DPO's does not make someone the school's staff).

A red gate refuses scheduling and changes (`sessions.services`) and sending (the dispatch re-checks it at
each claim). Each reason is a sentence for the page.
"""

from dataclasses import dataclass
from datetime import date

from pia.platforms import platform_status
from riskassess.services import video_lessons_assessment_status
from schools.models import SCHOOL_ROLES, Membership, School


@dataclass(frozen=True)
class Check:
    key: str
    label: str
    ok: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Gate:
    ok: bool
    reasons: tuple[str, ...]
    checks: tuple[Check, ...]


def host_is_staff(*, host, school: School) -> bool:
    if host is None or not host.is_active:
        return False
    return Membership.objects.filter(user=host, school=school, role__in=sorted(SCHOOL_ROLES)).exists()


def session_gate(*, school: School, platform, host, today: date | None = None) -> Gate:
    if platform is None:
        platform_check = Check("platform", "Platform approved by a signed, in-date PIA", False,
                               ("Choose a platform.",))
    else:
        status = platform_status(platform=platform, school=school, today=today)
        platform_check = Check("platform", f"{platform.name} approved by a signed, in-date PIA", status.ok,
                               tuple(status.reasons))
    assessment = video_lessons_assessment_status(school=school, today=today)
    assessment_check = Check("assessment", "Risk assessment for live video lessons approved and in date",
                             assessment.ok, tuple(assessment.reasons))
    if host is None:
        host_check = Check("host", "The host is a member of staff of the school", False, ("Choose a host.",))
    else:
        staff = host_is_staff(host=host, school=school)
        name = host.get_full_name() or host.get_username()
        host_check = Check("host", "The host is a member of staff of the school", staff,
                           () if staff else (f"{name} is not a member of staff of {school.name}.",))
    checks = (platform_check, assessment_check, host_check)
    reasons = tuple(reason for check in checks for reason in check.reasons)
    return Gate(ok=all(check.ok for check in checks), reasons=reasons, checks=checks)


def gate_for(session, today: date | None = None) -> Gate:
    return session_gate(school=session.school, platform=session.platform, host=session.host, today=today)
