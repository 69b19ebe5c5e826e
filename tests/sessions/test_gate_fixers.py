"""Every red reason on the session page and the schedule form says who can put it right."""

import re

import pytest
from django.urls import reverse

from pia.models import Platform
from sessions.gate import FIXERS
from tests.factories import GroupFactory

from .sessions_setup import flag_the_risk_assessment, green_gate, session_row
from .test_session_pages import _form, _schedule_url

pytestmark = pytest.mark.django_db


def _check_items(page: str) -> dict[str, str]:
    """The gate card's checks on the session page: key → the text of its item."""
    items = page.split('<li class="gate-check mb-1" data-check="')[1:]
    return {item.split('"', 1)[0]: item.split("</section>", 1)[0] for item in items}


def test_the_session_page_says_who_can_fix_each_red_check(personas, client_for):
    teams = Platform.objects.create(organisation=personas.organisation, name="Teams", kind="teams")
    session = session_row(personas.school, personas.dpo, platform=teams, created_by=personas.headteacher)
    page = client_for(personas.headteacher).get(reverse("video_sessions:session", kwargs={"pk": session.pk}))
    checks = _check_items(page.content.decode())
    assert set(checks) == {"platform", "assessment", "host"}
    for key, text in checks.items():
        assert "✗ No:" in text, key
        assert 'class="gate-reasons"' in text, key
        assert f"Who can fix it: {FIXERS[key]}" in text.replace("&#x27;", "'"), key


def test_the_schedule_form_says_who_can_fix_each_reason_it_refuses(personas, client_for):
    group = GroupFactory(school=personas.school)
    green_gate(personas)
    teams = Platform.objects.create(organisation=personas.organisation, name="Teams", kind="teams")
    flag_the_risk_assessment(personas)
    data = _form(personas, group, platform=str(teams.pk), meeting_url="https://teams.microsoft.com/l/meetup-join/1")
    page = client_for(personas.teacher).post(_schedule_url(personas), data).content.decode()
    errors = re.findall(r"The session may not be scheduled: [^<]*", page)
    assert len(errors) >= 2, errors
    assert any("No PIA is attached to Teams." in e and f"Who can fix it: {FIXERS['platform']}" in e for e in errors)
    assert any(f"Who can fix it: {FIXERS['assessment']}" in e for e in errors)
    assert all("Who can fix it:" in e for e in errors)
    # The cards beside the form say it too, for every platform's red reasons.
    cards = page[page.index('id="gates-heading"'):page.index('id="protocol-heading"')]
    assert cards.count("Who can fix it:") == cards.count("<li>")
