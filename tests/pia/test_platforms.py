"""Platforms and the gate: a platform is approved only while its PIA has a signed version within its review date."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from pia.models import PiaVersion, Platform
from pia.platforms import approved_platforms, platform_remove, platform_save, platform_status
from schools.models import AuditEntry
from tests.pia.matrix_outputs import other_signed_pia, sign_through_orm, signed_pia
from tests.pia.pia_setup import draft_pia

pytestmark = pytest.mark.django_db

Status = PiaVersion.Status


def _platform(organisation, pia=None, name="Zoom") -> Platform:
    return Platform.objects.create(organisation=organisation, name=name, kind=Platform.Kind.ZOOM, pia=pia)


def test_a_platform_whose_pia_is_signed_and_in_date_is_approved(personas):
    version = signed_pia(personas)
    status = platform_status(platform=_platform(personas.organisation, version.pia))
    assert status.ok and status.version == version and status.reasons == ()


def test_an_organisation_wide_signed_pia_approves_a_platform_too(personas):
    version = signed_pia(personas, school=None)
    assert platform_status(platform=_platform(personas.organisation, version.pia)).ok


def test_a_platform_without_a_pia_is_not_approved(personas):
    status = platform_status(platform=_platform(personas.organisation))
    assert not status.ok and status.version is None
    assert status.reasons == ("No PIA is attached to Zoom.",)


def test_a_draft_pia_does_not_approve_its_platform(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    status = platform_status(platform=_platform(personas.organisation, version.pia))
    assert not status.ok and status.version is None
    assert status.reasons == ("The PIA “Zoom” has no signed version yet: version 1 is draft.",)


@pytest.mark.parametrize("stage", [Status.SUBMITTED, Status.ADVISED, Status.DECIDED, Status.CHANGES_REQUESTED])
def test_a_pia_in_sign_off_does_not_approve_its_platform(personas, stage):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    PiaVersion.objects.filter(pk=version.pk).update(status=stage)
    status = platform_status(platform=_platform(personas.organisation, version.pia))
    assert not status.ok and "has no signed version yet" in status.reasons[0]


def test_a_pia_with_only_a_superseded_version_does_not_approve_its_platform(personas):
    version = signed_pia(personas)
    version.status = Status.SUPERSEDED
    version.save(update_fields=["status"])
    status = platform_status(platform=_platform(personas.organisation, version.pia))
    assert not status.ok and status.reasons == ("The PIA “Zoom” has no signed version.",)


def test_a_revision_in_progress_keeps_the_signed_version_approving(personas):
    from pia.services import version_revise

    version = signed_pia(personas)
    version_revise(pia=version.pia, actor=personas.office)
    status = platform_status(platform=_platform(personas.organisation, version.pia))
    assert status.ok and status.version == version


def test_a_pia_past_its_review_date_no_longer_approves_its_platform(personas):
    review_on = timezone.localdate() + dt.timedelta(days=10)
    version = signed_pia(personas, review_on=review_on)
    platform = _platform(personas.organisation, version.pia)
    with time_machine.travel(timezone.now() + dt.timedelta(days=10), tick=False):
        assert platform_status(platform=platform).ok  # the review day itself is still in date
    with time_machine.travel(timezone.now() + dt.timedelta(days=11), tick=False):
        status = platform_status(platform=platform)
    assert not status.ok and status.version == version
    assert status.reasons == (f"The PIA “Zoom” was due for review on {review_on:%-d %B %Y}.",)


def test_the_review_date_is_counted_in_the_schools_time_zone(personas):
    personas.school.time_zone = "Pacific/Auckland"
    personas.school.save()
    version = signed_pia(personas, review_on=dt.date(2027, 3, 1))
    platform = _platform(personas.organisation, version.pia)
    # 2 March 2027, 00:30 in Auckland is still 1 March in London and in UTC.
    with time_machine.travel(dt.datetime(2027, 3, 1, 11, 30, tzinfo=dt.UTC), tick=False):
        assert not platform_status(platform=platform).ok
    with time_machine.travel(dt.datetime(2027, 3, 1, 10, 30, tzinfo=dt.UTC), tick=False):
        assert platform_status(platform=platform).ok


def test_a_signed_pia_without_a_review_date_is_not_in_date(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    PiaVersion.objects.filter(pk=version.pk).update(review_on=None)
    version.refresh_from_db()
    version = sign_through_orm(version, dpo=personas.dpo, controller=personas.headteacher, siro=personas.siro)
    status = platform_status(platform=_platform(personas.organisation, version.pia))
    assert not status.ok
    assert status.reasons == ("The signed PIA “Zoom” (version 1) has no review date.",)


def test_a_signed_pia_whose_snapshot_no_longer_matches_its_hash_does_not_approve(personas):
    version = signed_pia(personas)
    tampered = {**version.snapshot, "aims": "Something else"}
    # A write past the model's guard (plain QuerySet.update), as only a direct database write could make.
    QuerySet.update(PiaVersion.objects.filter(pk=version.pk), snapshot=tampered)
    status = platform_status(platform=_platform(personas.organisation, version.pia))
    assert not status.ok and "was changed after it was signed" in status.reasons[0]


def test_another_organisations_pia_never_approves_a_platform(personas):
    theirs = other_signed_pia(personas)
    platform = _platform(personas.organisation, theirs.pia)  # only possible by writing the row directly
    status = platform_status(platform=platform)
    assert not status.ok and status.reasons == ("The PIA attached to Zoom belongs to another organisation.",)


def test_approved_platforms_lists_only_the_organisations_approved_ones(personas):
    ours = signed_pia(personas)
    draft = draft_pia(personas.organisation, personas.office, school=personas.school, title="Teams")
    zoom = _platform(personas.organisation, ours.pia)
    _platform(personas.organisation, draft.pia, name="Teams")
    _platform(personas.organisation, name="Jitsi")
    theirs = other_signed_pia(personas)
    _platform(personas.other_school.organisation, theirs.pia, name="Their Zoom")
    assert approved_platforms(organisation=personas.organisation) == [zoom]
    with time_machine.travel(timezone.now() + dt.timedelta(days=400), tick=False):
        assert approved_platforms(organisation=personas.organisation) == []


# --- The service ---------------------------------------------------------------------------------------------


def test_platform_save_refuses_another_organisations_pia(personas):
    theirs = other_signed_pia(personas)
    with pytest.raises(ValidationError) as error:
        platform_save(organisation=personas.organisation, actor=personas.org_admin, name="Zoom", kind="zoom",
                      pia=theirs.pia)
    assert "pia" in error.value.error_dict
    assert not Platform.objects.exists()


def test_platform_save_refuses_a_duplicate_name_and_people_who_do_not_manage_platforms(personas):
    platform_save(organisation=personas.organisation, actor=personas.headteacher, name="Zoom", kind="zoom", pia=None)
    with pytest.raises(ValidationError, match="already has a platform called"):
        platform_save(organisation=personas.organisation, actor=personas.org_admin, name=" zoom ", kind="zoom",
                      pia=None)
    for person in (personas.office, personas.teacher, personas.dpo, personas.siro, personas.other_headteacher):
        with pytest.raises(PermissionDenied):
            platform_save(organisation=personas.organisation, actor=person, name="Teams", kind="teams", pia=None)
    assert list(Platform.objects.values_list("name", flat=True)) == ["Zoom"]


def test_saving_and_removing_a_platform_are_audited(personas):
    version = signed_pia(personas)
    platform = platform_save(organisation=personas.organisation, actor=personas.org_admin, name="Zoom",
                             kind="zoom", pia=None)
    platform_save(organisation=personas.organisation, actor=personas.headteacher, platform=platform, name="Zoom",
                  kind="zoom", pia=version.pia)
    saved = list(AuditEntry.objects.filter(action="pia.platform_saved").order_by("seq"))
    assert [e.data["created"] for e in saved] == [True, False]
    assert saved[1].data["changed"] == ["pia_id"] and saved[1].data["pia_id"] == version.pia_id
    platform_remove(platform=platform, actor=personas.headteacher)
    assert not Platform.objects.exists()
    assert AuditEntry.objects.get(action="pia.platform_removed").data["name"] == "Zoom"


# --- The pages ----------------------------------------------------------------------------------------------


def test_the_platforms_page_shows_each_platforms_state_and_reasons(personas, client_for):
    version = signed_pia(personas)
    _platform(personas.organisation, version.pia)
    _platform(personas.organisation, name="Jitsi")
    page = client_for(personas.teacher).get(reverse("pia:platforms")).content.decode()
    assert "Zoom" in page and "Approved" in page
    assert "Jitsi" in page and "No PIA is attached to Jitsi." in page
    assert "Register a platform" not in page  # teachers read only


def test_a_headteacher_registers_a_platform_with_a_pia_of_the_organisation(personas, client_for):
    version = signed_pia(personas)
    client = client_for(personas.headteacher)
    url = reverse("pia:platform-new", args=[personas.organisation.pk])
    page = client.get(url).content.decode()
    assert f'value="{version.pia_id}"' in page
    response = client.post(url, {"name": "Zoom", "kind": "zoom", "pia": version.pia_id}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("pia:platforms")
    assert "Zoom is registered — approved" in response.content.decode()
    platform = Platform.objects.get()
    assert platform.pia == version.pia and platform.organisation == personas.organisation


def test_the_form_does_not_offer_another_organisations_pia(personas, client_for):
    theirs = other_signed_pia(personas)
    client = client_for(personas.org_admin)
    url = reverse("pia:platform-new", args=[personas.organisation.pk])
    assert f'value="{theirs.pia_id}"' not in client.get(url).content.decode()
    response = client.post(url, {"name": "Zoom", "kind": "zoom", "pia": theirs.pia_id})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Platform.objects.exists()


def test_a_duplicate_name_is_a_message_on_the_page_and_changes_nothing(personas, client_for):
    _platform(personas.organisation)
    response = client_for(personas.headteacher).post(
        reverse("pia:platform-new", args=[personas.organisation.pk]), {"name": "ZOOM", "kind": "zoom"})
    assert response.status_code == 200
    assert "already has a platform called" in response.content.decode()
    assert Platform.objects.count() == 1


def test_editing_and_removing_a_platform_from_its_pages(personas, client_for):
    version = signed_pia(personas)
    platform = _platform(personas.organisation)
    client = client_for(personas.org_admin)
    client.post(reverse("pia:platform-edit", args=[platform.pk]),
                {"name": "Zoom Pro", "kind": "zoom", "pia": version.pia_id})
    platform.refresh_from_db()
    assert (platform.name, platform.pia_id) == ("Zoom Pro", version.pia_id)
    response = client.post(reverse("pia:platform-remove", args=[platform.pk]), follow=True)
    assert "Zoom Pro is no longer on the list of platforms." in response.content.decode()
    assert not Platform.objects.exists()


def test_an_empty_platform_form_says_what_is_missing(personas, client_for):
    response = client_for(personas.headteacher).post(reverse("pia:platform-new", args=[personas.organisation.pk]),
                                                     {})
    assert response.status_code == 200 and "This field is required." in response.content.decode()
    assert not Platform.objects.exists()


def test_the_platforms_page_takes_as_many_queries_for_ten_platforms_as_for_one(personas, client_for):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for(personas.dpo)
    signed = signed_pia(personas)
    _platform(personas.organisation, signed.pia)
    with CaptureQueriesContext(connection) as one:
        client.get(reverse("pia:platforms"))
    for n in range(9):
        pia = signed.pia if n % 3 == 0 else draft_pia(personas.organisation, personas.office, title=f"P{n}").pia
        _platform(personas.organisation, pia if n % 3 != 2 else None, name=f"Platform {n}")
    with CaptureQueriesContext(connection) as ten:
        page = client.get(reverse("pia:platforms")).content.decode()
    assert page.count("Not approved") == 6
    assert len(ten) == len(one)


def _second_school_with_head(personas):
    from accounts.models import User  # noqa: F401  (the factories build users)
    from schools.models import Role
    from tests.factories import MembershipFactory, SchoolFactory, TOTPDeviceFactory, UserFactory

    dhoon = SchoolFactory(organisation=personas.organisation, name="Dhoon Test School", slug="dhoon")
    head = UserFactory()
    MembershipFactory(user=head, role=Role.HEADTEACHER, school=dhoon, organisation=personas.organisation)
    TOTPDeviceFactory(user=head)
    return dhoon, head


def test_a_schools_own_pia_approves_the_platform_for_that_school_only(personas):
    dhoon, _ = _second_school_with_head(personas)
    platform = _platform(personas.organisation, signed_pia(personas).pia)
    assert platform_status(platform=platform, school=personas.school).ok
    elsewhere = platform_status(platform=platform, school=dhoon)
    assert not elsewhere.ok
    assert elsewhere.reasons == (f"The PIA “Zoom” approving Zoom covers {personas.school.name} only, "
                                 f"not {dhoon.name}.",)
    assert approved_platforms(organisation=personas.organisation, school=dhoon) == []
    assert approved_platforms(organisation=personas.organisation, school=personas.school) == [platform]


def test_an_organisation_wide_pia_approves_the_platform_at_every_school(personas):
    # Signed while the headteacher still heads every school of the organisation (its data controller).
    platform = _platform(personas.organisation, signed_pia(personas, school=None).pia)
    dhoon, _ = _second_school_with_head(personas)
    assert platform_status(platform=platform, school=dhoon).ok
    assert platform_status(platform=platform, school=personas.school).ok


def test_a_headteacher_is_not_offered_nor_can_attach_another_schools_pia(personas, client_for):
    _dhoon, dhoon_head = _second_school_with_head(personas)
    laxey_pia = signed_pia(personas).pia
    url = reverse("pia:platform-new", args=[personas.organisation.pk])
    client = client_for(dhoon_head)
    assert f'value="{laxey_pia.pk}"' not in client.get(url).content.decode()
    response = client.post(url, {"name": "Zoom", "kind": "zoom", "pia": laxey_pia.pk})
    assert response.status_code == 200 and not Platform.objects.exists()
    with pytest.raises(ValidationError) as refused:
        platform_save(organisation=personas.organisation, actor=dhoon_head, name="Zoom", kind="zoom", pia=laxey_pia)
    assert refused.value.message_dict["pia"] == ["Choose a PIA of the whole organisation or of your own school."]
    assert not Platform.objects.exists()
