"""The governance gate: green only with an approved platform, an approved risk assessment and a host of the
school's staff; each red check gives its reason, and a red gate refuses scheduling."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from pia.models import Platform
from riskassess.models import Assessment
from riskassess.services import assessment_flag_for_review
from sessions.gate import gate_for, session_gate
from sessions.models import VideoSession
from sessions.services import session_schedule
from tests.pia.pia_signed import signed_pia
from tests.riskassess.matrix_reviews import approved_assessment
from tests.sessions.sessions_setup import approved_platform, green_gate, schedule_kwargs, session_row

pytestmark = pytest.mark.django_db


def _failed(gate) -> set[str]:
    return {check.key for check in gate.checks if not check.ok}


def test_the_gate_is_green_with_a_signed_platform_an_approved_assessment_and_a_staff_host(personas):
    platform = green_gate(personas)
    gate = session_gate(school=personas.school, platform=platform, host=personas.teacher)
    assert gate.ok and gate.reasons == () and _failed(gate) == set()


def test_a_platform_without_a_signed_pia_turns_the_gate_red(personas):
    green_gate(personas)
    unapproved = Platform.objects.create(organisation=personas.organisation, name="Teams", kind=Platform.Kind.TEAMS)
    gate = session_gate(school=personas.school, platform=unapproved, host=personas.teacher)
    assert not gate.ok and _failed(gate) == {"platform"}
    assert any("No PIA is attached to Teams" in reason for reason in gate.reasons)


def test_a_platform_whose_pia_is_past_its_review_date_turns_the_gate_red(personas):
    approved_assessment(personas.school, personas.headteacher, review_on=timezone.localdate() + dt.timedelta(days=400))
    version = signed_pia(personas, review_on=timezone.localdate() + dt.timedelta(days=10))
    platform = Platform.objects.create(organisation=personas.organisation, name="Zoom", kind="zoom", pia=version.pia)
    with time_machine.travel(timezone.now() + dt.timedelta(days=11), tick=False):
        gate = session_gate(school=personas.school, platform=platform, host=personas.teacher)
    assert _failed(gate) == {"platform"} and any("due for review" in reason for reason in gate.reasons)


def test_no_approved_risk_assessment_turns_the_gate_red(personas):
    platform = approved_platform(personas)
    gate = session_gate(school=personas.school, platform=platform, host=personas.teacher)
    assert _failed(gate) == {"assessment"}
    assert "No approved risk assessment for live video lessons." in gate.reasons


def test_a_risk_assessment_flagged_after_an_incident_turns_the_gate_red(personas):
    platform = green_gate(personas)
    assessment = Assessment.objects.get(school=personas.school)
    assessment_flag_for_review(assessment=assessment, reason="Uninvited participant", actor=personas.headteacher)
    gate = session_gate(school=personas.school, platform=platform, host=personas.teacher)
    assert _failed(gate) == {"assessment"} and any("flagged for review" in reason for reason in gate.reasons)


def test_a_host_who_is_not_staff_of_the_school_turns_the_gate_red(personas):
    platform = green_gate(personas)
    for outsider in (personas.other_teacher, personas.dpo):
        gate = session_gate(school=personas.school, platform=platform, host=outsider)
        assert _failed(gate) == {"host"}
        assert any("is not a member of staff of Laxey Test School" in reason for reason in gate.reasons)


def test_a_deactivated_host_turns_the_gate_red(personas):
    platform = green_gate(personas)
    personas.teacher.is_active = False
    personas.teacher.save(update_fields=["is_active"])
    assert _failed(session_gate(school=personas.school, platform=platform, host=personas.teacher)) == {"host"}


def test_every_red_check_gives_its_own_reason(personas):
    platform = Platform.objects.create(organisation=personas.organisation, name="Zoom", kind="zoom")
    gate = session_gate(school=personas.school, platform=platform, host=personas.other_teacher)
    assert _failed(gate) == {"platform", "assessment", "host"} and len(gate.reasons) == 3


def test_gate_for_reads_the_sessions_own_school_platform_and_host(personas):
    session = session_row(personas.school, personas.teacher)  # its Zoom platform has no PIA
    assert _failed(gate_for(session)) == {"platform", "assessment"}


@pytest.mark.parametrize("reason", ["platform", "assessment", "host"])
def test_a_red_gate_refuses_scheduling_with_its_reason(personas, reason):
    kwargs = schedule_kwargs(personas)
    if reason == "platform":
        kwargs["platform"] = Platform.objects.create(organisation=personas.organisation, name="Webex", kind="webex")
        kwargs["meeting_url"] = "https://school.webex.com/meet/room"
        expected = "No PIA is attached to Webex"
    elif reason == "assessment":
        assessment_flag_for_review(assessment=Assessment.objects.get(school=personas.school), reason="Zoombombing",
                                   actor=personas.headteacher)
        expected = "flagged for review"
    else:
        kwargs["host"] = personas.other_teacher
        expected = "is not a member of staff"
    with pytest.raises(ValidationError) as error:
        session_schedule(**kwargs)
    assert any(expected in message for message in error.value.messages)
    assert not VideoSession.objects.exists()
