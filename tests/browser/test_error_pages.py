"""The error pages in a browser: a member of staff on a tablet meets a missing page and a crash; each page
passes axe-core; screenshots kept in test-artifacts/."""

import pytest

from tests.browser.conftest import signed_in_context
from tests.browser.test_staff_sign_in import blocking_violations

pytestmark = pytest.mark.browser


@pytest.fixture
def staff_tablet(browser, live_server, personas):
    context = signed_in_context(browser, live_server, personas.teacher, viewport={"width": 820, "height": 1180},
                                is_mobile=True, has_touch=True)
    yield context.new_page()
    context.close()


def test_a_missing_page_and_a_crash_read_plainly_in_the_layout(live_server, transactional_db, settings, staff_tablet,
                                                               artifacts):
    settings.DEBUG = False
    settings.ROOT_URLCONF = "tests.error_urls"
    page = staff_tablet
    response = page.goto(live_server.url + "/sessions/987654/")
    assert response.status == 404
    assert page.get_by_role("heading", name="Page not found").is_visible()
    assert page.get_by_role("navigation", name="Main").is_visible()
    assert blocking_violations(page) == []
    page.screenshot(path=artifacts / "error-404-tablet.png", full_page=True)

    response = page.goto(live_server.url + "/test-errors/crash/")
    assert response.status == 500
    assert page.get_by_role("heading", name="Something went wrong on our side").is_visible()
    assert page.get_by_role("link", name="Sessions").is_visible()
    assert "secret detail" not in page.content()
    assert blocking_violations(page) == []
    page.screenshot(path=artifacts / "error-500-tablet.png", full_page=True)
