"""Response headers and cookies under production-like settings, and the CSP on the demo settings.

SecurityMiddleware reads its settings when the handler loads the middleware, so every test changes
`settings` first and only then creates its own Client.
"""

import pytest
from django.test import Client
from django.urls import reverse

from .factories import PASSWORD, MembershipFactory, SchoolFactory, UserFactory

ONE_YEAR = 31536000
SAFE_REFERRER_POLICIES = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}


@pytest.fixture
def production_settings(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["gatehouse.example.org", "testserver"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = ONE_YEAR
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    return settings


def csp_directives(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, "no Content-Security-Policy header"
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


def assert_strict_script_src(response) -> None:
    directives = csp_directives(response)
    script_src = directives.get("script-src", directives.get("default-src"))
    assert script_src is not None, "the CSP sets neither script-src nor default-src"
    assert "'self'" in script_src
    assert "'unsafe-inline'" not in script_src
    assert "'unsafe-eval'" not in script_src
    assert "*" not in script_src
    assert directives.get("object-src") == ["'none'"]
    assert directives.get("frame-ancestors") == ["'none'"]


@pytest.mark.django_db
def test_plain_http_is_redirected_to_https(production_settings):
    response = Client().get(reverse("accounts:login"))
    assert response.status_code == 301
    assert response["Location"].startswith("https://")


@pytest.mark.django_db
def test_production_headers_on_the_login_page(production_settings):
    response = Client().get(reverse("accounts:login"), secure=True)
    assert response.status_code == 200

    hsts = response.headers["Strict-Transport-Security"]
    max_age = int(hsts.split("max-age=")[1].split(";")[0])
    assert max_age >= ONE_YEAR
    assert "includeSubDomains" in hsts

    assert_strict_script_src(response)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] in SAFE_REFERRER_POLICIES


@pytest.mark.django_db
def test_the_proxy_header_counts_as_https(production_settings):
    response = Client().get(reverse("accounts:login"), HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert "Strict-Transport-Security" in response.headers


@pytest.mark.django_db
def test_session_and_csrf_cookies_are_secure_after_signing_in(production_settings):
    user = UserFactory()
    MembershipFactory(user=user, school=SchoolFactory())  # a teacher: no second factor needed
    client = Client()
    client.get(reverse("accounts:login"), secure=True)
    client.post(reverse("accounts:login"), {"username": user.username, "password": PASSWORD}, secure=True)

    csrf = client.cookies["csrftoken"]
    assert csrf["secure"]
    session = client.cookies.get("sessionid")
    assert session is not None, "signing in set no session cookie"
    assert session["secure"]
    assert session["httponly"]
    assert session["samesite"] in {"Lax", "Strict"}


@pytest.mark.django_db
def test_the_demo_settings_send_a_strict_csp_too():
    response = Client().get(reverse("accounts:login"))
    assert response.status_code == 200
    assert_strict_script_src(response)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
