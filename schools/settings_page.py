"""The organisation's own settings that its admin changes on a page of Gatehouse, not in Django's admin:
the share of children with consent below which scheduling a lesson asks for a confirmation, and the hour of
the daily digest."""

from django.core.exceptions import PermissionDenied
from django.db import transaction

from .audit import audit_log
from .models import Organisation, Role
from .scope import build_scope

SETTINGS_ROLES = frozenset({Role.ORG_ADMIN})
FIELDS = ("coverage_warning_percent", "digest_hour")


def may_change_settings(scope, organisation_id: int) -> bool:
    return bool(scope.roles_by_organisation.get(organisation_id, frozenset()) & SETTINGS_ROLES)


def organisation_settings_save(*, organisation: Organisation, actor, coverage_warning_percent: int,
                               digest_hour: int) -> list[str]:
    """Save the settings; returns the names of those that changed (audited with their old and new values)."""
    with transaction.atomic():
        if not may_change_settings(build_scope(actor), organisation.pk):
            raise PermissionDenied("Only the organisation admin changes the organisation's settings.")
        organisation = Organisation.objects.select_for_update().get(pk=organisation.pk)
        wanted = {"coverage_warning_percent": coverage_warning_percent, "digest_hour": digest_hour}
        changed = [name for name in FIELDS if getattr(organisation, name) != wanted[name]]
        if not changed:
            return []
        before = {name: getattr(organisation, name) for name in changed}
        for name in changed:
            setattr(organisation, name, wanted[name])
        organisation.save(update_fields=changed)
        audit_log(actor=actor, action="organisation.settings_changed", obj=organisation, organisation=organisation,
                  data={"before": before, "after": {name: wanted[name] for name in changed}})
    return changed
