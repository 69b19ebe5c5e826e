import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import RequestFactory

from consent.models import Group
from schools.models import Role
from schools.scope import build_scope, scoped_get_or_404, user_requires_two_factor
from tests.factories import GroupFactory, MembershipFactory, SchoolFactory, UserFactory

pytestmark = pytest.mark.django_db


def _request(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


def test_school_roles_see_only_their_school(personas):
    scope = build_scope(personas.teacher)
    assert scope.school_ids == {personas.school.pk}
    assert scope.roles_at_school(personas.school.pk) == {Role.TEACHER}


def test_organisation_roles_see_every_school_of_their_organisation(personas):
    sister = SchoolFactory(organisation=personas.organisation)
    scope = build_scope(personas.dpo)
    assert scope.school_ids == {personas.school.pk, sister.pk}
    assert personas.other_school.pk not in scope.school_ids
    assert scope.roles_at_school(sister.pk) == {Role.DPO}


def test_another_schools_object_is_not_found_rather_than_forbidden(personas):
    theirs = GroupFactory(school=personas.other_school)
    with pytest.raises(Http404):
        scoped_get_or_404(_request(personas.teacher), Group, pk=theirs.pk)
    with pytest.raises(Http404):
        scoped_get_or_404(_request(personas.dpo), Group, pk=theirs.pk)


def test_an_object_in_scope_with_too_low_a_role_is_forbidden(personas):
    ours = GroupFactory(school=personas.school)
    with pytest.raises(PermissionDenied):
        scoped_get_or_404(_request(personas.teacher), Group, roles={Role.HEADTEACHER}, pk=ours.pk)
    assert scoped_get_or_404(_request(personas.headteacher), Group, roles={Role.HEADTEACHER}, pk=ours.pk) == ours


def test_organisation_wide_objects_are_seen_through_the_organisation(personas):
    """A membership row belongs to the organisation; an org-wide role reaches it, another org's does not."""
    from schools.models import Membership

    membership = Membership.objects.get(user=personas.siro)
    found = scoped_get_or_404(_request(personas.dpo), Membership, school_path="school",
                              organisation_path="organisation", pk=membership.pk)
    assert found == membership
    with pytest.raises(Http404):
        scoped_get_or_404(_request(personas.other_teacher), Membership, school_path="school",
                          organisation_path="organisation", pk=membership.pk)


def test_a_user_without_memberships_sees_nothing(db):
    stranger = UserFactory()
    scope = build_scope(stranger)
    assert scope.school_ids == frozenset() and scope.roles == frozenset()


@pytest.mark.parametrize(
    ("role", "required"),
    [(Role.HEADTEACHER, True), (Role.DPO, True), (Role.SIRO, True), (Role.ORG_ADMIN, True),
     (Role.TEACHER, False), (Role.OFFICE, False)],
)
def test_second_factor_is_required_for_signing_and_admin_roles(db, role, required):
    school = SchoolFactory()
    user = UserFactory()
    if role in (Role.DPO, Role.SIRO, Role.ORG_ADMIN):
        MembershipFactory(user=user, role=role, school=None, organisation=school.organisation)
    else:
        MembershipFactory(user=user, role=role, school=school)
    assert user_requires_two_factor(user) is required
