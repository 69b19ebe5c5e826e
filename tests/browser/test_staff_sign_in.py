"""A headteacher signs in through the real pages (password, then the authenticator code) and sees the
dashboard, which passes an axe-core accessibility scan."""

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.urls import reverse
from django_otp.oath import totp

from schools.models import Role
from tests.factories import PASSWORD, MembershipFactory, SchoolFactory, TOTPDeviceFactory, UserFactory

pytestmark = pytest.mark.browser

BLOCKING_IMPACTS = {"serious", "critical"}


def blocking_violations(page) -> list[dict]:
    """Run axe-core on the page, print every violation, and return the serious and critical ones."""
    violations = Axe().run(page).response["violations"]
    blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
    for violation in violations:
        targets = [", ".join(node["target"]) for node in violation["nodes"]]
        print(f"{page.url}: {violation['impact']} {violation['id']}: {violation['help']} — {targets}")
    return blocking


def current_code(device) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def test_headteacher_signs_in_with_a_second_factor_and_sees_the_dashboard(
    live_server, transactional_db, page, artifacts
):
    school = SchoolFactory(name="Laxey School")
    head = UserFactory(username="head", first_name="Michael", last_name="Kelly")
    head.set_password(PASSWORD)
    head.save()
    MembershipFactory(user=head, role=Role.HEADTEACHER, school=school)
    device = TOTPDeviceFactory(user=head, confirmed=True)

    page.goto(live_server.url + reverse("accounts:login"))
    assert not blocking_violations(page), "the login page has serious or critical accessibility violations"
    page.fill("input[name=username]", "head")
    page.fill("input[name=password]", PASSWORD)
    page.locator("form[action$='/login/'] button[type=submit]").click()

    page.wait_for_url(f"**{reverse('accounts:verify')}**")
    page.fill("input[name=code]", current_code(device))
    page.locator("form[action$='/verify/'] button[type=submit]").click()

    page.wait_for_url(f"**{reverse('schools:dashboard')}")
    assert page.locator("h1").inner_text().strip() == "Home"
    assert page.get_by_role("link", name="Laxey School").is_visible()
    page.screenshot(path=artifacts / "headteacher-dashboard.png", full_page=True)

    # axe is injected with page.evaluate, which the strict CSP does not block (no bypass_csp needed).
    assert not blocking_violations(page), "the dashboard has serious or critical accessibility violations"
