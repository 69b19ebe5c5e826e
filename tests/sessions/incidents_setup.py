"""A federation of two schools under one organisation-wide risk assessment, for the incidents' tests:

    fed = federation(personas)   # Laxey (personas.school) and Dhoon, both green, a lesson started at each
    incident = report(fed.laxey_lesson, personas.teacher)
"""

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from pia.models import Platform
from riskassess.services import assessment_create_from_template, hazard_save, version_approve, version_submit
from schools.models import Role
from sessions.host import incident_report
from sessions.models import Incident
from tests.factories import MembershipFactory, SchoolFactory, TOTPDeviceFactory, UserFactory
from tests.pia.pia_signed import signed_pia
from tests.sessions.sessions_setup import session_row


@dataclass
class Federation:
    dhoon: object
    dhoon_head: object
    dhoon_teacher: object
    platform: object
    assessment: object
    version: object
    laxey_lesson: object
    dhoon_lesson: object


def _member(role, school):
    user = UserFactory()
    MembershipFactory(user=user, role=role, school=school, organisation=school.organisation)
    if role == Role.HEADTEACHER:
        TOTPDeviceFactory(user=user)
    return user


def federation(personas) -> Federation:
    """Laxey (personas.school) and Dhoon in one organisation, one approved organisation-wide video-lessons
    assessment (approved by the organisation admin, with a review date 300 days ahead), a platform approved for the
    whole organisation, and at each school a lesson that started five minutes ago."""
    # Signed while Laxey is the organisation's only school (its headteacher decides for the whole organisation).
    pia = signed_pia(personas, organisation_wide=True, title="Zoom PIA")
    dhoon = SchoolFactory(organisation=personas.organisation, name="Dhoon Test School", slug="dhoon")
    dhoon_head, dhoon_teacher = _member(Role.HEADTEACHER, dhoon), _member(Role.TEACHER, dhoon)
    platform = Platform.objects.create(organisation=personas.organisation, name="Zoom", kind=Platform.Kind.ZOOM,
                                       pia=pia.pia)
    assessment = assessment_create_from_template(school=None, organisation=personas.organisation,
                                                 actor=personas.org_admin, assessor_name="Federation lead",
                                                 assessed_on=timezone.localdate(),
                                                 review_on=timezone.localdate() + dt.timedelta(days=300))
    version = assessment.versions.get()
    # Every field of a row filled in, so that a revision can be seen to keep them all.
    hazard_save(version=version, actor=personas.org_admin, row=version.hazards.order_by("position").first(),
                residual_likelihood=1, residual_severity=2, further_action="Check the waiting room settings",
                action_owner=personas.headteacher, action_due_on=timezone.localdate() + dt.timedelta(days=30),
                action_done_on=timezone.localdate(), initials="MK")
    version_submit(version=version, actor=personas.org_admin)
    version = version_approve(version=version, actor=personas.org_admin)
    started = timezone.now() - dt.timedelta(minutes=5)
    return Federation(
        dhoon=dhoon, dhoon_head=dhoon_head, dhoon_teacher=dhoon_teacher, platform=platform,
        assessment=assessment, version=version,
        laxey_lesson=session_row(personas.school, personas.teacher, title="Owls story time", starts_at=started),
        dhoon_lesson=session_row(dhoon, dhoon_teacher, title="Wrens phonics", starts_at=started),
    )


def report(session, actor, kind=Incident.Kind.UNINVITED, text="Someone called 'Ava2' joined; I removed them."):
    return incident_report(session=session, actor=actor, kind=kind, description=text, ended_early=False).incident
