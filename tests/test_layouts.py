"""The layouts every page stands on: landmarks, the demo banner, and no scripts on parent pages."""

import pytest
from django.template import engines
from django.test import RequestFactory


def _render(source: str, **context) -> str:
    request = RequestFactory().get("/")
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    return engines["django"].from_string(source).render(context, request)


@pytest.mark.django_db
def test_parent_layout_loads_no_script_and_has_landmarks(settings):
    settings.DEMO_MODE = False
    html = _render('{% extends "parent/base.html" %}{% block content %}<p>Hello</p>{% endblock %}',
                   school={"name": "Laxey School"})
    assert "<script" not in html
    assert '<main id="main"' in html and "<header" in html and "<footer" in html
    assert "Skip to main content" in html and "Laxey School" in html
    assert 'name="viewport"' in html and 'lang="en-GB"' in html


@pytest.mark.django_db
def test_demo_banner_shows_only_in_demo_mode(settings):
    source = '{% extends "staff/base.html" %}'
    settings.DEMO_MODE = True
    assert "invented data" in _render(source)
    settings.DEMO_MODE = False
    assert "invented data" not in _render(source)


@pytest.mark.django_db
def test_no_template_uses_inline_scripts_or_styles():
    """The CSP forbids them; catching them here is cheaper than a blank page in production."""
    import re
    from pathlib import Path

    from django.conf import settings

    inline = re.compile(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=", re.IGNORECASE)
    offenders = []
    for path in Path(settings.BASE_DIR, "templates").rglob("*.html"):
        if "emails" in path.parts or "pdf" in path.parts:
            continue  # emails and PDFs are not served under the site's CSP
        if inline.search(path.read_text()):
            offenders.append(str(path))
    assert offenders == []


@pytest.mark.django_db
def test_navigation_is_hidden_until_the_second_factor_is_passed(client, personas):
    from django.urls import reverse

    client.force_login(personas.headteacher)  # password done, code not yet
    body = client.get(reverse("accounts:verify")).content.decode()
    assert reverse("schools:audit") not in body and "Sign out" in body
    from tests.conftest import sign_in

    sign_in(client, personas.headteacher)
    assert reverse("schools:audit") in client.get(reverse("schools:dashboard")).content.decode()


def test_favicon_ico_points_at_the_vendored_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("img/favicon.svg")


@pytest.mark.django_db
def test_a_teacher_without_a_second_factor_sees_navigation_without_asking_twice(client, personas):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from tests.conftest import sign_in

    sign_in(client, personas.teacher)
    with CaptureQueriesContext(connection) as queries:
        body = client.get(reverse("schools:dashboard")).content.decode()
    assert "Sign out" in body and reverse("schools:dashboard") in body
    device_lookups = [q for q in queries.captured_queries if "otp_totp_totpdevice" in q["sql"]]
    assert len(device_lookups) == 1
