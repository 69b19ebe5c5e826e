"""Fixtures for the email tests: test templates, and a real SMTP server that can misbehave on demand."""

import asyncio
import email
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings as django_settings

from ..conftest import free_port

TEST_TEMPLATES = Path(__file__).parent / "templates"


@pytest.fixture(autouse=True)
def email_test_templates(settings):
    """`emails/greeting-*`: a name and a personal link, the shape of a real parent email."""
    templates = [dict(engine) for engine in django_settings.TEMPLATES]
    templates[0]["DIRS"] = [*templates[0]["DIRS"], TEST_TEMPLATES]
    settings.TEMPLATES = templates


@dataclass
class SMTPSink:
    """An aiosmtpd handler. `mode`: "ok", "451" or "550" (answered to DATA), "rcpt550" (to RCPT TO),
    or "hang" (DATA never answered until the test ends)."""

    mode: str = "ok"
    received: list = field(default_factory=list)
    peers: set = field(default_factory=set)
    released: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.peers.add(session.peer)
        if self.mode == "rcpt550":
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.mode == "451":
            return "451 4.3.0 Mailbox busy, try again later"
        if self.mode == "550":
            return "550 5.7.1 Message rejected by policy"
        while self.mode == "hang" and not self.released.is_set():
            await asyncio.sleep(0.05)
        self.received.append(email.message_from_bytes(envelope.original_content or envelope.content))
        return "250 2.0.0 Accepted"

    @property
    def connections(self) -> int:
        """Connections that got as far as a recipient (the controller's own start-up probe does not)."""
        return len(self.peers)


@pytest.fixture
def smtp_server(settings):
    """A local SMTP server on a free port, and Django's SMTP backend pointed at it."""
    sink = SMTPSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 1
    try:
        yield sink
    finally:
        sink.released.set()
        controller.stop()


@pytest.fixture
def queue_greeting(db):
    """`queue_greeting(to=…, school=…, name=…)` queues the test email without running on-commit hooks."""
    from outbox.services import email_queue

    def _queue(*, to: str = "parent@example.net", school=None, name: str = "Ava", token: str = "tok123", **kw):  # noqa: S107
        return email_queue(template="greeting", to=to, context={"name": name, "token": token}, school=school, **kw)

    return _queue
