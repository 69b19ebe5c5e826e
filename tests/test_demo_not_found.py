"""In the demo (DEBUG on), a missing page is Gatehouse's own 404 page, never Django's technical page with the
list of URL patterns (config/demo_not_found.py)."""

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db

OURS = "There is no page at this address that you can open."
TECHNICAL = "URLconf"


@pytest.fixture(autouse=True)
def debug_on(settings):
    """As `bin/demo` runs (pytest-django turns DEBUG off for tests)."""
    settings.DEBUG = True


def test_the_demo_runs_with_debug_on_and_the_middleware_installed():
    assert settings.DEBUG and settings.DEMO_MODE
    assert "config.demo_not_found.DemoNotFoundMiddleware" in settings.MIDDLEWARE


def test_an_address_that_matches_nothing_gets_the_apps_page_signed_out_and_in(client, personas, client_for):
    for who in (client, client_for(personas.teacher)):
        response = who.get("/nowhere/")
        assert response.status_code == 404
        page = response.content.decode()
        assert OURS in page and TECHNICAL not in page and "django-admin" not in page


def test_an_object_that_does_not_exist_gets_the_apps_page(personas, client_for):
    response = client_for(personas.headteacher).get("/sessions/999999/")
    assert response.status_code == 404
    page = response.content.decode()
    assert OURS in page and "Go to your home page" in page and "Traceback" not in page


def test_a_missing_slash_still_redirects(personas, client_for):
    response = client_for(personas.headteacher).get("/sessions")
    assert response.status_code == 301 and response["Location"] == "/sessions/"


def test_a_bad_parent_link_keeps_the_parents_generic_page(client):
    response = client.get("/p/not-a-real-token/")
    assert response.status_code == 404
    assert OURS not in response.content.decode() and response["Referrer-Policy"] == "no-referrer"
