"""The demo's email backend records invitations (sent directly, not through the outbox) as sent outbox rows,
so that the demo mailbox shows them; what the outbox sent itself is not recorded twice."""

import pytest
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from outbox.models import OutboxMessage
from outbox.services import email_queue
from sessions.dispatch import deliveries_plan, delivery_send_batch
from sessions.models import Delivery
from tests.factories import GroupFactory
from tests.sessions.emails_dispatch import PASSWORD, consenting_family, due_session

pytestmark = pytest.mark.django_db

BACKEND = "outbox.demo_backend.DemoMailboxBackend"


@pytest.fixture
def demo_mail(settings, tmp_path):
    settings.DEMO_MODE = True
    settings.EMAIL_BACKEND = BACKEND
    settings.EMAIL_FILE_PATH = tmp_path
    return tmp_path


def test_an_invitation_appears_in_the_demo_mailbox_with_its_school(personas, demo_mail, client_for):
    owls = GroupFactory(school=personas.school, name="Owls")
    guardian, _ = consenting_family(personas.school, owls)
    session = due_session(personas, group=owls, title="Owls story time")
    deliveries_plan()
    assert delivery_send_batch(Delivery.objects.values_list("pk", flat=True)).sent
    row = OutboxMessage.objects.get(template="session-invitation")
    delivery = Delivery.objects.get(session=session)
    assert row.recipient == guardian.email and row.status == OutboxMessage.Status.SENT
    assert row.message_id == delivery.message_id and row.related_id == str(delivery.pk)
    assert row.school == personas.school and PASSWORD in row.body_text and "Owls story time" in row.body_html
    assert [a.filename for a in row.attachment_list()] == ["invitation.ics"]
    assert list(demo_mail.iterdir()), "the file backend still writes the message"
    page = client_for(personas.teacher).get(reverse("outbox:demo-mailbox")).content.decode()
    assert guardian.email in page and "Owls story time" in page


def test_what_the_outbox_sent_is_not_recorded_twice(personas, demo_mail, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        email_queue(template="session-alert", to="host@example.org", school=personas.school,
                    context={"host": personas.teacher, "session": None, "kind": "x", "message": "m", "count": 1,
                             "starts_at": None, "link": "https://example.org"})
    assert OutboxMessage.objects.count() == 1
    assert OutboxMessage.objects.get().status == OutboxMessage.Status.SENT


def test_a_message_sent_some_other_way_is_recorded_without_a_school(demo_mail):
    message = EmailMultiAlternatives("Hello", "Body", "from@example.org", ["to@example.org"])
    message.attach_alternative("<p>Body</p>", "text/html")
    assert message.send() == 1
    row = OutboxMessage.objects.get()
    assert row.template == "direct" and row.school is None and row.body_html == "<p>Body</p>"
