"""Small truths of the invitation and the schedule form: no "Meeting ID: -" for a meeting without one, and the
organisation's only platform chosen already."""

import pytest
from django.core import mail
from django.urls import reverse

from sessions.dispatch import deliveries_plan, delivery_send_batch
from sessions.models import Delivery
from tests.factories import GroupFactory
from tests.sessions.sessions_setup import green_gate

from .emails_dispatch import consenting_family, due_session

pytestmark = pytest.mark.django_db


def _invitation(personas, **fields):
    group = GroupFactory(school=personas.school)
    consenting_family(personas.school, group)
    session = due_session(personas, group=group, **fields)
    deliveries_plan()
    delivery_send_batch(Delivery.objects.filter(session=session).values_list("pk", flat=True))
    (message,) = [m for m in mail.outbox if any(a[0] == "invitation.ics" for a in m.attachments)]
    html = next(content for content, mimetype in message.alternatives if mimetype == "text/html")
    ics = next(a[1] for a in message.attachments if a[0] == "invitation.ics")
    return message.body, html, ics if isinstance(ics, str) else ics.decode()


def test_an_invitation_without_a_meeting_id_says_nothing_of_one(personas):
    text, html, ics = _invitation(personas, meeting_id="")
    assert "Meeting ID" not in text and "Meeting ID" not in html and "Meeting ID" not in ics


def test_an_invitation_with_a_meeting_id_gives_it(personas):
    text, html, ics = _invitation(personas, meeting_id="812 3456 7890")
    assert "Meeting ID: 812 3456 7890" in text and "812 3456 7890" in html and "Meeting ID: 812 3456 7890" in ics


def test_the_organisations_only_platform_is_chosen_already(personas, client_for):
    platform = green_gate(personas)
    page = client_for(personas.teacher).get(
        reverse("video_sessions:schedule", kwargs={"school_pk": personas.school.pk})).content.decode()
    assert f'<option value="{platform.pk}" selected>' in page
