"""Create the seed documents' federation as demo data. Safe to run again: nothing is duplicated.

Dhoon and Laxey Federation: Laxey School (195 pupils) and Dhoon School (77 pupils), a class per year
group and a whole-school group in each, families of one to three children with one or two guardians,
and one member of staff for every role. Staff passwords are reset to the demo password on every run;
second-factor backup codes are re-issued and printed.
"""

import base64
import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from accounts.services import backup_codes_generate
from consent import notice_template
from consent.models import (
    ConsentEvent,
    ConsentRequest,
    Group,
    Guardian,
    Guardianship,
    Notice,
    Pupil,
    Purpose,
    RightsRequest,
)
from consent.requests import consent_requests_send
from consent.rights import rights_request_create
from consent.services import consent_record_by_staff, notice_publish
from schools.audit import audit_log
from schools.models import TWO_FACTOR_ROLES, Membership, Organisation, Role, School

# Printed in the README: the demo only runs with GATEHOUSE_DEMO on (see handle()).
DEMO_PASSWORD = "gatehouse-demo"  # noqa: S105
YEAR_GROUPS = ["Reception", "Year 1", "Year 2", "Year 3", "Year 4", "Year 5", "Year 6"]
SCHOOLS = [("laxey", "Laxey School", 195), ("dhoon", "Dhoon School", 77)]

FIRST_NAMES = [
    "Amelia", "Oliver", "Isla", "George", "Ava", "Noah", "Mia", "Arthur", "Ivy", "Leo", "Freya", "Oscar",
    "Lily", "Harry", "Florence", "Charlie", "Grace", "Jack", "Evie", "Theo", "Poppy", "Finley", "Ella",
    "Alfie", "Sophia", "Archie", "Rosie", "Henry", "Willow", "Thomas", "Elsie", "Jacob", "Sienna", "Louis",
    "Maisie", "Ethan", "Phoebe", "Rory", "Orla", "Callum", "Niamh", "Fionn", "Aoife", "Euan", "Cara",
]
ADULT_FIRST_NAMES = [
    "Sarah", "James", "Emma", "David", "Claire", "Paul", "Rachel", "Mark", "Laura", "Andrew", "Kate",
    "Stephen", "Helen", "Michael", "Joanne", "Chris", "Nicola", "Gareth", "Louise", "Neil", "Fiona", "Ian",
]
LAST_NAMES = [
    "Quayle", "Kermode", "Corlett", "Kinvig", "Cregeen", "Christian", "Moore", "Kewley", "Cain", "Clague",
    "Faragher", "Gelling", "Kelly", "Quirk", "Skillicorn", "Teare", "Watterson", "Callister", "Costain",
    "Crellin", "Cowley", "Karran", "Mylchreest", "Radcliffe", "Shimmin", "Sayle", "Looney", "Kneale",
    "Corkill", "Brew", "Duggan", "Fargher", "Halsall", "Killey", "Lewin", "Moughtin", "Qualtrough",
]


@dataclass(frozen=True)
class DemoStaff:
    username: str
    first_name: str
    last_name: str
    role: str
    schools: tuple[str, ...] = ()  # school slugs for school roles; empty for organisation roles


STAFF = [
    DemoStaff("head", "Michael", "Kelly", Role.HEADTEACHER, ("laxey", "dhoon")),
    DemoStaff("teacher", "Joanne", "Quine", Role.TEACHER, ("laxey",)),
    DemoStaff("office", "Helen", "Corkish", Role.OFFICE, ("laxey",)),
    DemoStaff("teacher.dhoon", "Gareth", "Kinrade", Role.TEACHER, ("dhoon",)),
    DemoStaff("dpo", "Fiona", "Crowe", Role.DPO),
    DemoStaff("siro", "Neil", "Cannell", Role.SIRO),
    DemoStaff("orgadmin", "Louise", "Moore", Role.ORG_ADMIN),
]
STAFF_EMAIL_DOMAIN = "federation.example"


def demo_totp_key(username: str) -> str:
    """A fixed authenticator secret per demo user, so re-running the command keeps their app working."""
    return hashlib.sha256(f"gatehouse-demo-totp:{username}".encode()).hexdigest()[:40]


class Command(BaseCommand):
    help = "Create (or top up) the Dhoon and Laxey Federation demo data and print the staff logins."

    def handle(self, *args, **options):
        if not settings.DEMO_MODE:
            raise CommandError("seed_demo sets well-known passwords: it runs only with GATEHOUSE_DEMO on.")
        with transaction.atomic():
            organisation, created = Organisation.objects.get_or_create(
                slug="dhoon-laxey",
                defaults={"name": "Dhoon and Laxey Federation", "kind": Organisation.Kind.FEDERATION},
            )
            schools = {}
            for slug, name, pupil_count in SCHOOLS:
                school, _ = School.objects.get_or_create(
                    organisation=organisation,
                    slug=slug,
                    defaults={"name": name, "contact_email": f"enquiries@{slug}.example"},
                )
                schools[slug] = school
                self._registry(school, pupil_count)
            logins = [self._staff(member, organisation, schools) for member in STAFF]
            notice = self._notice(organisation)
            office = User.objects.get(username="office")
            self._replies(schools["laxey"], notice, office=office)
            self._requests(schools["laxey"], notice, office=office)
            self._governance(organisation, office=office)
            self._sessions(schools["laxey"])
            if created:
                audit_log(actor=None, action="demo.seeded", obj=organisation,
                          data={"schools": [s.name for s in schools.values()]})
        self._print(organisation, schools, logins)

    def _registry(self, school: School, pupil_count: int) -> None:
        rng = random.Random(f"gatehouse-demo:{school.slug}")  # the same people on every run
        groups = {}
        for year in YEAR_GROUPS:
            groups[year], _ = Group.objects.get_or_create(
                school=school, name=year, defaults={"kind": Group.Kind.CLASS, "mis_id": f"{school.slug}-{year}"}
            )
        whole_school, _ = Group.objects.get_or_create(
            school=school, name="Whole school", defaults={"kind": Group.Kind.WHOLE_SCHOOL}
        )
        existing_pupils = set(Pupil.objects.filter(school=school).values_list("mis_id", flat=True))
        existing_guardians = set(Guardian.objects.filter(school=school).values_list("mis_id", flat=True))
        prefix = school.slug[0].upper()
        pupils, guardians, links, family = [], [], [], 0
        while len(pupils) < pupil_count:
            family += 1
            last_name = rng.choice(LAST_NAMES)
            children = min(rng.choice([1, 1, 1, 1, 2, 2, 3]), pupil_count - len(pupils))
            adults = rng.choice([1, 2, 2])
            family_pupils = []
            for first_name in rng.sample(FIRST_NAMES, children):  # siblings have different names
                year = rng.choice(YEAR_GROUPS)
                family_pupils.append(Pupil(
                    school=school, mis_id=f"{prefix}P{len(pupils) + 1:04d}", first_name=first_name,
                    last_name=last_name, year_group=year,
                ))
                pupils.append(family_pupils[-1])
            for adult in range(adults):
                # The list alternates women's and men's names: a mother gets one of the first, a father the second.
                first_name = rng.choice(ADULT_FIRST_NAMES[adult % 2::2])
                guardian = Guardian(
                    school=school, mis_id=f"{prefix}G{family:04d}-{adult + 1}", first_name=first_name,
                    last_name=last_name,
                    email=f"{first_name}.{last_name}.{prefix}{family}@parents.example".lower(),
                )
                guardians.append(guardian)
                relationship = [Guardianship.Relationship.MOTHER, Guardianship.Relationship.FATHER][adult % 2]
                if rng.random() < 0.08:
                    relationship = Guardianship.Relationship.CARER
                links.extend((guardian.mis_id, pupil.mis_id, relationship) for pupil in family_pupils)
        Pupil.objects.bulk_create([p for p in pupils if p.mis_id not in existing_pupils])
        Guardian.objects.bulk_create([g for g in guardians if g.mis_id not in existing_guardians])
        pupil_ids = dict(Pupil.objects.filter(school=school).values_list("mis_id", "id"))
        guardian_ids = dict(Guardian.objects.filter(school=school).values_list("mis_id", "id"))
        Guardianship.objects.bulk_create(
            [
                Guardianship(guardian_id=guardian_ids[g], pupil_id=pupil_ids[p], relationship=rel,
                             parental_responsibility=True)
                for g, p, rel in links
            ],
            ignore_conflicts=True,
        )
        memberships = []
        for pupil in pupils:
            memberships.append(Group.pupils.through(group_id=groups[pupil.year_group].pk,
                                                    pupil_id=pupil_ids[pupil.mis_id]))
            memberships.append(Group.pupils.through(group_id=whole_school.pk, pupil_id=pupil_ids[pupil.mis_id]))
        Group.pupils.through.objects.bulk_create(memberships, ignore_conflicts=True)

    def _staff(self, member: DemoStaff, organisation: Organisation, schools: dict[str, School]) -> dict:
        email = f"{member.username}@{STAFF_EMAIL_DOMAIN}"
        user, _ = User.objects.get_or_create(
            username=member.username,
            defaults={"email": email, "first_name": member.first_name, "last_name": member.last_name},
        )
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
        if member.schools:
            for slug in member.schools:
                Membership.objects.get_or_create(
                    user=user, role=member.role, school=schools[slug], defaults={"organisation": organisation}
                )
        else:
            Membership.objects.get_or_create(user=user, role=member.role, school=None, organisation=organisation)
        login = {"username": member.username, "role": Role(member.role).label,
                 "where": ", ".join(schools[s].name for s in member.schools) or organisation.name}
        if member.role in TWO_FACTOR_ROLES:
            key = demo_totp_key(member.username)
            TOTPDevice.objects.update_or_create(
                user=user, name="Demo authenticator", defaults={"key": key, "confirmed": True}
            )
            login["totp_secret"] = base64.b32encode(bytes.fromhex(key)).decode()
            login["backup_codes"] = backup_codes_generate(user=user, actor=None)
        return login

    def _notice(self, organisation: Organisation) -> Notice:
        """The seed letter, protocol and privacy notice, published as version 1."""
        purpose, _ = Purpose.objects.get_or_create(
            organisation=organisation, slug=notice_template.PURPOSE_SLUG,
            defaults={"name": notice_template.PURPOSE_NAME},
        )
        current = purpose.current_notice()
        if current is not None:
            return current
        draft = Notice.objects.create(
            purpose=purpose, letter=notice_template.LETTER, protocol=notice_template.PROTOCOL,
            privacy_notice=notice_template.PRIVACY_NOTICE,
        )
        return notice_publish(notice=draft, actor=None, material_change=False)

    def _replies(self, school: School, notice: Notice, *, office: User) -> None:
        """As in the seed: a few parents replied "I agree" by email and the office recorded it. Each
        recording queues a confirmation email carrying the parent's personal link (demo mailbox)."""
        if ConsentEvent.objects.filter(pupil__school=school).exists():
            return
        guardianships = (
            Guardianship.objects.filter(pupil__school=school, parental_responsibility=True)
            .select_related("guardian", "pupil").order_by("pupil__mis_id")[:12]
        )
        today = timezone.localdate()
        for index, link in enumerate(guardianships):
            consent_record_by_staff(
                staff=office, guardian=link.guardian, pupil=link.pupil, notice=notice,
                kind=ConsentEvent.Kind.REFUSED if index % 4 == 3 else ConsentEvent.Kind.GIVEN,
                channel=ConsentEvent.Channel.EMAIL_REPLY, received_on=today, attestation=True,
                note="Demo: reply to the letter recorded by the office.",
            )

    def _requests(self, school: School, notice: Notice, *, office: User) -> None:
        """The office has emailed the Year 3 parents who had not answered (the requests page and the demo
        mailbox show them), and one parent has asked for a correction from their link."""
        if ConsentRequest.objects.filter(guardian__school=school).exists():
            return
        year_3 = Group.objects.get(school=school, name="Year 3")
        consent_requests_send(school=school, purpose=notice.purpose, group=year_3, actor=office)
        guardian = Guardian.objects.filter(school=school, pupils__groups=year_3).order_by("mis_id").first()
        rights_request_create(
            guardian=guardian, kind=RightsRequest.Kind.CORRECTION, purpose=notice.purpose,
            details="Demo: my daughter's year group is wrong, she is in Year 3, not Year 2.",
        )

    def _governance(self, organisation: Organisation, *, office: User) -> None:
        """The federation's paperwork, through the real services: the video-lessons risk assessment
        approved by the executive headteacher; the Zoom PIA signed by the DPO, the headteacher and the SIRO,
        with Zoom registered as the platform it approves; and its second version waiting for the DPO."""
        from pia import editing as pia_editing
        from pia import services as pia_services
        from pia.models import Pia
        from pia.platforms import platform_save
        from pia.seed_template import SCREENING
        from riskassess import services as risk_services
        from riskassess.models import Assessment

        head, dpo, siro = (User.objects.get(username=name) for name in ("head", "dpo", "siro"))
        today = timezone.localdate()
        if not Assessment.objects.filter(organisation=organisation, topic=Assessment.Topic.VIDEO_LESSONS).exists():
            assessment = risk_services.assessment_create_from_template(
                school=None, organisation=organisation, actor=head, assessor_name=head.get_full_name(),
                assessed_on=today, review_on=today.replace(year=today.year + 1),
            )
            version = assessment.versions.get()
            risk_services.version_submit(version=version, actor=head)
            risk_services.version_approve(version=version, actor=head)
        if Pia.objects.filter(organisation=organisation, title="Zoom").exists():
            return
        version = pia_editing.pia_create(organisation=organisation, school=None, actor=office, title="Zoom",
                                         from_template=True, screening=SCREENING)
        pia_editing.pia_step_save(version=version, actor=office, step="details",
                                  data={"review_on": today.replace(year=today.year + 1)})
        pia_services.version_submit(version=version, actor=office)
        pia_services.version_advise(version=version, actor=dpo, advice=(
            "The risks are identified and the solutions proportionate. Keep the privacy notice in step with "
            "the platform's own notice."))
        pia_services.version_decide(version=version, actor=head, accept=True)
        signed = pia_services.version_sign(version=version, actor=siro)
        platform_save(organisation=organisation, actor=head, name="Zoom", kind="zoom", pia=signed.pia)
        draft = pia_services.version_revise(pia=signed.pia, actor=office)
        pia_editing.pia_step_save(version=draft, actor=office, step="flows", data={
            "deletion": "Recordings are never made. Data held by the school about the sessions is deleted in "
                        "the August following a pupil's leaving school, if not before."})
        pia_services.version_submit(version=draft, actor=office)

    def _sessions(self, school: School) -> None:
        """Live lessons scheduled by the teacher through the real service (the gate is green): one tomorrow
        morning, a weekly series, and one starting about 70 minutes from now with the default hour's lead,
        whose invitations the worker sends about ten minutes after `bin/demo` starts, to the consenting
        parents only, into the demo mailbox. All for the Laxey class with the most consenting families, which
        also has families who refused or have not answered. A run adds only what is not still ahead."""
        from consent.models import ConsentStatus
        from pia.models import Platform
        from sessions.models import VideoSession
        from sessions.services import session_schedule

        teacher = User.objects.get(username="teacher")
        platform = Platform.objects.get(organisation=school.organisation, name="Zoom")
        consenting = set(ConsentStatus.objects.filter(pupil__school=school, state="given")
                         .values_list("pupil_id", flat=True))
        groups = Group.objects.filter(school=school, name__in=YEAR_GROUPS).prefetch_related("pupils")
        group = max(groups, key=lambda g: (len(consenting & {p.pk for p in g.pupils.all()}), g.name))
        now = timezone.now()
        tomorrow = timezone.localdate(now, school.tz) + timedelta(days=1)
        next_week = tomorrow + timedelta(days=(2 - tomorrow.weekday()) % 7)  # the next Wednesday after today
        soon = (now + timedelta(minutes=71)).replace(second=0, microsecond=0)
        plans = [
            (f"{group.name} story time", datetime.combine(tomorrow, time(9, 0)), None),
            (f"{group.name} weekly check-in", datetime.combine(next_week, time(14, 0)),
             next_week + timedelta(weeks=3)),
            (f"{group.name} phonics catch-up", soon, None),
        ]
        for title, starts_at, until in plans:
            if VideoSession.objects.filter(school=school, title=title, status=VideoSession.Status.SCHEDULED,
                                           starts_at__gt=now).exists():
                continue
            number = str(random.Random(title).randrange(8 * 10**9, 9 * 10**9))  # a Zoom-like 10-digit ID
            session_schedule(
                school=school, actor=teacher, title=title, host=teacher, platform=platform, groups=[group],
                meeting_url=f"https://us02web.zoom.us/j/{number}",
                meeting_id=f"{number[:3]} {number[3:6]} {number[6:]}", password="", starts_at=starts_at,
                duration_minutes=30,
                lead_minutes=VideoSession.LEAD_MINUTES_DEFAULT, repeat_weekly_until=until,
            )
        next_up = VideoSession.objects.filter(school=school, title=plans[-1][0], starts_at__gt=now).earliest(
            "starts_at")
        self.session_note = (f"Live lessons for {group.name} at {school.name}: the invitations to \"{next_up.title}\" "
                             f"go to the consenting parents at "
                             f"{timezone.localtime(next_up.send_at, school.tz):%H:%M} (see the demo mailbox).")

    def _print(self, organisation, schools, logins) -> None:
        out = self.stdout
        out.write(self.style.SUCCESS(f"Demo data ready: {organisation.name}"))
        if getattr(self, "session_note", ""):
            out.write(f"  {self.session_note}")
        for school in schools.values():
            out.write(f"  {school.name}: {school.pupils.count()} pupils, {school.guardians.count()} parents "
                      f"and carers, {school.groups.count()} groups")
        out.write("")
        out.write(f"Staff logins (password for all: {DEMO_PASSWORD}):")
        for login in logins:
            out.write(f"  {login['username']:<14} {login['role']} — {login['where']}")
            if "totp_secret" in login:
                out.write(f"  {'':<14} two-factor: add secret {login['totp_secret']} to an authenticator app,")
                out.write(f"  {'':<14} or use a backup code (each works once): {' '.join(login['backup_codes'][:5])}")
