"""Promise 4: opening any emailed link (GET or HEAD, as mail scanners do) never changes anything.

Every kind of email the app sends is produced here through the real services; then every link in every
body is opened by an anonymous client, as a scanner would, following redirects, and the SQL it runs is
captured: not one INSERT, UPDATE or DELETE. (The one table left out is `django_session`: a password-reset
link parks its token in the visitor's session, which is no change to anything the app records.)

A new email template fails the first test until it is produced here too.
"""

import html
import re
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from consent.models import Purpose
from consent.requests import consent_reminders_send, consent_requests_send
from consent.rights import rights_request_create, rights_request_respond
from outbox.models import OutboxMessage
from outbox.services import email_test_message

from .consent.consent_setup import decided_family, guardian_of, pupil_at

pytestmark = pytest.mark.django_db

EMAIL_TEMPLATES = {
    path.name.removesuffix("-subject.txt")
    for path in (Path(settings.BASE_DIR) / "templates" / "emails").glob("*-subject.txt")
}
WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
LINK = re.compile(r"""https?://[^\s"'<>]+""")


@pytest.fixture
def every_email(client, personas):
    """One of each email the app sends, made the way the app makes it."""
    school = personas.school
    # consent-confirmation: a parent consents through their link.
    notice = decided_family(school)[0]
    purpose = Purpose.objects.get(pk=notice.purpose_id)
    # consent-request, then consent-reminder once the interval has passed without an answer.
    silent = guardian_of(pupil_at(school, first_name="Quiet"))
    consent_requests_send(school=school, purpose=purpose, actor=personas.office)
    with time_machine.travel(timezone.now() + timedelta(days=purpose.reminder_interval_days, hours=1)):
        assert consent_reminders_send(now=timezone.now()) >= 1
    # rights-acknowledgement and rights-response: a parent asks for a correction, the office answers.
    request = rights_request_create(guardian=silent, kind="correction", details="My name is spelt wrongly.",
                                    purpose=purpose)
    rights_request_respond(rights_request=request, response="Corrected in our records.", actor=personas.office)
    # password-reset, through the page a member of staff uses.
    client.post(reverse("accounts:password-reset"), {"email": personas.teacher.email})
    # test-message, from the operators' command.
    email_test_message(to="operator@example.org")
    # session-invitation (sent directly, not through the outbox) and session-alert (to the host), while the
    # gate is green (the review reminders below need an assessment past its review date).
    from tests.sessions import emails_dispatch

    invitations = emails_dispatch.produce(personas)
    # risk-action-reminder and risk-review-reminder: an overdue action and a review date already past.
    from riskassess.reminders import reminders_send
    from tests.riskassess.matrix_reviews import approved_assessment

    approved_assessment(school, personas.headteacher, owner=personas.teacher,
                        review_on=timezone.localdate() - timedelta(days=1))
    assert reminders_send(now=timezone.now())["action_overdue"] == 1
    # The PIA's notifications (something waits for you) and its action plan reminders.
    from tests.pia import emails_reminders, emails_workflow

    emails_workflow.produce(personas)
    emails_reminders.produce(personas)
    return [*OutboxMessage.objects.all(), *invitations]


def test_every_email_template_is_exercised_here(every_email):
    assert {message.template for message in every_email} == EMAIL_TEMPLATES


def _links(message: OutboxMessage) -> set[str]:
    found = LINK.findall(message.body_text) + LINK.findall(html.unescape(message.body_html))
    return {link.rstrip(".,;)") for link in found if link.startswith(settings.SITE_URL)}


def test_opening_every_link_in_every_email_writes_nothing(every_email):
    links = {(message.template, link) for message in every_email for link in _links(message)}
    templates_with_links = {template for template, _ in links}
    # Every email that should carry a link does (the test message and the rights response carry none).
    assert templates_with_links >= EMAIL_TEMPLATES - {"test-message", "rights-response"}
    for template, link in sorted(links):
        path = link.removeprefix(settings.SITE_URL)
        for method in ("get", "head"):
            scanner = Client(HTTP_USER_AGENT="Mail scanner")
            with CaptureQueriesContext(connection) as queries:
                response = getattr(scanner, method)(path, follow=True)
            assert response.status_code < 500, f"{method.upper()} {template}: {path}"
            writes = [q["sql"] for q in queries if WRITE.match(q["sql"]) and "django_session" not in q["sql"]]
            assert not writes, f"{method.upper()} of a link in {template} wrote: {writes}"
