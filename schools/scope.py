"""Who may see what: the one place that turns a staff member's memberships into a scope.

Every view loads objects through `scoped_get_or_404` (or filters lists through `StaffScope.filter`):
an object outside the user's schools answers 404, so its existence never leaks; an object inside the
scope that the user's role may not act on answers 403.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from lib.refusal import Refused

from .models import ALL_ROLES, ORGANISATION_ROLES, TWO_FACTOR_ROLES, Membership, Role, School


@dataclass(frozen=True)
class StaffScope:
    """A staff member's memberships, resolved once per request."""

    user_id: int | None
    # school id -> roles the user holds there (directly, or through an organisation-wide role)
    roles_by_school: dict[int, frozenset[str]] = field(default_factory=dict)
    # organisation id -> organisation-wide roles the user holds there
    roles_by_organisation: dict[int, frozenset[str]] = field(default_factory=dict)
    # organisation id of every school in scope, and of every organisation role
    organisation_by_school: dict[int, int] = field(default_factory=dict)

    @property
    def school_ids(self) -> frozenset[int]:
        return frozenset(self.roles_by_school)

    @property
    def organisation_ids(self) -> frozenset[int]:
        return frozenset(self.organisation_by_school.values()) | frozenset(self.roles_by_organisation)

    @property
    def roles(self) -> frozenset[str]:
        found: set[str] = set()
        for roles in self.roles_by_school.values():
            found |= roles
        for roles in self.roles_by_organisation.values():
            found |= roles
        return frozenset(found)

    def has_any_role(self, roles: Iterable[str]) -> bool:
        return bool(self.roles & frozenset(roles))

    def roles_at_school(self, school_id: int) -> frozenset[str]:
        return self.roles_by_school.get(school_id, frozenset())

    def roles_in_organisation(self, organisation_id: int) -> frozenset[str]:
        """Roles held across the organisation or at any of its schools (for organisation-wide objects)."""
        held = set(self.roles_by_organisation.get(organisation_id, frozenset()))
        for school_id, org_id in self.organisation_by_school.items():
            if org_id == organisation_id:
                held |= self.roles_by_school[school_id]
        return frozenset(held)

    def roles_for_whole_organisation(self, organisation_id: int) -> frozenset[str]:
        """Roles to act on an organisation-wide object (approve a trust-wide assessment, decide on a
        federation's PIA): the organisation-wide roles, and a school role only when held at every school of
        the organisation (an executive headteacher), never the headteacher of one school among several.
        Reading stays with `roles_in_organisation`."""
        held = set(self.roles_by_organisation.get(organisation_id, frozenset()))
        school_ids = list(School.objects.filter(organisation_id=organisation_id).values_list("pk", flat=True))
        if school_ids:
            held |= frozenset.intersection(*(self.roles_at_school(pk) for pk in school_ids))
        return frozenset(held)

    def schools_where(self, roles: Iterable[str]) -> frozenset[int]:
        wanted = frozenset(roles)
        return frozenset(sid for sid, held in self.roles_by_school.items() if held & wanted)

    def filter(
        self,
        queryset: QuerySet,
        *,
        school_path: str | None = "school",
        organisation_path: str | None = None,
    ) -> QuerySet:
        """Restrict a queryset to what this scope may see.

        `school_path` names the lookup to the object's school; `organisation_path` the lookup to its
        organisation, for objects that belong to the organisation as a whole (a PIA, a platform). With
        both, an object matches through either.
        """
        if school_path and organisation_path:
            # School-level objects of my schools, and organisation-wide ones of my organisations.
            condition = Q(**{f"{school_path}__in": self.school_ids}) | Q(
                **{f"{school_path}__isnull": True, f"{organisation_path}__in": self.organisation_ids}
            )
        elif school_path:
            condition = Q(**{f"{school_path}__in": self.school_ids})
        elif organisation_path:
            condition = Q(**{f"{organisation_path}__in": self.organisation_ids})
        else:
            raise ValueError("StaffScope.filter needs school_path or organisation_path")
        return queryset.filter(condition)


ANONYMOUS_SCOPE = StaffScope(user_id=None)


def build_scope(user) -> StaffScope:
    if not getattr(user, "is_authenticated", False):
        return ANONYMOUS_SCOPE
    memberships = list(Membership.objects.filter(user=user).values_list("role", "school_id", "organisation_id"))
    org_roles: dict[int, set[str]] = {}
    school_roles: dict[int, set[str]] = {}
    org_of_school: dict[int, int] = {}
    for role, school_id, organisation_id in memberships:
        if school_id is None:
            org_roles.setdefault(organisation_id, set()).add(role)
        else:
            school_roles.setdefault(school_id, set()).add(role)
            org_of_school[school_id] = organisation_id
    if org_roles:
        for school_id, organisation_id in School.objects.filter(organisation_id__in=org_roles).values_list(
            "id", "organisation_id"
        ):
            school_roles.setdefault(school_id, set()).update(org_roles[organisation_id])
            org_of_school[school_id] = organisation_id
    return StaffScope(
        user_id=user.pk,
        roles_by_school={sid: frozenset(r) for sid, r in school_roles.items()},
        roles_by_organisation={oid: frozenset(r) for oid, r in org_roles.items()},
        organisation_by_school=org_of_school,
    )


def scope_for(request: HttpRequest) -> StaffScope:
    """The request user's scope, computed once per request."""
    scope = getattr(request, "_staff_scope", None)
    if scope is None or scope.user_id != getattr(request.user, "pk", None):
        scope = build_scope(request.user)
        request._staff_scope = scope
    return scope


def _resolve(obj: Model, path: str):
    for part in path.split("__"):
        obj = getattr(obj, part)
        if obj is None:
            return None
    return obj


def scoped_get_or_404(
    request: HttpRequest,
    queryset: QuerySet | type[Model],
    *,
    roles: Iterable[str] = ALL_ROLES,
    school_path: str | None = "school",
    organisation_path: str | None = None,
    **lookup,
):
    """Load one object through the user's scope: 404 outside it, 403 inside it without `roles`."""
    if isinstance(queryset, type):
        queryset = queryset._default_manager.all()
    scope = scope_for(request)
    obj = get_object_or_404(
        scope.filter(queryset, school_path=school_path, organisation_path=organisation_path), **lookup
    )
    wanted = frozenset(roles)
    held: frozenset[str] = frozenset()
    school = _resolve(obj, school_path) if school_path else None
    if school is not None:
        held = scope.roles_at_school(school if isinstance(school, int) else school.pk)
    elif organisation_path:
        organisation = _resolve(obj, organisation_path)
        if organisation is not None:
            org_id = organisation if isinstance(organisation, int) else organisation.pk
            held = scope.roles_in_organisation(org_id)
    if not held & wanted:
        raise PermissionDenied
    return obj


def get_school_or_404(request: HttpRequest, pk: int, *, roles: Iterable[str] = ALL_ROLES) -> School:
    scope = scope_for(request)
    school = get_object_or_404(School.objects.filter(pk__in=scope.school_ids), pk=pk)
    if not scope.roles_at_school(school.pk) & frozenset(roles):
        raise PermissionDenied
    return school


def staff_required(roles: Iterable[str] = ALL_ROLES, *, refusal: str = "") -> Callable:
    """Decorator for staff pages: signed in, and holding one of `roles` somewhere (403 otherwise, saying
    `refusal` when given: who the page is for, in plain words).

    Object-level checks still happen in `scoped_get_or_404`; this only keeps, say, a teacher off a
    page that lists headteacher-only material.
    """
    wanted = frozenset(roles)

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not scope_for(request).roles & wanted:
                raise Refused(refusal) if refusal else PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def user_requires_two_factor(user) -> bool:
    """Headteachers, DPOs, SIROs and organisation admins must use a second factor."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    return Membership.objects.filter(user=user, role__in=TWO_FACTOR_ROLES).exists()


__all__ = [
    "ORGANISATION_ROLES",
    "Role",
    "StaffScope",
    "build_scope",
    "get_school_or_404",
    "scope_for",
    "scoped_get_or_404",
    "staff_required",
    "user_requires_two_factor",
]
