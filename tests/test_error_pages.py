"""Staff pages that fail well: 403, 404 and 500 in the site's layout with a plain sentence of what happened,
the navigation for a signed-in member of staff, and nothing of the error's detail. Parent links keep their
own generic page. Run with DEBUG off, as in production (DEBUG on shows Django's technical pages instead)."""

import re
from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from config.errors import server_error
from sessions.models import VideoSession
from tests.factories import GroupFactory
from tests.sessions.sessions_setup import session_row

pytestmark = pytest.mark.django_db

SIGN_OUT = ">Sign out</button>"


@pytest.fixture(autouse=True)
def production_errors(settings):
    settings.DEBUG = False


@pytest.fixture
def failing_urls(settings):
    settings.ROOT_URLCONF = "tests.error_urls"


@pytest.fixture
def quiet_client(client):
    """A client that gets the 500 page rather than the exception, as a browser would."""
    client.raise_request_exception = False
    return client


def _text(response) -> str:
    return response.content.decode()


def _without_csrf_token(response) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", _text(response))


# --- 404 ----------------------------------------------------------------------------------------------------

def test_a_missing_page_for_a_member_of_staff_has_the_layout_and_the_navigation(personas, client_for):
    response = client_for(personas.teacher).get("/registry/no-such-page/")
    page = _text(response)
    assert response.status_code == 404
    assert "<h1 class=\"h3 mb-0\">Page not found</h1>" in page and "There is no page at this address" in page
    assert SIGN_OUT in page and reverse("video_sessions:list") in page and 'aria-label="Main"' in page
    assert "Go to your home page" in page


def test_another_schools_session_gets_the_same_page_as_one_that_does_not_exist(personas, client_for):
    theirs = session_row(personas.other_school, personas.other_teacher)
    theirs.groups.add(GroupFactory(school=personas.other_school))
    client = client_for(personas.teacher)
    other = client.get(reverse("video_sessions:session", kwargs={"pk": theirs.pk}))
    missing = client.get(reverse("video_sessions:session", kwargs={"pk": VideoSession.objects.count() + 1000}))
    assert other.status_code == missing.status_code == 404
    assert _without_csrf_token(other) == _without_csrf_token(missing)


def test_a_missing_page_for_someone_not_signed_in_offers_to_sign_in(client):
    response = client.get("/no-such-page/")
    page = _text(response)
    assert response.status_code == 404 and "Page not found" in page
    assert reverse("accounts:login") in page and "open the link in the most recent email" in page
    assert SIGN_OUT not in page and "staff-header" in page


def test_a_missing_page_under_a_parent_link_keeps_the_parents_generic_page(client, personas):
    response = client.get("/p/" + "x" * 43 + "/no-such-page/")
    page = _text(response)
    assert response.status_code == 404
    assert "This link does not work" in page and 'class="parent-header"' in page
    assert "staff-header" not in page and "<script" not in page
    assert response["Referrer-Policy"] == "no-referrer" and response["Cache-Control"] == "no-store"


# --- 403 ----------------------------------------------------------------------------------------------------

def test_a_refused_action_says_so_plainly_with_the_navigation(personas, client_for):
    group = GroupFactory(school=personas.school)
    session = session_row(personas.school, personas.teacher)
    session.groups.add(group)
    response = client_for(personas.office).get(reverse("video_sessions:attendance", kwargs={"pk": session.pk}))
    page = _text(response)
    assert response.status_code == 403
    assert "You cannot do this" in page and "Your role does not allow what you tried to do here" in page
    assert SIGN_OUT in page and reverse("video_sessions:list") in page


@pytest.mark.parametrize(("url", "reason"), [
    ("schools:audit", "The audit trail is for headteachers, the DPO, the SIRO and the organisation's admin."),
    ("video_sessions:incidents", "The incidents log is for headteachers, the DPO, the SIRO and the organisation's "
                                 "admin."),
    ("organisation-settings", "Only the organisation's admin changes the organisation's settings."),
])
def test_a_refused_page_says_who_it_is_for_rather_than_an_unrelated_example(personas, client_for, url, reason):
    if url == "organisation-settings":
        url = reverse("schools:organisation-settings", kwargs={"organisation_pk": personas.organisation.pk})
    else:
        url = reverse(url)
    response = client_for(personas.teacher).get(url)
    page = _text(response).replace("&#x27;", "'")
    assert response.status_code == 403 and reason in page
    assert "records its attendance" not in page


def test_a_refusal_not_written_for_people_keeps_its_message_to_itself(personas, client_for, failing_urls):
    response = client_for(personas.teacher).get("/test-errors/forbidden/")
    page = _text(response)
    assert response.status_code == 403 and "the internal reason" not in page
    assert "Each page and action is for the roles whose work needs it." in page


def test_a_refusal_for_someone_not_signed_in_offers_to_sign_in(client, failing_urls):
    response = client.get("/test-errors/forbidden/")
    page = _text(response)
    assert response.status_code == 403 and "You cannot do this" in page and reverse("accounts:login") in page
    assert "the internal reason" not in page and SIGN_OUT not in page


# --- 500 ----------------------------------------------------------------------------------------------------

def test_a_crash_shows_the_layout_with_navigation_and_no_detail(personas, client_for, quiet_client, failing_urls):
    client_for(personas.teacher)
    response = quiet_client.get("/test-errors/crash/")
    page = _text(response)
    assert response.status_code == 500
    assert "Something went wrong on our side" in page and "It is not something you did" in page
    assert 'aria-label="Main"' in page and reverse("video_sessions:list") in page
    assert reverse("schools:glossary") in page
    for leak in ("secret detail", "SELECT", "RuntimeError", "Traceback", "error_urls"):
        assert leak not in page, leak


def test_the_500_page_renders_without_touching_the_database():
    request = RequestFactory().get("/sessions/")
    with mock.patch("django.db.backends.utils.CursorWrapper.execute",
                    side_effect=OperationalError("database down")), CaptureQueriesContext(connection) as queries:
        response = server_error(request)
    assert response.status_code == 500 and "Something went wrong on our side" in _text(response)
    assert len(queries) == 0


def test_with_the_database_down_a_signed_in_member_of_staff_gets_the_500_page(personas, client_for, quiet_client,
                                                                            failing_urls):
    client_for(personas.teacher)
    with mock.patch("django.db.backends.utils.CursorWrapper.execute",
                    side_effect=OperationalError("could not connect to server at 10.0.0.7")):
        response = quiet_client.get(reverse("schools:dashboard"))
    page = _text(response)
    assert response.status_code == 500 and "Something went wrong on our side" in page
    assert "10.0.0.7" not in page and "OperationalError" not in page
    down = quiet_client.get("/test-errors/database-down/")
    assert down.status_code == 500 and "10.0.0.7" not in _text(down)


def test_a_crash_under_a_parent_link_shows_the_parents_page(quiet_client, failing_urls):
    response = quiet_client.get("/p/" + "x" * 43 + "/crash/")
    page = _text(response)
    assert response.status_code == 500
    assert "Something went wrong on our side" in page and 'class="parent-header"' in page
    assert "staff-header" not in page and "secret detail" not in page and "<script" not in page
    assert response["Referrer-Policy"] == "no-referrer" and response["Cache-Control"] == "no-store"
