from django.conf import settings

from .models import Role
from .scope import scope_for


def gatehouse(request):
    """What every page's layout needs: the demo flag and the navigation the user's roles allow."""
    scope = scope_for(request) if hasattr(request, "user") else None
    roles = scope.roles if scope else frozenset()
    return {
        "DEMO_MODE": settings.DEMO_MODE,
        "nav": {
            "audit": bool(roles & {Role.HEADTEACHER, Role.DPO, Role.SIRO, Role.ORG_ADMIN}),
            "outbox": bool(roles & {Role.HEADTEACHER, Role.OFFICE, Role.ORG_ADMIN}),
            "demo_mailbox": settings.DEMO_MODE and bool(roles),
        },
        "staff_roles": roles,
    }
