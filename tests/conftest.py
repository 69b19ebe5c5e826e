"""Shared fixtures: the personas every test speaks of, and the services some tests need.

Tests marked `postgres` need real row locks and tests marked `broker` need Redis and a real Celery
worker. On a laptop without those they skip with the reason; with GATEHOUSE_REQUIRE_SERVICES=1 (set by
`.ci/run`) a missing service fails the test instead, so CI can never pass by skipping them.
"""

import os
import socket
from dataclasses import dataclass

import pytest
from django.db import connection
from django_otp import DEVICE_ID_SESSION_KEY

from config.celery import app as celery_app
from schools.models import Role

from .factories import (
    MembershipFactory,
    OrganisationFactory,
    SchoolFactory,
    TOTPDeviceFactory,
    UserFactory,
)

REQUIRE_SERVICES = os.environ.get("GATEHOUSE_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (GATEHOUSE_REQUIRE_SERVICES=1: CI must not skip this test)")
    pytest.skip(reason)


def redis_url() -> str | None:
    url = os.environ.get("CELERY_BROKER_URL", "")
    return url if url.startswith("redis://") else None


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


@pytest.fixture(autouse=True)
def _services_for_marked_tests(request):
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        skip_or_fail("needs PostgreSQL row locks: set DATABASE_URL=postgres://… to run it")
    if request.node.get_closest_marker("broker"):
        url = redis_url()
        if url is None or not redis_answers(url):
            skip_or_fail("needs a real Redis broker: set CELERY_BROKER_URL=redis://… with Redis running")


@pytest.fixture(autouse=True)
def _eager_celery(request):
    """Tasks run in-process unless a test asks for the real broker."""
    if request.node.get_closest_marker("broker"):
        yield
        return
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings, request):
    if not request.node.get_closest_marker("real_hasher"):
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# Run with pytest-xdist (two processes, `--dist loadgroup`): the tests that start a real Celery worker share
# one Redis database or their own servers, so they run one after another in one process; the longest test
# is handed out first, so that it runs beside the rest instead of after them.
SERVICES_GROUP = "services"
LONGEST_FIRST = ("tests/sessions/test_state_machine.py::test_invitations_follow_consent_under_faults",)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("broker") or item.get_closest_marker("faults"):
            item.add_marker(pytest.mark.xdist_group(SERVICES_GROUP))
    items.sort(key=lambda item: (item.nodeid not in LONGEST_FIRST,
                                 not item.get_closest_marker("xdist_group")))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Personas:
    organisation: object
    school: object
    other_school: object
    headteacher: object
    teacher: object
    office: object
    dpo: object
    siro: object
    org_admin: object
    other_teacher: object
    other_headteacher: object


def _member(role: str, *, school=None, organisation=None, two_factor: bool = False):
    user = UserFactory()
    MembershipFactory(user=user, role=role, school=school, organisation=organisation or school.organisation)
    if two_factor:
        TOTPDeviceFactory(user=user)
    return user


@pytest.fixture
def personas(db) -> Personas:
    """A federation with two schools, and one member of staff for every role.

    Roles that must use a second factor get a confirmed authenticator device.
    """
    organisation = OrganisationFactory(name="Test Federation", slug="test-federation")
    school = SchoolFactory(organisation=organisation, name="Laxey Test School", slug="laxey")
    other_school = SchoolFactory(organisation=OrganisationFactory(name="Other Trust", slug="other"),
                                 name="Other School", slug="other")
    return Personas(
        organisation=organisation,
        school=school,
        other_school=other_school,
        headteacher=_member(Role.HEADTEACHER, school=school, two_factor=True),
        teacher=_member(Role.TEACHER, school=school),
        office=_member(Role.OFFICE, school=school),
        dpo=_member(Role.DPO, organisation=organisation, two_factor=True),
        siro=_member(Role.SIRO, organisation=organisation, two_factor=True),
        org_admin=_member(Role.ORG_ADMIN, organisation=organisation, two_factor=True),
        other_teacher=_member(Role.TEACHER, school=other_school),
        other_headteacher=_member(Role.HEADTEACHER, school=other_school, two_factor=True),
    )


def sign_in(client, user) -> None:
    """Sign a user in as the login flow would, including the second factor when they have one."""
    client.force_login(user)
    device = user.totpdevice_set.filter(confirmed=True).first()
    if device is not None:
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()


@pytest.fixture
def client_for(client):
    """`client_for(user)` signs that user in (verified second factor included) and returns the client."""

    def _client_for(user):
        if user is not None:
            sign_in(client, user)
        return client

    return _client_for
