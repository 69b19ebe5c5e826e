import factory
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from consent.models import Group, Guardian, Guardianship, Notice, Pupil, Purpose
from schools.models import Membership, Organisation, Role, School

PASSWORD = "correct horse battery staple"
# Hashing once per hasher keeps the suite fast; the hasher itself is tested on its own.
_PASSWORD_HASHES: dict[str, str] = {}


def _password_hash() -> str:
    hasher = settings.PASSWORD_HASHERS[0]
    if hasher not in _PASSWORD_HASHES:
        _PASSWORD_HASHES[hasher] = make_password(PASSWORD)
    return _PASSWORD_HASHES[hasher]


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Federation {n}")
    slug = factory.Sequence(lambda n: f"federation-{n}")


class SchoolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = School

    organisation = factory.SubFactory(OrganisationFactory)
    name = factory.Sequence(lambda n: f"School {n}")
    slug = factory.Sequence(lambda n: f"school-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}@example.org")
    email = factory.SelfAttribute("username")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.LazyFunction(_password_hash)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    role = Role.TEACHER
    school = factory.SubFactory(SchoolFactory)
    organisation = factory.LazyAttribute(lambda m: m.school.organisation if m.school else OrganisationFactory())


class TOTPDeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TOTPDevice

    user = factory.SubFactory(UserFactory)
    name = "Authenticator app"
    confirmed = True


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group

    school = factory.SubFactory(SchoolFactory)
    name = factory.Sequence(lambda n: f"Class {n}")


class PupilFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Pupil

    school = factory.SubFactory(SchoolFactory)
    mis_id = factory.Sequence(lambda n: f"P{n:05d}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")


class GuardianFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Guardian

    school = factory.SubFactory(SchoolFactory)
    mis_id = factory.Sequence(lambda n: f"G{n:05d}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.Sequence(lambda n: f"parent{n}@example.net")


class GuardianshipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Guardianship

    guardian = factory.SubFactory(GuardianFactory)
    pupil = factory.SubFactory(PupilFactory, school=factory.SelfAttribute("..guardian.school"))
    relationship = Guardianship.Relationship.MOTHER


class PurposeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Purpose

    organisation = factory.SubFactory(OrganisationFactory)
    name = "Live video lessons scheduled by the school"
    slug = factory.Sequence(lambda n: f"live-video-lessons-{n}")


class NoticeFactory(factory.django.DjangoModelFactory):
    """A draft: publish it with `consent.services.notice_publish`."""

    class Meta:
        model = Notice

    purpose = factory.SubFactory(PurposeFactory)
    letter = "Dear parent or carer, the school would like to run live video lessons."
    protocol = "The teacher admits pupils from a waiting room; the meeting has a password."
    privacy_notice = "The school is the data controller. Contact the DPO at dpo@example.org."
