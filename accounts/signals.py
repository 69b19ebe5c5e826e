"""django-axes announces a lockout only by signal, so the audit entry for it is written here."""

from axes.signals import user_locked_out
from django.dispatch import receiver

from schools.audit import Actor
from schools.models import AuditEntry

from .services import ATTEMPTED_USERNAME_MAX, auth_audit, user_named


@receiver(user_locked_out, dispatch_uid="accounts.audit_lockout")
def audit_lockout(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    attempted = (username or "")[:ATTEMPTED_USERNAME_MAX]
    auth_audit(
        actor=Actor(kind=AuditEntry.ActorKind.SYSTEM, label=f"Sign-in attempts as “{attempted}”"),
        action="auth.locked_out",
        user=user_named(attempted),
        data={"username": attempted, "ip_address": ip_address},
    )
