"""Rows of the role matrix for the PIA sign-off pages, gathered by tests/test_role_matrix.py.

The office writes and submits (so the headteacher, the data controller, may decide); the DPO advises, the
headteacher decides, the SIRO signs — each decision page first sends them to "confirm it's you" (302). Everyone
else in the organisation finds the page forbidden (403); another organisation's teacher finds nothing (404),
and we find nothing of theirs.
"""

from pia import services
from pia.models import PiaVersion
from tests.matrix import Row, everyone
from tests.pia.pia_setup import draft_pia
from tests.pia.pia_signed import signed_pia

Status = PiaVersion.Status

AUTHORS = everyone(403, headteacher=200, office=200, other_teacher=404)
AUTHORS_REDIRECTED = everyone(403, headteacher=302, office=302, other_teacher=404)
DPO_CONFIRMS = everyone(403, dpo=302, other_teacher=404)
CONTROLLER_CONFIRMS = everyone(403, headteacher=302, other_teacher=404)
SIRO_CONFIRMS = everyone(403, siro=302, other_teacher=404)
ELSEWHERE = everyone(404, other_teacher=403)
READERS = everyone(other_teacher=404)
READERS_NOT_TEACHERS = everyone(teacher=403, other_teacher=404)
READERS_ELSEWHERE = everyone(404, other_teacher=200)


def at_stage(p, status: str, *, organisation_wide: bool = False) -> PiaVersion:
    """A PIA of our school (or organisation) by the office, taken through the real services to `status`."""
    version = draft_pia(p.organisation, p.office, school=None if organisation_wide else p.school)
    if status == Status.DRAFT:
        return version
    services.version_submit(version=version, actor=p.office)
    if status == Status.SUBMITTED:
        return version
    services.version_advise(version=version, actor=p.dpo, advice="Proceed.")
    if status == Status.ADVISED:
        return version
    services.version_decide(version=version, actor=p.headteacher, accept=True)
    return version


def elsewhere(p, status: str = Status.SUBMITTED) -> PiaVersion:
    """Another organisation's PIA at `status` (set directly: that organisation has no DPO or SIRO here)."""
    version = draft_pia(p.other_school.organisation, p.other_headteacher, school=p.other_school)
    PiaVersion.objects.filter(pk=version.pk).update(status=status)
    return version


ROWS: list[Row] = [
    Row("pia:dpo-queue", everyone(403, dpo=200)),
    Row("pia:submit", AUTHORS, kwargs=lambda p: {"pk": at_stage(p, Status.DRAFT).pk}),
    Row("pia:submit", AUTHORS_REDIRECTED, method="post", kwargs=lambda p: {"pk": at_stage(p, Status.DRAFT).pk}),
    Row("pia:submit", ELSEWHERE, kwargs=lambda p: {"pk": elsewhere(p, Status.DRAFT).pk}),
    Row("pia:submit", ELSEWHERE, method="post", kwargs=lambda p: {"pk": elsewhere(p, Status.DRAFT).pk}),
    Row("pia:advise", DPO_CONFIRMS, kwargs=lambda p: {"pk": at_stage(p, Status.SUBMITTED).pk}),
    Row("pia:advise", DPO_CONFIRMS, method="post", kwargs=lambda p: {"pk": at_stage(p, Status.SUBMITTED).pk}),
    Row("pia:advise", DPO_CONFIRMS,
        kwargs=lambda p: {"pk": at_stage(p, Status.SUBMITTED, organisation_wide=True).pk}),
    Row("pia:advise", ELSEWHERE, kwargs=lambda p: {"pk": elsewhere(p).pk}),
    Row("pia:decide", CONTROLLER_CONFIRMS, kwargs=lambda p: {"pk": at_stage(p, Status.ADVISED).pk}),
    Row("pia:decide", CONTROLLER_CONFIRMS, method="post", kwargs=lambda p: {"pk": at_stage(p, Status.ADVISED).pk}),
    # The federation's test organisation has one school: its headteacher decides for the whole organisation.
    Row("pia:decide", CONTROLLER_CONFIRMS,
        kwargs=lambda p: {"pk": at_stage(p, Status.ADVISED, organisation_wide=True).pk}),
    Row("pia:decide", ELSEWHERE, kwargs=lambda p: {"pk": elsewhere(p, Status.ADVISED).pk}),
    Row("pia:sign", SIRO_CONFIRMS, kwargs=lambda p: {"pk": at_stage(p, Status.DECIDED).pk}),
    Row("pia:sign", SIRO_CONFIRMS, method="post", kwargs=lambda p: {"pk": at_stage(p, Status.DECIDED).pk}),
    Row("pia:sign", ELSEWHERE, kwargs=lambda p: {"pk": elsewhere(p, Status.DECIDED).pk}),
    Row("pia:mark-seen", DPO_CONFIRMS, method="post", kwargs=lambda p: {"pk": at_stage(p, Status.SUBMITTED).pk}),
    Row("pia:mark-seen", ELSEWHERE, method="post", kwargs=lambda p: {"pk": elsewhere(p).pk}),
    Row("pia:revise", AUTHORS_REDIRECTED, method="post", kwargs=lambda p: {"pk": signed_pia(p).pia_id}),
    Row("pia:revise", ELSEWHERE, method="post", kwargs=lambda p: {"pk": elsewhere(p, Status.SIGNED).pia_id}),
    # Teachers read signed versions only: a PIA never signed answers 403 to them.
    Row("pia:versions", READERS, kwargs=lambda p: {"pk": signed_pia(p).pia_id}),
    Row("pia:versions", READERS_NOT_TEACHERS, kwargs=lambda p: {"pk": at_stage(p, Status.DRAFT).pia_id}),
    Row("pia:versions", READERS, kwargs=lambda p: {"pk": signed_pia(p, organisation_wide=True).pia_id}),
    Row("pia:versions", READERS_ELSEWHERE, kwargs=lambda p: {"pk": elsewhere(p, Status.SIGNED).pia_id}),
    Row("pia:compare", READERS, kwargs=lambda p: {"pk": signed_pia(p).pia_id}),
    Row("pia:compare", READERS_NOT_TEACHERS, kwargs=lambda p: {"pk": at_stage(p, Status.SUBMITTED).pia_id}),
    Row("pia:compare", READERS_ELSEWHERE, kwargs=lambda p: {"pk": elsewhere(p, Status.SIGNED).pia_id}),
]
