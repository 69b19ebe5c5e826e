"""Rows of the role matrix for the PIA steps pages, gathered by tests/test_role_matrix.py.

The headteacher and the office author; the DPO, SIRO and organisation admin read every version; a teacher reads
signed versions only (403 for a draft); another organisation's PIA answers 404 (and ours answers 404 to them).
"""

from pia.models import PiaVersion
from tests.matrix import Row, everyone
from tests.pia.pia_setup import draft_pia

AUTHORS = everyone(403, headteacher=200, office=200)
DRAFT_READERS = everyone(200, teacher=403, other_teacher=404)
DRAFT_REDIRECTED = everyone(302, teacher=403, other_teacher=404)
SIGNED_READERS = everyone(200, other_teacher=404)
SIGNED_REDIRECTED = everyone(302, other_teacher=404)
# Elsewhere: another organisation's teacher reads their own signed PIA; nobody of ours finds it.
ELSEWHERE_SIGNED = everyone(404, other_teacher=200)
ELSEWHERE_SIGNED_REDIRECTED = everyone(404, other_teacher=302)
ELSEWHERE_DRAFT = everyone(404, other_teacher=403)
# A step's form posted empty: the page again with its message for an author, 403 for other readers.
STEP_POSTED = everyone(403, headteacher=200, office=200, other_teacher=404)
DETAILS = everyone(403, headteacher=200, office=200, other_teacher=404)


def _draft(p, *, other=False, organisation_wide=False) -> PiaVersion:
    if other:
        return draft_pia(p.other_school.organisation, p.other_headteacher, school=p.other_school)
    return draft_pia(p.organisation, p.headteacher, school=None if organisation_wide else p.school)


def _signed(p, **kwargs) -> PiaVersion:
    version = _draft(p, **kwargs)
    # The matrix needs a signed version without the sign-off pages: a bulk update skips the model's guard.
    PiaVersion.objects.filter(pk=version.pk).update(status=PiaVersion.Status.SIGNED)
    version.refresh_from_db()
    return version


ROWS: list[Row] = [
    Row("pia:list", everyone()),
    Row("pia:new", AUTHORS),
    Row("pia:new", AUTHORS, method="post"),  # empty: the form again, with its errors
    Row("pia:pia", DRAFT_REDIRECTED, kwargs=lambda p: {"pk": _draft(p).pia_id}),
    Row("pia:pia", SIGNED_REDIRECTED, kwargs=lambda p: {"pk": _signed(p).pia_id}),
    Row("pia:pia", DRAFT_REDIRECTED, kwargs=lambda p: {"pk": _draft(p, organisation_wide=True).pia_id}),
    Row("pia:pia", ELSEWHERE_SIGNED_REDIRECTED, kwargs=lambda p: {"pk": _signed(p, other=True).pia_id}),
    Row("pia:version", DRAFT_READERS, kwargs=lambda p: {"pk": _draft(p).pk}),
    Row("pia:version", DRAFT_READERS, kwargs=lambda p: {"pk": _draft(p, organisation_wide=True).pk}),
    Row("pia:version", SIGNED_READERS, kwargs=lambda p: {"pk": _signed(p).pk}),
    Row("pia:version", ELSEWHERE_SIGNED, kwargs=lambda p: {"pk": _signed(p, other=True).pk}),
    Row("pia:version", ELSEWHERE_DRAFT, kwargs=lambda p: {"pk": _draft(p, other=True).pk}),
    Row("pia:step", DRAFT_READERS, kwargs=lambda p: {"pk": _draft(p).pk, "step": "risks"}),
    Row("pia:step", DRAFT_READERS, kwargs=lambda p: {"pk": _draft(p).pk, "step": "actions"}),
    Row("pia:step", SIGNED_READERS, kwargs=lambda p: {"pk": _signed(p).pk, "step": "need"}),
    Row("pia:step", ELSEWHERE_SIGNED, kwargs=lambda p: {"pk": _signed(p, other=True).pk, "step": "need"}),
    Row("pia:step", ELSEWHERE_DRAFT, kwargs=lambda p: {"pk": _draft(p, other=True).pk, "step": "screening"}),
    Row("pia:step", STEP_POSTED, method="post", kwargs=lambda p: {"pk": _draft(p).pk, "step": "need"}),
    Row("pia:step", ELSEWHERE_DRAFT, method="post",
        kwargs=lambda p: {"pk": _draft(p, other=True).pk, "step": "need"}),
    Row("pia:details", DETAILS, kwargs=lambda p: {"pk": _draft(p).pk}),
    Row("pia:details", DETAILS, kwargs=lambda p: {"pk": _draft(p, organisation_wide=True).pk}),
    Row("pia:details", ELSEWHERE_DRAFT, kwargs=lambda p: {"pk": _draft(p, other=True).pk}),
]
