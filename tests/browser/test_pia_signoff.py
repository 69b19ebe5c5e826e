"""A PIA's sign-off in the browser: the DPO signs in with their authenticator, finds the PIA in their queue and
advises with a comment on a step straight after signing in with a code (which counts as confirming it's
them for a few minutes); the headteacher accepts the advice and the SIRO signs, each after their own
confirmation, asked for again once the sign-in's has lapsed. Screenshots of every sign-off page go to
test-artifacts/."""

import pytest
from django.urls import reverse
from django_otp.oath import totp

from pia import services
from pia.models import Decision, PiaVersion
from tests.factories import PASSWORD
from tests.pia.pia_setup import draft_pia

from .test_staff_sign_in import blocking_violations

pytestmark = pytest.mark.browser


def code(device, steps_ahead: int = 0) -> str:
    """The authenticator's code, `steps_ahead` time steps ahead: a code is accepted once only, and the device
    accepts the next step's too, so signing in and confirming a minute later each get their own."""
    t0 = device.t0 - steps_ahead * device.step
    return f"{totp(device.bin_key, step=device.step, t0=t0, digits=device.digits):0{device.digits}d}"


def sign_in(page, live_server, user) -> None:
    device = user.totpdevice_set.get()
    page.goto(live_server.url + reverse("accounts:login"))
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form[action$='/login/'] button[type=submit]").click()
    page.wait_for_url(f"**{reverse('accounts:verify')}**")
    page.fill("input[name=code]", code(device))
    page.locator("form[action$='/verify/'] button[type=submit]").click()
    page.wait_for_url(f"**{reverse('schools:dashboard')}")


def confirmation_lapses(page) -> None:
    """Signing in counts as "confirm it's you" for a few minutes: drop that from the browser's session, as if
    the sign-off came later, so that the page asks again."""
    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore

    from accounts.reauth import SESSION_KEY

    (cookie,) = [c for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME]
    session = SessionStore(session_key=cookie["value"])
    session.pop(SESSION_KEY)
    session.save()


def confirm_its_me(page, user) -> None:
    page.wait_for_url(f"**{reverse('accounts:confirm')}**")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=code]", code(user.totpdevice_set.get(), steps_ahead=1))
    page.get_by_role("button", name="Confirm").click()


@pytest.fixture
def staff_page(browser):
    contexts = []

    def new_page():
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield new_page
    for context in contexts:
        context.close()


def test_the_dpo_advises_the_headteacher_accepts_and_the_siro_signs(
    live_server, transactional_db, personas, staff_page, artifacts
):
    version = draft_pia(personas.organisation, personas.office, school=personas.school, title="Zoom")
    services.version_submit(version=version, actor=personas.office)

    # The DPO: the queue, "confirm it's you", the advice with a comment on the risks step.
    page = staff_page()
    sign_in(page, live_server, personas.dpo)
    page.goto(live_server.url + reverse("pia:dpo-queue"))
    assert page.get_by_role("link", name="Waiting for your advice 1").is_visible()
    assert page.get_by_role("link", name="Zoom").is_visible()
    page.screenshot(path=artifacts / "pia-dpo-queue.png", full_page=True)
    assert not blocking_violations(page), "the DPO queue has serious or critical accessibility violations"
    page.get_by_role("link", name="Advise").click()  # just signed in with a code: no second confirmation
    page.wait_for_url(f"**{reverse('pia:advise', kwargs={'pk': version.pk})}")
    page.get_by_label("Comment on “Identify the privacy and related risks”").fill("Rate the disclosure risk higher.")
    page.get_by_role("textbox", name="Your advice").fill("Proceed: the solutions reduce the risks enough.")
    page.screenshot(path=artifacts / "pia-advise.png", full_page=True)
    assert not blocking_violations(page), "the advice page has serious or critical accessibility violations"
    page.get_by_role("button", name="Give advice").click()
    page.wait_for_url(f"**{reverse('pia:dpo-queue')}")
    assert "now waits for the data controller" in page.locator(".alert-success").inner_text()

    # The headteacher (the data controller) accepts the advice.
    page = staff_page()
    sign_in(page, live_server, personas.headteacher)
    confirmation_lapses(page)
    page.goto(live_server.url + reverse("pia:decide", kwargs={"pk": version.pk}))
    confirm_its_me(page, personas.headteacher)
    page.wait_for_url(f"**{reverse('pia:decide', kwargs={'pk': version.pk})}")
    advice = page.get_by_role("region", name="The DPO's advice").inner_text()
    assert "Proceed: the solutions reduce the risks enough." in advice
    assert "Rate the disclosure risk higher." in advice
    page.get_by_label("Accept the DPO's advice").check()
    page.screenshot(path=artifacts / "pia-decide.png", full_page=True)
    assert not blocking_violations(page), "the decision page has serious or critical accessibility violations"
    page.get_by_role("button", name="Record my decision").click()
    page.wait_for_url(f"**{reverse('pia:version', kwargs={'pk': version.pk})}")

    # The SIRO signs.
    page = staff_page()
    sign_in(page, live_server, personas.siro)
    confirmation_lapses(page)
    page.goto(live_server.url + reverse("pia:sign", kwargs={"pk": version.pk}))
    confirm_its_me(page, personas.siro)
    page.wait_for_url(f"**{reverse('pia:sign', kwargs={'pk': version.pk})}")
    page.screenshot(path=artifacts / "pia-sign.png", full_page=True)
    assert not blocking_violations(page), "the signing page has serious or critical accessibility violations"
    page.get_by_role("button", name="Sign version 1").click()
    page.wait_for_url(f"**{reverse('pia:version', kwargs={'pk': version.pk})}")
    page.screenshot(path=artifacts / "pia-signed-version.png", full_page=True)

    version.refresh_from_db()
    assert version.status == PiaVersion.Status.SIGNED and version.hash_verifies()
    decisions = list(version.decisions.order_by("decided_at", "id"))
    assert [(d.kind, d.user) for d in decisions] == [
        (Decision.Kind.DPO_ADVICE, personas.dpo),
        (Decision.Kind.CONTROLLER_ACCEPTED, personas.headteacher),
        (Decision.Kind.SIRO_SIGNED, personas.siro),
    ]
    assert decisions[0].step_comments == {"risks": "Rate the disclosure risk higher."}

    # The versions, and a second version compared with the signed one.
    page.goto(live_server.url + reverse("pia:versions", kwargs={"pk": version.pia_id}))
    assert page.get_by_text("Unchanged since signing").is_visible()
    draft = services.version_revise(pia=version.pia, actor=personas.office)
    PiaVersion.objects.filter(pk=draft.pk).update(aims="Live lessons for whole classes, recorded for absent pupils.")
    page.reload()
    page.screenshot(path=artifacts / "pia-versions.png", full_page=True)
    assert not blocking_violations(page), "the versions page has serious or critical accessibility violations"
    page.get_by_role("link", name="Compare versions").click()
    assert page.locator("tr.table-warning").filter(has_text="recorded for absent pupils").is_visible()
    page.screenshot(path=artifacts / "pia-compare.png", full_page=True)
    assert not blocking_violations(page), "the comparison has serious or critical accessibility violations"
