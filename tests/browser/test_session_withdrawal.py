"""A parent who already received an invitation withdraws on a phone, from the link in that invitation, and
is told that the link they hold must not be used (promise 5); the page passes axe-core."""

import pytest
from django.core import mail

from sessions.dispatch import deliveries_plan, delivery_send_batch
from sessions.models import Delivery, SessionAlert
from tests.browser.test_staff_sign_in import blocking_violations
from tests.factories import GroupFactory
from tests.sessions.emails_dispatch import consenting_family, due_session

pytestmark = pytest.mark.browser


@pytest.fixture
def phone(browser):
    # The session's one Chromium (tests/browser/conftest.py): a second Playwright in the same run would fail.
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB", is_mobile=True,
                                  has_touch=True)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_a_parent_withdrawing_after_the_invitation_is_told_not_to_use_it(live_server, transactional_db, personas,
                                                                           phone, artifacts):
    owls = GroupFactory(school=personas.school, name="Owls")
    consenting_family(personas.school, owls)
    session = due_session(personas, group=owls, title="Owls story time")
    deliveries_plan()
    delivery_send_batch(Delivery.objects.values_list("pk", flat=True))
    (invitation,) = [m for m in mail.outbox if any(a[0] == "invitation.ics" for a in m.attachments)]
    link = next(word for word in invitation.body.split() if "/p/" in word)

    phone.goto(live_server.url + "/p/" + link.split("/p/", 1)[1])
    phone.get_by_role("button", name="Withdraw consent for Ava").click()
    phone.wait_for_url("**/done/**")
    assert phone.get_by_text("Consent withdrawn").first.is_visible()
    warning = phone.get_by_role("status").filter(has_text="already sent")
    assert warning.is_visible() and "Owls story time" in warning.inner_text()
    assert blocking_violations(phone) == []
    phone.screenshot(path=artifacts / "parent-withdrawn-after-invitation.png", full_page=True)
    assert SessionAlert.objects.get(session=session).kind == SessionAlert.Kind.WITHDRAWN_AFTER_SEND
