"""Fixtures for the fault tests: a Redis of our own that can be stopped and flushed, a mail server that
misbehaves on a schedule (or never answers), a real Celery worker in a process group we can SIGKILL, and
many consenting families in one due session, written in bulk.

The worker runs `python -m celery -A config worker` against the test database (the test is
`transactional_db`, so what it writes is committed and visible to the worker) and against this module's
Redis, never the machine's: stopping or flushing that one would break every other test. The sweeper is
driven from the test process (`deliveries_sweep()` every half second) because beat's minute is too slow
for a test; `LOST_TASK_AFTER` is shortened in-process for the same reason.
"""

import asyncio
import contextlib
import email
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from kombu import pools as kombu_pools

from config.celery import app as celery_app
from consent.models import ConsentEvent, ConsentState, ConsentStatus, Guardian, Guardianship, Pupil
from sessions import sweep
from sessions.models import Delivery, VideoSession
from tests.factories import GroupFactory
from tests.sessions.emails_dispatch import PASSWORD, current_notice
from tests.sessions.sessions_setup import scheduled_session

from ..conftest import free_port, skip_or_fail

ROOT = Path(django_settings.BASE_DIR)
# The worker's mail timeout (seconds): the lease is 2 × this + 30 s, the black hole is given up after it.
WORKER_EMAIL_TIMEOUT = 2
# How long a handed-over task may go unclaimed before the sweeper presumes it lost (in-process).
FAST_LOST_TASK_AFTER = timedelta(seconds=3)
FAMILY_DOMAIN = "families.example"


def wait_for(predicate, seconds: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


# ---------------------------------------------------------------------------------------------------
# Redis


class RedisServer:
    """`redis-server` on a free port, without persistence; `stop()` and `start()` it at will."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        # The shared cache (the send task's progress marks, read by the sweeper) in a database of its own.
        self.cache_url = f"redis://127.0.0.1:{self.port}/1"
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        assert self.process is None
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        if not wait_for(self.answers, 10):
            raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2)

    def answers(self) -> bool:
        import redis

        try:
            return bool(self.client().ping())
        except (redis.RedisError, OSError):
            return False

    def flushall(self) -> None:
        self.client().flushall()

    def queued(self, queue: str = "celery") -> int:
        return self.client().llen(queue)


@pytest.fixture
def redis_server(tmp_path, monkeypatch, settings):
    """Our own Redis, and the in-process Celery app pointed at it (for the planner's and sweeper's
    hand-overs), and this process's cache too (the sweeper reads the workers' progress marks there); all
    restored afterwards."""
    if shutil.which("redis-server") is None:
        skip_or_fail("needs redis-server on PATH to start a Redis of its own that it may stop and flush")
    server = RedisServer(tmp_path)
    server.start()
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": server.cache_url}}
    # Celery reads CELERY_BROKER_URL from the environment before its own configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", server.url)
    _reset_celery_connections()
    try:
        yield server
    finally:
        server.stop()
        monkeypatch.undo()
        _reset_celery_connections()


def _reset_celery_connections() -> None:
    """Forget every broker connection, so the next hand-over connects to the broker URL now configured.
    `kombu.pools.reset` closes the process-wide pools AND forgets them: closing only the app's pool would
    leave kombu handing that closed pool back to the next test ("Acquire on closed pool")."""
    kombu_pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


# ---------------------------------------------------------------------------------------------------
# The mail server


@dataclass
class FaultySMTP:
    """An aiosmtpd handler answering from a schedule of faults, one per message (DATA), then OK.

    Faults: "421" (service closing, then the connection is dropped by the client), "451" (try again
    later), "disconnect" (the server drops the connection mid-transaction), "ok". Only messages to the
    families take faults (staff mail from the set-up goes through). `refuse` holds addresses answered 550
    at RCPT TO, for ever. `answered` records the reply to every family message.

    `hold()` puts the next family message in the window a crash can turn into a duplicate: the server has
    the message (it is in `received`) but has not said 250 yet; `holding` is set while it waits there, and
    clearing it lets the 250 go (to a dead worker, by then)."""

    faults: list = field(default_factory=list)
    refuse: set = field(default_factory=set)
    received: list = field(default_factory=list)
    answered: list = field(default_factory=list)  # (recipients, reply) in order
    lock: threading.Lock = field(default_factory=threading.Lock)
    hold_requested: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)
    held: list = field(default_factory=list)

    def hold(self) -> None:
        self.holding.clear()
        self.hold_requested.set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            with self.lock:
                self.answered.append(([address], "550"))
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        family = any(to.endswith("@" + FAMILY_DOMAIN) for to in envelope.rcpt_tos)
        with self.lock:
            fault = self.faults.pop(0) if self.faults and family else "ok"
            if family:
                self.answered.append((list(envelope.rcpt_tos), fault))
        if fault == "421":
            return "421 4.3.2 Service shutting down, try again later"
        if fault == "451":
            return "451 4.3.0 Mailbox busy, try again later"
        if fault == "disconnect":
            server.transport.close()
            return "451 4.3.0 (never read: the connection is gone)"
        message = email.message_from_bytes(envelope.original_content or envelope.content)
        with self.lock:
            self.received.append(message)
            hold = family and self.hold_requested.is_set()
            if hold:
                self.hold_requested.clear()
                self.held.append(message["To"])
                self.holding.set()
        while hold and self.holding.is_set():
            await asyncio.sleep(0.01)
        return "250 2.0.0 Accepted"

    def to(self, address: str) -> list:
        with self.lock:
            return [m for m in self.received if m["To"] == address]

    def per_recipient(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self.lock:
            for message in self.received:
                counts[message["To"]] = counts.get(message["To"], 0) + 1
        return counts


@pytest.fixture
def smtp_sink():
    handler = FaultySMTP()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.port = port
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def black_hole():
    """A TCP port that accepts connections (the kernel completes the handshake) and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


# ---------------------------------------------------------------------------------------------------
# The worker


def _database_url() -> str:
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """`celery -A config worker` in its own process group: `kill()` SIGKILLs the whole group (the main
    process and its pool children at once, as the OOM killer or a pulled plug would)."""

    def __init__(self, *, broker_url: str, smtp_port: int, log_path: Path, extra_env: dict | None = None,
                 concurrency: int = 2):
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": broker_url,
            # The same Redis's database 1: the cache the sweeper in the test process reads.
            "CACHE_URL": broker_url.rsplit("/", 1)[0] + "/1",
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
            "EMAIL_TIMEOUT": str(WORKER_EMAIL_TIMEOUT),
            "GATEHOUSE_DEMO": "false",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.concurrency = concurrency
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.process is None
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n----- worker start #{self.starts} -----\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork",
             f"--concurrency={self.concurrency}", "--prefetch-multiplier=1", "-Q", "celery", "--loglevel=INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"faults{self.starts}@%h"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def worker_factory(transactional_db, tmp_path, request):
    """`worker_factory(broker_url=…, smtp_port=…)` → a started `Worker`. Every worker is SIGKILLed at the
    end (before the test database is flushed); on failure its log is printed."""
    workers: list[Worker] = []

    def make(**kwargs) -> Worker:
        worker = Worker(log_path=tmp_path / f"worker{len(workers) + 1}.log", **kwargs)
        workers.append(worker)
        worker.start()
        return worker

    yield make
    for worker in workers:
        worker.kill()
    failed = getattr(request.node, "rep_call", None)
    if failed is None or failed.failed:
        for worker in workers:
            print(f"===== {worker.log_path.name} (last 200 lines) =====")
            print("\n".join(worker.log().splitlines()[-200:]))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def fast_sweeper(monkeypatch):
    """Presume a handed-over task lost after 3 s instead of a minute (the sweeper runs in this process)."""
    monkeypatch.setattr(sweep, "LOST_TASK_AFTER", FAST_LOST_TASK_AFTER)


# ---------------------------------------------------------------------------------------------------
# Families


def family_address(index: int) -> str:
    return f"parent{index:05d}@{FAMILY_DOMAIN}"


def due_session_with_families(personas, count: int, *, minutes_ahead: int = 25) -> VideoSession:
    """`count` pupils, each with one guardian who consented (on the current notice), in one group of a
    session starting `minutes_ahead` from now with a 60-minute lead: all `count` invitations are due.
    Registry rows are written in bulk (what a roster import and `consent_give` leave behind, without a
    confirmation email per parent, which would only crowd the mail server)."""
    school = personas.school
    notice = current_notice(school)
    group = GroupFactory(school=school, name="Fault drill")
    pupils = Pupil.objects.bulk_create(
        [Pupil(school=school, mis_id=f"FP{i:05d}", first_name=f"Child{i}", last_name="Drill") for i in range(count)]
    )
    guardians = Guardian.objects.bulk_create(
        [Guardian(school=school, mis_id=f"FG{i:05d}", first_name="Parent", last_name=f"Drill{i}",
                  email=family_address(i)) for i in range(count)]
    )
    Guardianship.objects.bulk_create([Guardianship(guardian=g, pupil=p, parental_responsibility=True)
                                      for g, p in zip(guardians, pupils, strict=True)])
    group.pupils.add(*pupils)
    events = ConsentEvent.objects.bulk_create(
        [ConsentEvent(guardian=g, pupil=p, purpose=notice.purpose, kind=ConsentEvent.Kind.GIVEN, notice=notice,
                      notice_version=notice.version, notice_sha256=notice.sha256,
                      channel=ConsentEvent.Channel.PARENT_LINK, attestation=True)
         for g, p in zip(guardians, pupils, strict=True)]
    )
    ConsentStatus.objects.bulk_create(
        [ConsentStatus(guardian_id=e.guardian_id, pupil_id=e.pupil_id, purpose=notice.purpose,
                       state=ConsentState.GIVEN, last_event=e) for e in events]
    )
    return scheduled_session(personas, groups=[group], starts_at=timezone.now() + timedelta(minutes=minutes_ahead),
                             lead_minutes=60, password=PASSWORD)


def statuses(session) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in Delivery.objects.filter(session=session).values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


def drive(session, *, until, seconds: float, every: float = 0.5, sweep_every: float | None = None, each=None) -> bool:
    """Run the sweeper (what beat does every minute) every `sweep_every` seconds (default: `every`), checking
    `until()` every `every` seconds, until it holds. `each()` runs before every sweep (e.g. to move the
    clock on)."""
    sweep_every = sweep_every or every
    deadline = time.monotonic() + seconds
    last_sweep = 0.0
    while time.monotonic() < deadline:
        if until():
            return True
        if time.monotonic() - last_sweep >= sweep_every:
            if each is not None:
                each()
            sweep.deliveries_sweep()
            last_sweep = time.monotonic()
        time.sleep(every)
    return bool(until())
