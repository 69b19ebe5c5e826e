"""Parent links: personal, unguessable links bound to a guardian and a purpose (design.md, "Parent links").

The token is 256 random bits. Only its SHA-256 is stored, so a copy of the database opens no parent's
page; the full URL is built from `settings.SITE_URL`, never from the request's Host header, so a forged
Host cannot steer a link elsewhere. Every consent change emails a confirmation carrying a fresh link, so
the parent can always withdraw from their inbox (promise 5).
"""

import hashlib
import secrets

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from .models import ConsentEvent, Guardian, GuardianLink, Purpose

# token_urlsafe(32) gives 43 characters; anything much longer is not ours and is refused before hashing.
MAX_TOKEN_LENGTH = 100


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def guardian_link_issue(*, guardian: Guardian, purpose: Purpose) -> str:
    """A new personal link for this guardian and purpose; returns the full URL (the only copy of the token)."""
    token = secrets.token_urlsafe(32)
    GuardianLink.objects.create(guardian=guardian, purpose=purpose, token_sha256=token_hash(token))
    return settings.SITE_URL + reverse("parent:page", kwargs={"token": token})


def guardian_link_resolve(token: str) -> GuardianLink | None:
    """The live link for this token, or None. The lookup is by the token's hash, an indexed equality on a
    value the client cannot choose, so timing says nothing about stored tokens."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return (
        GuardianLink.objects.select_related("guardian__school__organisation", "purpose__organisation")
        # An erased guardian's links are deleted with them; the guardian check covers any made since.
        .filter(token_sha256=token_hash(token), revoked_at__isnull=True, guardian__archived_at__isnull=True)
        .first()
    )


def consent_confirmation_queue(*, event: ConsentEvent) -> None:
    """Email the guardian what was recorded, with a fresh link to withdraw. Call inside the decision's
    transaction: the message is recorded with it and sent after commit. No address, no email."""
    from outbox.services import email_queue

    guardian = event.guardian
    if not guardian.email:
        return
    school = event.pupil.school
    email_queue(
        template="consent-confirmation",
        to=guardian.email,
        school=school,
        related=event,
        context={
            "guardian": guardian,
            "pupil": event.pupil,
            "event": event,
            "decision": event.get_kind_display(),
            "recorded_at": timezone.localtime(event.created_at, school.tz),
            "link": guardian_link_issue(guardian=guardian, purpose=event.purpose),
        },
    )
