"""Benchmark: 10,000 due invitations into a local SMTP sink, against a bare smtplib loop (quality.md, "dispatch").

Builds one school with 10,000 pupils, each with one guardian who consented (the registry written in bulk),
and one session of them whose send time has come. Starts an SMTP sink (aiosmtpd, in a process of its own,
counting what it accepts). Then, in this process:

1. the baseline: the same 10,000 invitations, built first as bytes (`invitation_email(...).message()`),
   sent by a bare `smtplib` loop over one connection to the sink;
2. the real path: the planner (`deliveries_plan`) creates the rows, and `delivery_send_batch` runs over
   the planner's batches, as the send task does, with Django's SMTP backend pointed at the sink and the
   progress marks in the configured cache (set CACHE_URL=redis://… as production has).

It prints both rates (messages per second), their ratio (goal ≥ 0.5) and the queries per batch. Runs
against the configured database (DATABASE_URL; PostgreSQL is the realistic case) and adds a new
organisation named "Bench …" on every run, so point it at a database of its own. It uses the test
suite's factories for the staff and the green gate (the development dependencies). See bench/README.md.
"""

import argparse
import datetime as dt
import multiprocessing
import smtplib
import time

from benchsetup import QueryCounter  # first: it sets Django up (and sorts before django)
from django.conf import settings
from django.core.mail import make_msgid
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from consent.models import ConsentEvent, ConsentState, ConsentStatus, Group, Guardian, Guardianship, Pupil
from schools.models import Role
from sessions import dispatch
from sessions.invitation import invitation_email
from sessions.models import Delivery, VideoSession
from tests.conftest import _member
from tests.factories import OrganisationFactory, SchoolFactory, UserFactory
from tests.sessions.emails_dispatch import current_notice
from tests.sessions.sessions_setup import scheduled_session, tomorrow_at

FIRST = ["Amelia", "Finlo", "Breesha", "Juan", "Ealish", "Orry", "Aalin", "Illiam", "Moirrey", "Tom", "Joan", "Ann"]
LAST = ["Quayle", "Kermode", "Kelly", "Corlett", "Cregeen", "Christian", "Moore", "Clague", "Kneale", "Teare"]


# ---------------------------------------------------------------------------------------------------
# The SMTP sink: a process of its own, so that it does not share this process's interpreter lock


def _sink(port: int, accepted, ready) -> None:
    import asyncio
    import logging

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command at INFO

    from aiosmtpd.controller import Controller

    class Counting:
        async def handle_DATA(self, server, session, envelope):
            with accepted.get_lock():
                accepted.value += 1
            return "250 2.0.0 Accepted"

    controller = Controller(Counting(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    try:
        asyncio.run(asyncio.sleep(10**6))
    finally:
        controller.stop()


class Sink:
    def __init__(self) -> None:
        from tests.conftest import free_port

        self.port = free_port()
        self.accepted = multiprocessing.Value("l", 0)
        ready = multiprocessing.Event()
        self.process = multiprocessing.Process(target=_sink, args=(self.port, self.accepted, ready), daemon=True)
        self.process.start()
        if not ready.wait(timeout=30):
            raise SystemExit("the SMTP sink did not start")

    @property
    def count(self) -> int:
        return self.accepted.value

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(timeout=10)


# ---------------------------------------------------------------------------------------------------
# The data


class Staff:
    """What `tests.sessions.sessions_setup` needs of the personas: an organisation, a school and its staff."""

    def __init__(self, stamp: str) -> None:
        UserFactory.reset_sequence(int(stamp))  # staff<n>@example.org: new names on every run
        self.organisation = OrganisationFactory(name=f"Bench {stamp}", slug=f"bench-{stamp}")
        self.school = SchoolFactory(organisation=self.organisation, name=f"Bench {stamp}", slug=f"bench-{stamp}")
        self.headteacher = _member(Role.HEADTEACHER, school=self.school, two_factor=True)
        self.teacher = _member(Role.TEACHER, school=self.school)
        self.office = _member(Role.OFFICE, school=self.school)
        self.dpo = _member(Role.DPO, organisation=self.organisation, two_factor=True)
        self.siro = _member(Role.SIRO, organisation=self.organisation, two_factor=True)


def build_registry(staff: Staff, families: int, stamp: str) -> Group:
    """`families` pupils, each with one guardian with parental responsibility who gave consent through
    their link on the current notice: events and status rows as `consent_give` leaves them, in bulk."""
    school = staff.school
    notice = current_notice(school)
    group = Group.objects.create(school=school, name=f"Bench {stamp}")
    pupils = Pupil.objects.bulk_create([
        Pupil(school=school, mis_id=f"P{i:06d}", first_name=FIRST[i % len(FIRST)], last_name=LAST[i % len(LAST)],
              year_group="5") for i in range(families)
    ], batch_size=2000)
    guardians = Guardian.objects.bulk_create([
        Guardian(school=school, mis_id=f"C{i:06d}", first_name=FIRST[(i + 3) % len(FIRST)],
                 last_name=LAST[i % len(LAST)], email=f"parent{i}@example.net") for i in range(families)
    ], batch_size=2000)
    Guardianship.objects.bulk_create([
        Guardianship(guardian=g, pupil=p, relationship=Guardianship.Relationship.OTHER, parental_responsibility=True)
        for g, p in zip(guardians, pupils, strict=True)
    ], batch_size=2000)
    Group.pupils.through.objects.bulk_create([Group.pupils.through(group=group, pupil=p) for p in pupils],
                                             batch_size=2000)
    events = ConsentEvent.objects.bulk_create([
        ConsentEvent(guardian=g, pupil=p, purpose=notice.purpose, kind=ConsentEvent.Kind.GIVEN, notice=notice,
                     notice_version=notice.version, notice_sha256=notice.sha256,
                     channel=ConsentEvent.Channel.PARENT_LINK, attestation=True)
        for g, p in zip(guardians, pupils, strict=True)
    ], batch_size=2000)
    ConsentStatus.objects.bulk_create([
        ConsentStatus(guardian_id=e.guardian_id, pupil_id=e.pupil_id, purpose=notice.purpose,
                      state=ConsentState.GIVEN, last_event=e)
        for e in events
    ], batch_size=2000)
    return group


def due_session(staff: Staff, group: Group) -> VideoSession:
    """Scheduled through the service for tomorrow (so that scheduling queues nothing), then moved so that
    its send time has come and its start is an hour ahead, as the planner finds it at 8:00 for 9:00."""
    session = scheduled_session(staff, groups=[group], starts_at=tomorrow_at(staff.school), lead_minutes=60,
                                password="Sesame-7749")  # noqa: S106 (a bench's meeting)
    now = timezone.now()
    VideoSession.objects.filter(pk=session.pk).update(starts_at=now + dt.timedelta(minutes=59),
                                                      send_at=now - dt.timedelta(minutes=1))
    return VideoSession.objects.get(pk=session.pk)


def baseline_messages(session: VideoSession) -> list[tuple[str, bytes]]:
    """The invitations as the real path builds them (same templates, context, attachment, sizes), each
    with a fresh withdraw link of the real length and its own Message-ID: (recipient, bytes)."""
    session = VideoSession.objects.select_related("school__organisation", "platform", "host").get(pk=session.pk)
    rows = Delivery.objects.filter(session=session).select_related("guardian").order_by("pk")
    pupils = {p.pk: p for p in Pupil.objects.filter(groups__video_sessions=session)}
    shared: dict = {}
    messages = []
    for delivery in rows:
        delivery.recipient = delivery.guardian.email
        delivery.message_id = make_msgid(domain=settings.EMAIL_MESSAGE_ID_DOMAIN)
        claimed = dispatch.Claimed(
            delivery=delivery, session=session, guardian=delivery.guardian,
            pupils=[pupils[pk] for pk in delivery.pupil_ids], shared=shared,
            withdraw_link=f"{settings.SITE_URL}/p/{'x' * 43}/",
        )
        # As Django's SMTP backend serialises it.
        data = invitation_email(claimed).message().as_bytes(linesep="\r\n")
        messages.append((delivery.recipient, data))
    return messages


# ---------------------------------------------------------------------------------------------------
# The two runs


def run_baseline(port: int, messages: list[tuple[str, bytes]]) -> float:
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=settings.EMAIL_TIMEOUT) as smtp:
        for recipient, data in messages:
            smtp.sendmail(settings.DEFAULT_FROM_EMAIL, [recipient], data)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invitations", type=int, default=10_000)
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the real path to FILE")
    args = parser.parse_args()

    stamp = timezone.now().strftime("%Y%m%d%H%M%S%f")
    started = time.perf_counter()
    staff = Staff(stamp)
    group = build_registry(staff, args.invitations, stamp)
    session = due_session(staff, group)
    built = time.perf_counter()

    # The planner hands its new rows to the broker in batches of SEND_BATCH_SIZE: here they are kept,
    # and sent in this process in the same batches.
    handed: list[list[int]] = []
    dispatch.deliveries_dispatch = lambda ids: handed.extend(
        list(ids[i : i + dispatch.SEND_BATCH_SIZE]) for i in range(0, len(ids), dispatch.SEND_BATCH_SIZE))
    plan = dispatch.deliveries_plan()
    planned = time.perf_counter()
    assert plan.created == args.invitations, plan

    sink = Sink()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    try:
        messages = baseline_messages(session)
        baseline_seconds = run_baseline(sink.port, messages)
        assert sink.count == len(messages), (sink.count, len(messages))
        size = sum(len(data) for _, data in messages) / len(messages)

        # The first batch split in two of other sizes, untimed, every query captured; then the rest timed,
        # each batch's queries counted.
        captured = []
        for part in (handed[0][:50], handed[0][50:]):
            with CaptureQueriesContext(connection) as queries:
                result = dispatch.delivery_send_batch(part)
            captured.append((len(result.sent), len(queries)))
        first = len(handed[0])
        sent, per_batch = sum(n for n, _ in captured), []
        counter = QueryCounter()
        profile = None
        if args.profile:
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        timed_started = time.perf_counter()
        with connection.execute_wrapper(counter):
            for batch in handed[1:]:
                before = counter.count
                result = dispatch.delivery_send_batch(batch)
                sent += len(result.sent)
                per_batch.append((counter.count - before, len(result.sent), len(batch)))
        real_seconds = time.perf_counter() - timed_started
        if profile is not None:
            profile.disable()
            profile.dump_stats(args.profile)
        assert sent == args.invitations, (sent, args.invitations)
        assert sink.count == 2 * args.invitations, sink.count
    finally:
        sink.stop()

    timed_messages = sent - first
    baseline_rate = len(messages) / baseline_seconds
    real_rate = timed_messages / real_seconds
    timed = sorted({queries for queries, _, _ in per_batch})
    sizes = sorted({size for *_, size in per_batch})
    print(f"database            {connection.vendor}")
    print(f"invitations         {args.invitations:,} to {args.invitations:,} guardians, one session; "
          f"{size / 1024:.1f} KB a message")
    print(f"set-up              registry and session {built - started:.1f} s; planner {planned - built:.1f} s "
          f"({len(handed)} batches of ≤{dispatch.SEND_BATCH_SIZE})")
    print(f"bare smtplib loop   {len(messages):,} in {baseline_seconds:.2f} s = {baseline_rate:,.0f} messages/s")
    print(f"delivery_send_batch {timed_messages:,} in {real_seconds:.2f} s = {real_rate:,.0f} messages/s "
          f"(after {first} untimed, their queries captured)")
    print(f"ratio               {real_rate / baseline_rate:.2f} (goal ≥ 0.5):",
          "met" if real_rate / baseline_rate >= 0.5 else "NOT met")
    print(f"queries per batch   {', '.join(f'{q} for a batch of {n}' for n, q in captured)}; "
          f"{' or '.join(map(str, timed))} for each of the {len(per_batch)} timed batches of "
          f"{'/'.join(map(str, sizes))}")
    backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    note = "" if "Redis" in backend else " (NOT Redis, as production has: set CACHE_URL=redis://…)"
    print(f"cache               {backend}: a progress mark written before each claim and after each message "
          f"sent, deleted at the batch's end{note}")


if __name__ == "__main__":
    main()
