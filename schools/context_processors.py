from django.conf import settings

from .models import Role
from .scope import scope_for, user_requires_two_factor


def gatehouse(request):
    """What every page's layout needs: the demo flag and the navigation the user's roles allow."""
    user = getattr(request, "user", None)
    signed_in = bool(user is not None and user.is_authenticated)
    # Past the password but not yet past the second factor: the only way on is the code page.
    show_navigation = signed_in and not _second_factor_pending(request)
    roles = scope_for(request).roles if show_navigation else frozenset()
    return {
        "DEMO_MODE": settings.DEMO_MODE,
        "show_navigation": show_navigation,
        "nav": {
            "audit": bool(roles & {Role.HEADTEACHER, Role.DPO, Role.SIRO, Role.ORG_ADMIN}),
            # Every member of staff reads the notices parents are asked to agree to.
            "notices": bool(roles),
            # Everyone reads the risk register; the headteacher writes and approves.
            "risks": bool(roles),
            # Everyone reads the PIAs (teachers only signed ones); the headteacher and the office author them.
            "pia": bool(roles),
            # Everyone reads the sessions of their schools; teachers, office and the headteacher schedule.
            "sessions": bool(roles),
            "rights": bool(roles & {Role.HEADTEACHER, Role.OFFICE, Role.DPO, Role.ORG_ADMIN}),
            "retention": bool(roles & {Role.HEADTEACHER, Role.DPO, Role.SIRO, Role.ORG_ADMIN}),
            # The incidents log: the headteacher, and those who follow the organisation's (sessions.incidents).
            "incidents": bool(roles & {Role.HEADTEACHER, Role.DPO, Role.SIRO, Role.ORG_ADMIN}),
            "outbox": bool(roles & {Role.HEADTEACHER, Role.OFFICE, Role.ORG_ADMIN}),
            "demo_mailbox": settings.DEMO_MODE and bool(roles),
        },
        "staff_roles": roles,
        "needs_you_count": _needs_you_count(request) if show_navigation and roles else 0,
    }


def _needs_you_count(request) -> int:
    """The home page has the list already; every other page asks for the count alone (one query)."""
    from .home import needs_you_count

    items = getattr(request, "_needs_you", None)
    return len(items) if items is not None else needs_you_count(request.user, scope_for(request))


def _second_factor_pending(request) -> bool:
    from accounts.services import user_has_second_factor

    if request.user.is_verified():
        return False
    known = getattr(request, "second_factor_pending", None)  # set by TwoFactorRequiredMiddleware
    if known is not None:
        return known
    return user_has_second_factor(request.user) or user_requires_two_factor(request.user)
