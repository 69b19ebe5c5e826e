"""Benchmark: the staff pages at scale (quality.md, "pages at scale").

Builds, in one database, two organisations:

- **small**: 1 school of 1,000 pupils;
- **large**: 50 schools of 2,000 pupils (100,000).

Each has guardians (one or two per pupil, ~1.5 on average), classes of about 30, year groups and a
whole-school group, consent events and status rows (given, refused, withdrawn, lapsed, renewal needed, no
answer), a few leavers, a published notice, a platform approved by a PIA signed through the services and an
approved risk assessment at every school (so gates are green), about a hundred lessons at the first school
and a few at every other over the next 14 days with their invitations (some failed), an audit entry per
consent event and a few parents' requests per school. The registry is written in bulk, as the services
would leave it; the staff, PIA and assessments go through the test suite's helpers (the development
dependencies).

Then, for each organisation, it requests each page with Django's test client (DEBUG off), signed in as
the test suite's `sign_in` does: a warm-up, then `--repeat` requests (default 7), and prints the median
time, the number of queries (one request, counted with `benchsetup.QueryCounter`) and the ratio large /
small. Goal: every ratio ≤ 3 and the same number of queries at both sizes.

Building takes a few minutes; `--reuse` keeps what an earlier run built (matched by the organisations'
slugs) and builds only what is missing. See bench/README.md.
"""

import argparse
import datetime as dt
import statistics
import time
from dataclasses import dataclass

from benchsetup import QueryCounter  # first: it sets Django up (and sorts before django)
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from consent.counts import counts_recount
from consent.models import (
    ConsentCounts,
    ConsentEvent,
    ConsentState,
    ConsentStatus,
    Group,
    Guardian,
    Guardianship,
    Notice,
    Pupil,
    Purpose,
    RightsRequest,
)
from pia.models import Platform
from schools.audit import GENESIS_HASH, _canonical
from schools.models import AuditEntry, Organisation, Role
from sessions.models import Delivery, VideoSession
from tests.conftest import sign_in
from tests.factories import MembershipFactory, OrganisationFactory, SchoolFactory, TOTPDeviceFactory, UserFactory
from tests.pia.pia_signed import signed_pia
from tests.riskassess.matrix_reviews import approved_assessment
from tests.sessions.emails_dispatch import current_notice
from tests.sessions.sessions_setup import ZOOM_URL

FIRST = ["Amelia", "Finlo", "Breesha", "Juan", "Ealish", "Orry", "Aalin", "Illiam", "Moirrey", "Tom", "Joan", "Ann"]
LAST = ["Quayle", "Kermode", "Kelly", "Corlett", "Cregeen", "Christian", "Moore", "Clague", "Kneale", "Teare"]
SIZES = {"small": (1, 1_000), "large": (50, 2_000), "one-school": (1, 100_000)}  # the last with --one-school
CLASS_SIZE = 30
YEARS = 7
LESSONS_FIRST_SCHOOL = 100
LESSONS_OTHER_SCHOOLS = 4
BATCH = 5_000
GOAL = 3.0

Kind = ConsentEvent.Kind


# ---------------------------------------------------------------------------------------------------
# The people


@dataclass
class Org:
    """What the test suite's helpers need of the personas, and who the pages are requested as."""

    label: str
    organisation: Organisation
    schools: list
    headteacher: User  # the executive head: headteacher at every school (the whole-organisation controller)
    head: User  # headteacher of the first school only
    teacher: User
    office: User
    dpo: User
    siro: User
    hosts: list  # a teacher per school, hosting its lessons (the first school's is `teacher`)

    @property
    def school(self):
        return self.schools[0]


def _username(label: str, name: str) -> str:
    return f"bench-pages-{label}-{name}@example.org"


def _staff(label: str, name: str, role: str, schools=(), organisation=None, two_factor: bool = False) -> User:
    user = UserFactory(username=_username(label, name))
    for school in schools:
        MembershipFactory(user=user, role=role, school=school, organisation=school.organisation)
    if organisation is not None:
        MembershipFactory(user=user, role=role, school=None, organisation=organisation)
    if two_factor:
        TOTPDeviceFactory(user=user)
    return user


def load(label: str) -> Org | None:
    organisation = Organisation.objects.filter(slug=f"bench-pages-{label}").first()
    if organisation is None:
        return None
    schools = list(organisation.schools.order_by("name"))
    users = {u.username: u for u in User.objects.filter(username__startswith=f"bench-pages-{label}-")}

    def user(name: str) -> User:
        return users[_username(label, name)]

    return Org(label, organisation, schools, user("executive-head"), user("head"), user("teacher"),
               user("office"), user("dpo"), user("siro"),
               [user("teacher")] + [user(f"teacher-{i}") for i in range(1, len(schools))])


def build_people(label: str, school_count: int) -> Org:
    organisation = OrganisationFactory(name=f"Bench pages {label}", slug=f"bench-pages-{label}")
    schools = [SchoolFactory(organisation=organisation, name=f"{label.title()} school {i:02d}",
                             slug=f"bench-pages-{label}-{i:02d}") for i in range(school_count)]
    teacher = _staff(label, "teacher", Role.TEACHER, schools[:1])
    return Org(
        label, organisation, schools,
        headteacher=_staff(label, "executive-head", Role.HEADTEACHER, schools, two_factor=True),
        head=_staff(label, "head", Role.HEADTEACHER, schools[:1], two_factor=True),
        teacher=teacher,
        office=_staff(label, "office", Role.OFFICE, schools[:1]),
        dpo=_staff(label, "dpo", Role.DPO, organisation=organisation, two_factor=True),
        siro=_staff(label, "siro", Role.SIRO, organisation=organisation, two_factor=True),
        hosts=[teacher] + [_staff(label, f"teacher-{i}", Role.TEACHER, [s]) for i, s in enumerate(schools) if i],
    )


def green_gates(org: Org) -> Platform:
    """A platform approved by a whole-organisation PIA signed through the services, and an approved
    video-lessons risk assessment at every school."""
    version = signed_pia(org, organisation_wide=True, title="Zoom PIA")
    platform = Platform.objects.create(organisation=org.organisation, name="Zoom", kind=Platform.Kind.ZOOM,
                                       pia=version.pia)
    for school in org.schools:
        approved_assessment(school, org.headteacher)
    return platform


# ---------------------------------------------------------------------------------------------------
# The registry, in bulk


# Per pupil, by its number modulo 20: what its guardians decided (55 % given, 10 % refused, 5 % withdrawn,
# 5 % lapsed, 5 % renewal needed, 20 % no answer).
def _outcome(i: int) -> str:
    r = i % 20
    return ("given" if r <= 10 else "refused" if r <= 12 else "withdrawn" if r == 13 else "lapsed" if r == 14
            else "renewal" if r == 15 else "none")


EVENTS = {"given": [Kind.GIVEN], "refused": [Kind.REFUSED], "withdrawn": [Kind.GIVEN, Kind.WITHDRAWN],
          "lapsed": [Kind.GIVEN, Kind.LAPSED], "renewal": [Kind.GIVEN], "none": []}


def build_school(org: Org, school, pupil_count: int, notice: Notice) -> None:
    """Pupils, guardians, groups, consent events and status rows of one school."""
    prefix = f"S{school.pk}-"
    today = timezone.localdate()
    whole = Group.objects.create(school=school, name="Whole school", kind=Group.Kind.WHOLE_SCHOOL)
    years = Group.objects.bulk_create([Group(school=school, name=f"Year {y + 1}", kind=Group.Kind.YEAR)
                                       for y in range(YEARS)])
    classes = Group.objects.bulk_create([Group(school=school, name=f"Class {c + 1:03d}", kind=Group.Kind.CLASS)
                                         for c in range((pupil_count + CLASS_SIZE - 1) // CLASS_SIZE)])
    pupils = Pupil.objects.bulk_create([
        Pupil(school=school, mis_id=f"{prefix}P{i:06d}", first_name=FIRST[i % len(FIRST)],
              last_name=LAST[(i // len(FIRST)) % len(LAST)], year_group=str(i * YEARS // pupil_count + 1),
              left_on=today - dt.timedelta(days=30) if i % 100 == 99 else None)
        for i in range(pupil_count)
    ], batch_size=BATCH)
    # Every pupil has a first guardian; every other pupil a second, one in five of them without parental
    # responsibility.
    firsts = Guardian.objects.bulk_create([
        Guardian(school=school, mis_id=f"{prefix}G{i:06d}", first_name=FIRST[(i + 3) % len(FIRST)],
                 last_name=p.last_name, email=f"parent{i}.{school.pk}@example.net") for i, p in enumerate(pupils)
    ], batch_size=BATCH)
    seconds = Guardian.objects.bulk_create([
        Guardian(school=school, mis_id=f"{prefix}H{i:06d}", first_name=FIRST[(i + 5) % len(FIRST)],
                 last_name=p.last_name, email=f"carer{i}.{school.pk}@example.net")
        for i, p in enumerate(pupils) if i % 2 == 0
    ], batch_size=BATCH)
    second_of = dict(zip(range(0, pupil_count, 2), seconds, strict=True))
    links = [Guardianship(guardian=g, pupil=p, relationship=Guardianship.Relationship.MOTHER)
             for g, p in zip(firsts, pupils, strict=True)]
    links += [Guardianship(guardian=g, pupil=pupils[i], relationship=Guardianship.Relationship.FATHER,
                           parental_responsibility=i % 10 != 0) for i, g in second_of.items()]
    Guardianship.objects.bulk_create(links, batch_size=BATCH)
    through = Group.pupils.through
    members = []
    for i, pupil in enumerate(pupils):
        members += [through(group=whole, pupil=pupil), through(group=years[i * YEARS // pupil_count], pupil=pupil),
                    through(group=classes[i // CLASS_SIZE], pupil=pupil)]
    through.objects.bulk_create(members, batch_size=BATCH)

    # Events as the services leave them: the first guardian decides; where the pupil has two guardians
    # with responsibility and the first gave, the second gave too every other time.
    deciders = []
    for i, pupil in enumerate(pupils):
        outcome = _outcome(i)
        deciders.append((firsts[i], pupil, outcome))
        if outcome == "given" and i in second_of and i % 10 != 0 and i % 4 == 0:
            deciders.append((second_of[i], pupil, outcome))
    events = []
    for guardian, pupil, outcome in deciders:
        for kind in EVENTS[outcome]:
            events.append(ConsentEvent(
                guardian=guardian, pupil=pupil, purpose=notice.purpose, kind=kind, notice=notice,
                notice_version=notice.version, notice_sha256=notice.sha256, attestation=kind == Kind.GIVEN,
                channel=ConsentEvent.Channel.SYSTEM if kind == Kind.LAPSED else ConsentEvent.Channel.PARENT_LINK))
    events = ConsentEvent.objects.bulk_create(events, batch_size=BATCH)
    last = {(e.guardian_id, e.pupil_id): e for e in events}  # in order: the last event of each pair wins
    ConsentStatus.objects.bulk_create([
        ConsentStatus(guardian_id=g, pupil_id=p, purpose=notice.purpose,
                      state={Kind.GIVEN: ConsentState.GIVEN, Kind.REFUSED: ConsentState.REFUSED,
                             Kind.WITHDRAWN: ConsentState.WITHDRAWN, Kind.LAPSED: ConsentState.LAPSED}[e.kind],
                      last_event=e)
        for (g, p), e in last.items()
    ], batch_size=BATCH)
    renewal_pupils = [p.pk for i, p in enumerate(pupils) if _outcome(i) == "renewal"]
    ConsentStatus.objects.filter(pupil_id__in=renewal_pupils, purpose=notice.purpose).update(renewal_needed=True)
    RightsRequest.objects.bulk_create([
        RightsRequest(school=school, guardian=firsts[i], guardian_label=str(firsts[i]), pupil=pupils[i],
                      kind=RightsRequest.Kind.ACCESS, due_on=today + dt.timedelta(days=3 + 5 * i))
        for i in range(3)
    ])
    _audit_entries(org, school, events)


def _audit_entries(org: Org, school, events: list[ConsentEvent]) -> None:
    """One entry per consent event, chained onto the trail as `audit_log` would (in bulk)."""
    last = AuditEntry.objects.order_by("-seq").values_list("seq", "hash").first()
    seq, prev_hash = last if last else (0, GENESIS_HASH)
    now = timezone.now()
    entries = []
    for event in events:
        seq += 1
        entry = AuditEntry(
            seq=seq, created_at=now, actor_kind=AuditEntry.ActorKind.GUARDIAN, actor_id=event.guardian_id,
            actor_label=f"Parent or carer #{event.guardian_id}", action=f"consent.{event.kind}",
            object_type="consent.consentevent", object_id=str(event.pk), object_repr=event.audit_repr(),
            organisation_id=org.organisation.pk, school_id=school.pk,
            data=_canonical({"kind": event.kind, "pupil_id": event.pupil_id}), prev_hash=prev_hash)
        entry.hash = entry.compute_hash()
        prev_hash = entry.hash
        entries.append(entry)
    AuditEntry.objects.bulk_create(entries, batch_size=BATCH)


def build_lessons(org: Org, platform: Platform, notice: Notice) -> None:
    """Lessons over the next 14 days, each for one class, with an invitation per guardian who consented
    (sent, waiting or, one in thirty, failed)."""
    now = timezone.now()
    sessions, classes = [], []
    for index, (school, host) in enumerate(zip(org.schools, org.hosts, strict=True)):
        school_classes = list(Group.objects.filter(school=school, kind=Group.Kind.CLASS).order_by("name"))
        count = LESSONS_FIRST_SCHOOL if index == 0 else LESSONS_OTHER_SCHOOLS
        for n in range(count):
            starts_at = now + dt.timedelta(hours=2 + n * 14 * 24 / count)
            sessions.append(VideoSession(
                school=school, purpose=notice.purpose, title=f"Lesson {n + 1}", host=host, platform=platform,
                meeting_url=ZOOM_URL, meeting_id="812 3456 7890", starts_at=starts_at, duration_minutes=30,
                send_at=starts_at - dt.timedelta(minutes=60), created_by=host))
            classes.append(school_classes[n % len(school_classes)])
    sessions = VideoSession.objects.bulk_create(sessions, batch_size=BATCH)
    VideoSession.groups.through.objects.bulk_create([
        VideoSession.groups.through(videosession=s, group=g) for s, g in zip(sessions, classes, strict=True)])
    consenting = {}
    for group_id, guardian_id in (ConsentStatus.objects.filter(
            purpose=notice.purpose, state=ConsentState.GIVEN, pupil__groups__in=set(classes))
            .values_list("pupil__groups", "guardian_id")):
        consenting.setdefault(group_id, []).append(guardian_id)
    deliveries = []
    for session, group in zip(sessions, classes, strict=True):
        for n, guardian_id in enumerate(consenting.get(group.pk, [])):
            status = Delivery.Status.FAILED if n % 30 == 7 else Delivery.Status.PENDING
            deliveries.append(Delivery(session=session, guardian_id=guardian_id, status=status,
                                       reason="550 mailbox unavailable" if status == Delivery.Status.FAILED else ""))
    Delivery.objects.bulk_create(deliveries, batch_size=BATCH)


def build(label: str) -> Org:
    school_count, pupil_count = SIZES[label]
    started = time.perf_counter()
    with transaction.atomic():
        org = build_people(label, school_count)
        notice = current_notice(org.school)
        platform = green_gates(org)
        for school in org.schools:
            build_school(org, school, pupil_count, notice)
        build_lessons(org, platform, notice)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    print(f"built {label}: {school_count} × {pupil_count:,} pupils in {time.perf_counter() - started:.0f} s")
    return org


# ---------------------------------------------------------------------------------------------------
# The pages


def pages(org: Org) -> list[tuple[str, User, str]]:
    dashboard = reverse("schools:dashboard")
    return [
        ("home: head of one school", org.head, dashboard),
        ("home: executive head", org.headteacher, dashboard),
        ("home: teacher", org.teacher, dashboard),
        ("home: office", org.office, dashboard),
        ("home: DPO", org.dpo, dashboard),
        ("pupil list (head)", org.head, reverse("consent:pupils", args=[org.school.pk])),
        ("sessions list (head)", org.head, reverse("video_sessions:list")),
        ("audit page (head)", org.head, reverse("schools:audit")),
        ("audit page (DPO)", org.dpo, reverse("schools:audit")),
    ]


def measure(user: User, url: str, repeat: int) -> tuple[float, int]:
    """The median of `repeat` requests after one warm-up, in ms, and the queries of one request."""
    client = Client()
    sign_in(client, user)
    response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"{url} as {user.username} answered {response.status_code}")
    counter = QueryCounter()
    with connection.execute_wrapper(counter):
        client.get(url)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), counter.count


def table(results: dict[str, list], label: str, repeat: int) -> None:
    schools, pupils = SIZES[label]
    print(f"\ndatabase {connection.vendor}; median of {repeat} requests after a warm-up, DEBUG off; "
          f"small: {SIZES['small'][0]} × {SIZES['small'][1]:,} pupils, {label}: {schools} × {pupils:,}")
    print(f"{'page':<28} {'small ms':>9} {label + ' ms':>14} {'ratio':>6} {'queries':>9}  "
          f"goal (≤ {GOAL:g}×, same queries)")
    for (name, small_ms, small_q), (_, big_ms, big_q) in zip(results["small"], results[label], strict=True):
        ratio = big_ms / small_ms
        met = ratio <= GOAL and small_q == big_q
        print(f"{name:<28} {small_ms:>9.1f} {big_ms:>14.1f} {ratio:>6.2f} {f'{small_q}/{big_q}':>9}  "
              f"{'met' if met else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reuse", action="store_true", help="keep organisations an earlier run built")
    parser.add_argument("--repeat", type=int, default=7, help="timed requests per page (default 7)")
    parser.add_argument("--only", metavar="WORDS", default="", help="only the pages whose name contains WORDS")
    parser.add_argument("--one-school", action="store_true", help="also one school of 100,000 pupils")
    args = parser.parse_args()
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]

    orgs = {}
    for label in SIZES:
        if label == "one-school" and not args.one_school:
            continue
        found = load(label)
        if found is not None and not args.reuse:
            raise SystemExit(f"organisation bench-pages-{label} already exists: pass --reuse, or use a fresh database")
        orgs[label] = found or build(label)
        if not ConsentCounts.objects.filter(school__organisation=orgs[label].organisation).exists():
            # The registry was written in bulk, around the services that keep the counts (consent.counts).
            with transaction.atomic():
                counts_recount(school_ids=[s.pk for s in orgs[label].schools],
                               purpose=Purpose.objects.filter(organisation=orgs[label].organisation).get())

    # Each page at every size one after the other, so that a change in the machine's load between pages
    # does not land on one size only.
    results: dict[str, list] = {label: [] for label in orgs}
    for index, (name, *_) in enumerate(pages(orgs["small"])):
        if args.only in name:
            for label, org in orgs.items():
                _, user, url = pages(org)[index]
                results[label].append((name, *measure(user, url, args.repeat)))
    for label in orgs:
        if label != "small":
            table(results, label, args.repeat)


if __name__ == "__main__":
    main()
