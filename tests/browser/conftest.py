"""Browser fixtures: Playwright's sync API driving Debian's Chromium against pytest-django's live_server.

`playwright install` cannot download a browser here, so the tests use the system's /usr/bin/chromium
(Debian package `chromium`). Without it they skip with that reason on a laptop, and fail in CI
(GATEHOUSE_REQUIRE_SERVICES=1), where `.ci/run` installs it.
"""

import os
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail

# Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a thread with a
# running loop unless told that this is intended (the ORM calls here are the test's own, not async code).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying to reach Google's hosts, which this
# closed network refuses; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        skip_or_fail(f"needs Debian's Chromium at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield _ReducedMotionBrowser(browser)
        browser.close()


class _ReducedMotionBrowser:
    """The browser, whose pages ask for reduced motion: Bootstrap then drops its transitions, so an axe scan
    never measures a button's colours half-way through one (a flaky contrast failure)."""

    def __init__(self, browser):
        self._browser = browser

    def new_context(self, **options):
        options.setdefault("reduced_motion", "reduce")
        return self._browser.new_context(**options)

    def __getattr__(self, name):
        return getattr(self._browser, name)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def artifacts() -> Path:
    """test-artifacts/ (git-ignored): screenshots kept for a person to look at after the run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def signed_in_context(browser, live_server, user, **options):
    """A browser context already signed in as `user` (through the test client, second factor included), with
    Playwright's `options` (viewport, is_mobile, java_script_enabled, …). The caller closes it."""
    from django.test import Client

    from tests.conftest import sign_in

    client = Client()
    sign_in(client, user)
    context = browser.new_context(locale="en-GB", **options)
    context.set_default_timeout(15_000)
    domain = live_server.url.split("//", 1)[1].rsplit(":", 1)[0]
    context.add_cookies([{"name": name, "value": cookie.value, "domain": domain, "path": "/"}
                         for name, cookie in client.cookies.items()])
    return context
