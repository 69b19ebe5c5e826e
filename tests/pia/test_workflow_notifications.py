"""Emails that a PIA waits for someone: once per stage (and round), to the right people, queued with the stage."""

import datetime as dt

import pytest
import time_machine
from django.conf import settings
from django.db import transaction
from django.urls import reverse

from outbox.models import OutboxMessage
from pia import services
from pia.models import Notification, PiaVersion
from schools.models import Role
from tests.factories import MembershipFactory, UserFactory
from tests.pia.pia_setup import draft_pia

pytestmark = pytest.mark.django_db
Status = PiaVersion.Status
START = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def emails(template="pia-waiting"):
    return OutboxMessage.objects.filter(template=template).order_by("pk")


def test_each_stage_emails_the_people_it_waits_for_once_as_days_pass(personas):
    with time_machine.travel(START, tick=False):
        version = draft_pia(personas.organisation, personas.office, school=personas.school)
        services.version_submit(version=version, actor=personas.office)
    assert [m.recipient for m in emails()] == [personas.dpo.email]

    with time_machine.travel(START + dt.timedelta(days=2), tick=False):
        services.version_request_changes(version=version, actor=personas.dpo, comments="Add the retention period.")
    assert emails().last().recipient == personas.office.email

    with time_machine.travel(START + dt.timedelta(days=5), tick=False):
        services.version_submit(version=version, actor=personas.office)
    assert emails().last().recipient == personas.dpo.email  # round two: the DPO is told again

    with time_machine.travel(START + dt.timedelta(days=6), tick=False):
        services.version_advise(version=version, actor=personas.dpo, advice="Proceed.")
    assert emails().last().recipient == personas.headteacher.email

    with time_machine.travel(START + dt.timedelta(days=9), tick=False):
        services.version_decide(version=version, actor=personas.headteacher, accept=True)
    assert emails().last().recipient == personas.siro.email

    with time_machine.travel(START + dt.timedelta(days=30), tick=False):
        services.version_sign(version=version, actor=personas.siro)
    assert [m.recipient for m in emails("pia-signed")] == [personas.office.email]

    sent = {(n.stage, n.round): n.sent_at for n in Notification.objects.filter(version=version)}
    assert sent == {
        (Status.SUBMITTED, 1): START,
        (Status.CHANGES_REQUESTED, 1): START + dt.timedelta(days=2),
        (Status.SUBMITTED, 2): START + dt.timedelta(days=5),
        # The rest of the chain happens in the second pass through sign-off.
        (Status.ADVISED, 2): START + dt.timedelta(days=6),
        (Status.DECIDED, 2): START + dt.timedelta(days=9),
        (Status.SIGNED, 2): START + dt.timedelta(days=30),
    }
    assert emails().count() == 5

    # Asking again for a stage already notified sends nothing, however much later.
    with time_machine.travel(START + dt.timedelta(days=60), tick=False):
        assert services.notification_send(version=version, stage=Status.DECIDED, round=2) == 0
    assert emails().count() == 5


def test_every_dpo_of_the_organisation_is_told_but_never_the_author(personas):
    second_dpo = UserFactory()
    MembershipFactory(user=second_dpo, role=Role.DPO, school=None, organisation=personas.organisation)
    version = draft_pia(personas.organisation, second_dpo, school=personas.school)
    services.version_submit(version=version, actor=personas.office)
    assert [m.recipient for m in emails()] == [personas.dpo.email]


def test_another_organisations_dpo_is_not_told(personas):
    MembershipFactory(user=UserFactory(), role=Role.DPO, school=None, organisation=personas.other_school.organisation)
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    services.version_submit(version=version, actor=personas.office)
    assert [m.recipient for m in emails()] == [personas.dpo.email]


def test_no_email_leaves_when_the_stage_is_rolled_back(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.version_submit(version=version, actor=personas.office)
        raise RuntimeError("something later in the same transaction failed")
    assert not OutboxMessage.objects.exists() and not Notification.objects.exists()
    version.refresh_from_db()
    assert version.status == Status.DRAFT


def test_the_changes_requested_email_carries_the_comments_escaped_in_html_and_plain_in_text(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school, title="Zoom & Teams")
    services.version_submit(version=version, actor=personas.office)
    services.version_request_changes(version=version, actor=personas.dpo, comments="Check <retention> & deletion.",
                                     step_comments={"flows": "Say when recordings are deleted."})
    message = emails().last()
    link = f"{settings.SITE_URL}{reverse('pia:version', kwargs={'pk': version.pk})}"
    assert message.subject.startswith("Changes requested on your PIA: Zoom & Teams")
    assert "Check <retention> & deletion." in message.body_text
    assert 'On "Describe the information flows": Say when recordings are deleted.' in message.body_text
    assert "Zoom & Teams" in message.body_text and link in message.body_text
    assert "Check &lt;retention&gt; &amp; deletion." in message.body_html
    assert "Zoom &amp; Teams" in message.body_html and link in message.body_html
    assert "<retention>" not in message.body_html


@pytest.mark.parametrize(("stage", "page"), [
    (Status.SUBMITTED, "pia:advise"), (Status.ADVISED, "pia:decide"), (Status.DECIDED, "pia:sign"),
])
def test_the_waiting_email_links_to_the_page_where_the_decision_is_made(personas, stage, page):
    from tests.pia.matrix_workflow import at_stage

    version = at_stage(personas, stage)
    link = f"{settings.SITE_URL}{reverse(page, kwargs={'pk': version.pk})}"
    message = emails().last()
    assert link in message.body_text and link in message.body_html


def test_the_signed_email_tells_the_author_the_review_date_and_links_to_the_version(personas):
    from tests.pia.pia_signed import signed_pia

    version = signed_pia(personas, review_on=dt.date(2027, 9, 1))
    message = emails("pia-signed").get()
    assert message.recipient == personas.office.email
    assert "due for review on 1 September 2027" in message.body_text
    link = f"{settings.SITE_URL}{reverse('pia:version', kwargs={'pk': version.pk})}"
    assert link in message.body_text and link in message.body_html
    assert "due for review on 1 September 2027" in message.body_html
    assert message.related_type == "pia.pia" and message.related_id == str(version.pia_id)
