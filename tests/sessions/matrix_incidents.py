"""The incidents log, one incident's report, closing and escalating it, and the review of a flagged risk
assessment: rows of the role matrix, gathered by tests/test_role_matrix.py.

The log is for the headteacher and the organisation roles (in the test federation the headteacher heads its only
school, so they read the organisation's log too); teachers and the office see incidents on their lessons and
home page. One incident's report is for everyone who sees its lesson. Closing, escalating and reviewing are the
headteacher's and the organisation admin's. Another school's log, incident or assessment answers 404.
"""

import datetime as dt

from django.utils import timezone

from sessions.host import incident_report
from sessions.models import Incident
from tests.matrix import Row, everyone
from tests.riskassess.matrix_reviews import approved_assessment
from tests.sessions.sessions_setup import session_row


def _incident(school, teacher, kind=Incident.Kind.TECHNICAL) -> Incident:
    session = session_row(school, teacher, starts_at=timezone.now() - dt.timedelta(minutes=5))
    return incident_report(session=session, actor=teacher, kind=kind, description="The sound failed.",
                           ended_early=False).incident


def _flagged(school, head, teacher) -> Incident:
    """A safeguarding concern that flagged the school's approved assessment."""
    approved_assessment(school, head)
    return _incident(school, teacher, kind=Incident.Kind.SAFEGUARDING)


def _ours(p):
    return {"pk": _incident(p.school, p.teacher).pk}


def _theirs(p):
    return {"pk": _incident(p.other_school, p.other_teacher).pk}


LOG_READERS = everyone(403, headteacher=200, dpo=200, siro=200, org_admin=200)
DECIDERS = everyone(403, headteacher=200, org_admin=200)
THEIRS_DECIDERS = everyone(403, headteacher=404, org_admin=404)

ROWS = [
    # The log a person would want: the organisation's for those who follow it.
    Row("video_sessions:incidents", everyone(403, headteacher=302, dpo=302, siro=302, org_admin=302)),
    Row("video_sessions:incidents-school", LOG_READERS, kwargs=lambda p: {"school_pk": p.school.pk}),
    Row("video_sessions:incidents-school", everyone(403, headteacher=404, dpo=404, siro=404, org_admin=404),
        kwargs=lambda p: {"school_pk": p.other_school.pk}),
    Row("video_sessions:incidents-organisation", LOG_READERS,
        kwargs=lambda p: {"organisation_pk": p.organisation.pk}),
    Row("video_sessions:incidents-organisation", everyone(403, headteacher=404, dpo=404, siro=404, org_admin=404),
        kwargs=lambda p: {"organisation_pk": p.other_school.organisation.pk}),
    Row("video_sessions:incident-detail", everyone(other_teacher=404), kwargs=_ours),
    Row("video_sessions:incident-detail", everyone(404, other_teacher=200), kwargs=_theirs),
    # An empty note or reason re-shows the page with its message; nothing changes.
    Row("video_sessions:incident-close", DECIDERS, method="post", kwargs=_ours),
    Row("video_sessions:incident-close", THEIRS_DECIDERS, method="post", kwargs=_theirs),
    Row("video_sessions:incident-escalate", DECIDERS, method="post",
        kwargs=lambda p: {"pk": _flagged(p.school, p.headteacher, p.teacher).pk}),
    Row("video_sessions:incident-escalate", THEIRS_DECIDERS, method="post",
        kwargs=lambda p: {"pk": _flagged(p.other_school, p.other_headteacher, p.other_teacher).pk}),
    # "Reviewed — no change needed": confirm it's you first (302) for those who review; 403 for the others.
    Row("riskassess:assessment-review", everyone(403, headteacher=302, org_admin=302, other_teacher=404),
        kwargs=lambda p: {"pk": _flagged(p.school, p.headteacher, p.teacher).flagged_assessment_id}),
    Row("riskassess:assessment-review", everyone(404, other_teacher=403),
        kwargs=lambda p: {"pk": _flagged(p.other_school, p.other_headteacher, p.other_teacher)
                          .flagged_assessment_id}),
]
