"""Rows of the role matrix for the PIA outputs pages, gathered by tests/test_role_matrix.py, and the signed PIAs
they (and the outputs tests) start from: ours through the real sign-off services, another organisation's
through the ORM (it has no DPO or SIRO among the personas).

Reading a version follows the PIA's rule: teachers read only signed versions (a draft answers 403), everyone
else of the school or organisation reads every version; another organisation's versions answer 404. The
signed version's PDF is stored on its first download, so the matrix asks for drafts' PDFs (rendered live,
nothing written); tests/pia/test_outputs.py downloads signed ones with a temporary media root.
Adopting the notice: whoever edits consent notices (headteacher, organisation admin). Platforms: everyone
reads, the headteacher and the organisation admin manage. Marking an action done: the responsible person or
an author (headteacher, office).
"""

import datetime as dt

from django.utils import timezone

from pia.models import Decision, PiaVersion
from pia.snapshot import content_of, snapshot_of
from tests.matrix import Row, everyone
from tests.pia.pia_setup import draft_pia

Kind = Decision.Kind


def sign_through_orm(version: PiaVersion, *, dpo, controller, siro, overrule_reasons: str = "",
                     at: dt.datetime | None = None) -> PiaVersion:
    """Sign a draft straight through the ORM, as the sign-off services would leave it: submitted, the DPO's
    advice, the controller's decision, the SIRO's signature (each with the hash of the content decided on),
    then status signed with the snapshot and its SHA-256. For another organisation's PIA, whose people the
    personas do not include."""
    at = at or timezone.now()
    submitter = version.created_by
    PiaVersion.objects.filter(pk=version.pk).update(status=PiaVersion.Status.SUBMITTED, submitted_at=at,
                                                    submitted_by=submitter)
    version.refresh_from_db()
    content_hash = PiaVersion.hash_of(content_of(snapshot_of(version)))
    steps = [
        (Kind.DPO_ADVICE, dpo, "Data Protection Officer", "Proceed: the risks are understood and proportionate.",
         {"risks": "Keep the China routing risk in the notice."}),
        (Kind.CONTROLLER_OVERRULED if overrule_reasons else Kind.CONTROLLER_ACCEPTED, controller, "Headteacher",
         overrule_reasons, {}),
        (Kind.SIRO_SIGNED, siro, "Senior Information Risk Owner", "", {}),
    ]
    for minutes, (kind, user, role, comments, step_comments) in enumerate(steps):
        Decision.objects.create(version=version, kind=kind, user=user, name=user.get_full_name(), role=role,
                                comments=comments, step_comments=step_comments, sha256=content_hash,
                                decided_at=at + dt.timedelta(minutes=10 * minutes))
    snapshot = snapshot_of(version)
    PiaVersion.objects.filter(pk=version.pk).update(
        status=PiaVersion.Status.SIGNED, signed_at=at + dt.timedelta(minutes=20), snapshot=snapshot,
        sha256=PiaVersion.hash_of(snapshot))
    version.refresh_from_db()
    return version


def signed_pia(personas, *, school="school", responsible=None, due_on=None, overrule_reasons="",
               **kwargs) -> PiaVersion:
    """A PIA of the test federation signed through the real sign-off services: written and submitted by the
    office, advised on by the DPO, accepted (or overruled, with `overrule_reasons`) by the headteacher and signed
    by the SIRO. `school=None` makes it organisation-wide; `responsible` and `due_on` set its one action's
    person to remind and date while it is still a draft."""
    from pia import services

    school = personas.school if school == "school" else school
    version = draft_pia(personas.organisation, personas.office, school=school, **kwargs)
    if responsible is not None or due_on is not None:
        action = version.actions.get()
        action.responsible_user = responsible or action.responsible_user
        action.due_on = due_on or action.due_on
        action.save()
    services.version_submit(version=version, actor=personas.office)
    services.version_advise(version=version, actor=personas.dpo,
                            advice="Proceed: the risks are understood and proportionate.",
                            step_comments={"risks": "Keep the China routing risk in the notice."})
    services.version_decide(version=version, actor=personas.headteacher, accept=not overrule_reasons,
                            reasons=overrule_reasons)
    return services.version_sign(version=version, actor=personas.siro)


def other_signed_pia(personas) -> PiaVersion:
    other = personas.other_school
    version = draft_pia(other.organisation, personas.other_headteacher, school=other)
    return sign_through_orm(version, dpo=personas.other_headteacher, controller=personas.other_headteacher,
                            siro=personas.other_headteacher)


def _ours_draft(p) -> dict:
    return {"pk": draft_pia(p.organisation, p.office, school=p.school).pk}


def _organisation_wide_draft(p) -> dict:
    return {"pk": draft_pia(p.organisation, p.office).pk}


def _theirs_draft(p) -> dict:
    return {"pk": draft_pia(p.other_school.organisation, p.other_headteacher, school=p.other_school).pk}


def _ours_signed(p) -> dict:
    return {"pk": signed_pia(p).pk}


def _theirs_signed(p) -> dict:
    return {"pk": other_signed_pia(p).pk}


def _platform(p, organisation) -> dict:
    from pia.models import Platform

    return {"pk": Platform.objects.create(organisation=organisation, name="Zoom", kind="zoom").pk}


def _action(version: PiaVersion) -> dict:
    return {"pk": version.actions.get().pk}


DRAFT_READERS = everyone(teacher=403, other_teacher=404)
THEIR_DRAFT = everyone(404, other_teacher=403)
SIGNED_READERS = everyone(other_teacher=404)
THEIR_SIGNED = everyone(404, other_teacher=200)
MANAGERS = everyone(403, headteacher=200, org_admin=200, other_teacher=404)
THEIR_MANAGED = everyone(404, other_teacher=403)

ROWS: list[Row] = [
    Row("pia:version-pdf", DRAFT_READERS, kwargs=_ours_draft),
    Row("pia:version-pdf", DRAFT_READERS, kwargs=_organisation_wide_draft),
    Row("pia:version-pdf", THEIR_DRAFT, kwargs=_theirs_draft),
    Row("pia:notice", SIGNED_READERS, kwargs=_ours_signed),
    Row("pia:notice", DRAFT_READERS, kwargs=_ours_draft),
    Row("pia:notice", THEIR_SIGNED, kwargs=_theirs_signed),
    # Adopting (POST without a purpose: the form answers with its error, nothing changes).
    Row("pia:notice", everyone(403, headteacher=200, org_admin=200, other_teacher=404), method="post",
        kwargs=_ours_signed),
    Row("pia:notice", everyone(404, other_teacher=403), method="post", kwargs=_theirs_signed),
    Row("pia:platforms", everyone(200)),
    Row("pia:platform-new", MANAGERS, kwargs=lambda p: {"organisation_pk": p.organisation.pk}),
    Row("pia:platform-new", THEIR_MANAGED, kwargs=lambda p: {"organisation_pk": p.other_school.organisation_id}),
    Row("pia:platform-edit", MANAGERS, kwargs=lambda p: _platform(p, p.organisation)),
    Row("pia:platform-edit", THEIR_MANAGED, kwargs=lambda p: _platform(p, p.other_school.organisation)),
    Row("pia:platform-remove", everyone(403, headteacher=302, org_admin=302, other_teacher=404), method="post",
        kwargs=lambda p: _platform(p, p.organisation)),
    Row("pia:platform-remove", THEIR_MANAGED, method="post",
        kwargs=lambda p: _platform(p, p.other_school.organisation)),
    Row("pia:actions", everyone(200)),
    Row("pia:action-done", everyone(403, headteacher=302, office=302, other_teacher=404), method="post",
        kwargs=lambda p: _action(signed_pia(p))),
    Row("pia:action-done", everyone(404, other_teacher=403), method="post",
        kwargs=lambda p: _action(other_signed_pia(p))),
]
