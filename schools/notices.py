"""Notices for the daily digest: what a service records, where something happens, for a person to hear of.

A `DigestItem` is one notice for one person. The service that makes the change adds it in its own
transaction (`digest_items_add`), either as news for the next digest, or as already told when it emailed the
person at once (an incident, a lesson within 24 hours that cannot go ahead). `schools.digest` reads the
pending items when the person's digest is due. This module sits low on the ladder (it needs only the schools
models), so that sessions, PIAs and risk assessments can all record notices without importing the digest.

Who keeps what: news is kept for everyone it concerns, whether or not they take the digest, because it may
still have to be told at once later (a lesson that cannot go ahead comes within 24 hours of its start; see
`sessions.changes`). An item already told is kept only for people who take the digest, the only place it
is shown again. Items and digests' records are deleted `KEEP_DAYS` after they were made, carried or not
(`digest_items_prune`): they are copies for one email, the audit trail is the record.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import Model, QuerySet
from django.utils import timezone

from .models import Digest, DigestItem

KEEP_DAYS = 60


def digest_items_add(*, users: Iterable, kind: str, school, related: Model, title: str, text: str = "",
                     path: str = "", told_at: datetime | None = None) -> list[DigestItem]:
    """One item per person (each once), inside the caller's transaction. `told_at`: the person was emailed
    about it at that time, so the digest says so instead of telling it as news."""
    people = {user.pk: user for user in users if user.is_active and user.email}
    if told_at is not None:
        people = {pk: user for pk, user in people.items() if user.daily_digest}
    now = timezone.now()
    items = [
        DigestItem(user=user, school=school, kind=kind, related_type=related._meta.label_lower,
                   related_id=str(related.pk), title=title[:300], text=text[:500], path=path[:300],
                   created_at=now, told_at=told_at)
        for user in people.values()
    ]
    return DigestItem.objects.bulk_create(items)


def digest_items_untold(*, kind: str, related_type: str, related_ids: Iterable) -> QuerySet:
    """Items about these objects that nobody has heard of yet: neither told at once nor carried by a digest."""
    return DigestItem.objects.filter(kind=kind, related_type=related_type,
                                     related_id__in=[str(pk) for pk in related_ids],
                                     told_at__isnull=True, digest__isnull=True)


def digest_items_prune(*, now: datetime) -> int:
    """Delete the items, and the digests' records, older than `KEEP_DAYS`. Returns how many items went."""
    cutoff = now - timedelta(days=KEEP_DAYS)
    deleted, _ = DigestItem.objects.filter(created_at__lt=cutoff).delete()
    Digest.objects.filter(created_at__lt=cutoff).delete()
    return deleted
