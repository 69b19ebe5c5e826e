"""Sessions and the meeting protocol: rows of the role matrix, gathered by tests/test_role_matrix.py.

Everyone at the school reads; DPO, SIRO and the organisation admin read across the organisation; the
school's teachers, office and headteacher schedule; the host (here the teacher), the creator and the
headteacher change, cancel and see the password. Another school's session answers 404.
"""

from tests.matrix import Row, everyone
from tests.sessions.sessions_setup import session_row


def _ours(p):
    return {"pk": session_row(p.school, p.teacher).pk}


def _theirs(p):
    return {"pk": session_row(p.other_school, p.other_teacher).pk}


CHANGERS = everyone(403, headteacher=200, teacher=200, other_teacher=404)
SCHEDULERS = everyone(403, headteacher=200, teacher=200, office=200, other_teacher=404)
# The organisation roles are refused by the page's role check before any session is looked up.
THEIRS_CHANGERS = everyone(404, dpo=403, siro=403, org_admin=403, other_teacher=200)

ROWS = [
    Row("video_sessions:list", everyone()),
    Row("video_sessions:schedule", SCHEDULERS, kwargs=lambda p: {"school_pk": p.school.pk}),
    Row("video_sessions:schedule", THEIRS_CHANGERS, kwargs=lambda p: {"school_pk": p.other_school.pk}),
    # What the schedule form's script reads: the coverage of the chosen groups and pupils, and the picker's search.
    Row("video_sessions:schedule-coverage", SCHEDULERS, kwargs=lambda p: {"school_pk": p.school.pk}),
    Row("video_sessions:schedule-coverage", THEIRS_CHANGERS, kwargs=lambda p: {"school_pk": p.other_school.pk}),
    Row("video_sessions:schedule-pupils", SCHEDULERS, kwargs=lambda p: {"school_pk": p.school.pk}),
    Row("video_sessions:schedule-pupils", THEIRS_CHANGERS, kwargs=lambda p: {"school_pk": p.other_school.pk}),
    Row("video_sessions:session", everyone(other_teacher=404), kwargs=_ours),
    Row("video_sessions:session", everyone(404, other_teacher=200), kwargs=_theirs),
    Row("video_sessions:edit", CHANGERS, kwargs=_ours),
    Row("video_sessions:edit", THEIRS_CHANGERS, kwargs=_theirs),
    Row("video_sessions:cancel", CHANGERS, kwargs=_ours),
    Row("video_sessions:cancel", THEIRS_CHANGERS, kwargs=_theirs),
    Row("video_sessions:password", CHANGERS, kwargs=_ours, method="post"),
    Row("video_sessions:password", THEIRS_CHANGERS, kwargs=_theirs, method="post"),
    # The host's pages. Roster and checklist: everyone who sees the session. Attendance: those who change it.
    # Incidents: the school's own staff (the organisation roles are refused before any session is looked up).
    Row("video_sessions:roster", everyone(other_teacher=404), kwargs=_ours),
    Row("video_sessions:roster", everyone(404, other_teacher=200), kwargs=_theirs),
    Row("video_sessions:checklist", everyone(other_teacher=404), kwargs=_ours),
    Row("video_sessions:checklist", everyone(404, other_teacher=200), kwargs=_theirs),
    Row("video_sessions:attendance", CHANGERS, kwargs=_ours),
    Row("video_sessions:attendance", THEIRS_CHANGERS, kwargs=_theirs),
    Row("video_sessions:incident", everyone(403, headteacher=200, teacher=200, office=200, other_teacher=404),
        kwargs=_ours),
    Row("video_sessions:incident", THEIRS_CHANGERS, kwargs=_theirs),
    # Posting before the start re-shows the page ("opens at the start"); nothing is saved.
    Row("video_sessions:attendance", CHANGERS, kwargs=_ours, method="post"),
    Row("video_sessions:attendance", THEIRS_CHANGERS, kwargs=_theirs, method="post"),
    Row("video_sessions:incident", everyone(403, headteacher=200, teacher=200, office=200, other_teacher=404),
        kwargs=_ours, method="post"),
    Row("video_sessions:incident", THEIRS_CHANGERS, kwargs=_theirs, method="post"),
    Row("video_sessions:school-protocol", everyone(other_teacher=404), kwargs=lambda p: {"school_pk": p.school.pk}),
    Row("video_sessions:school-protocol", everyone(404, other_teacher=200),
        kwargs=lambda p: {"school_pk": p.other_school.pk}),
    # An empty POST re-shows the form with its errors for the headteacher; nothing is saved.
    Row("video_sessions:school-protocol", everyone(403, headteacher=200, other_teacher=404), method="post",
        kwargs=lambda p: {"school_pk": p.school.pk}),
    Row("video_sessions:organisation-protocol", everyone(other_teacher=404),
        kwargs=lambda p: {"organisation_pk": p.organisation.pk}),
    Row("video_sessions:organisation-protocol", everyone(404, other_teacher=200),
        kwargs=lambda p: {"organisation_pk": p.other_school.organisation.pk}),
    Row("video_sessions:organisation-protocol", everyone(403, org_admin=200, other_teacher=404), method="post",
        kwargs=lambda p: {"organisation_pk": p.organisation.pk}),
]
