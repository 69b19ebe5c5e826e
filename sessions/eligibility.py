"""Who is invited: one rule for the planner, the claim, the roster and the re-sends, read in a constant
number of queries for many sessions at once.

A guardian with parental responsibility, not erased or restricted, with exactly one valid email address,
of a current pupil (not left, not erased) who is in the session's groups or hand-picked; the guardian's
own consent for the session's purpose is active (given, and not waiting for a renewal whose deadline has
passed), and no other guardian of the child has refused or withdrawn (the purpose's rule: a "no" wins). A
guardian who has not answered gets no link, even when the other parent consented: invitations go only to
consenting parents.
"""

import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from consent.models import ConsentState, ConsentStatus, Group, Guardian, Guardianship, Notice, Pupil
from outbox.services import check_address

from .models import VideoSession


class Carer(NamedTuple):
    """A guardian of a pupil as eligibility reads them: a row of values, not two model instances (a
    batch reads hundreds). Has what `guardian_may_receive` asks of a guardian."""

    guardian_id: int
    parental_responsibility: bool
    archived_at: datetime | None
    processing_restricted_at: datetime | None
    email: str


@dataclass
class Registry:
    """What eligibility needs about a set of pupils, read in bulk (see `read_registry`)."""

    pupils: dict[int, Pupil] = field(default_factory=dict)  # current pupils only
    carers: dict[int, list[Carer]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[tuple[int, int, int], tuple[str, bool, int]] = field(default_factory=dict)
    lapse_versions: dict[int, int] = field(default_factory=dict)


def _lapse_versions(purpose_ids: Iterable[int], now: datetime) -> dict[int, int]:
    """Per purpose, the newest material notice version whose renewal deadline has passed (in the
    organisation's time zone): a consent given on an older version and flagged for renewal is no longer
    active, even before the hourly `consent_lapse` task has recorded the lapse. One query."""
    versions: dict[int, int] = {}
    for notice in Notice.objects.filter(
        purpose_id__in=list(purpose_ids), material_change=True, published_at__isnull=False,
        renewal_deadline__isnull=False,
    ).select_related("purpose__organisation"):
        if notice.renewal_deadline < now.astimezone(zoneinfo.ZoneInfo(notice.purpose.organisation.time_zone)).date():
            versions[notice.purpose_id] = max(versions.get(notice.purpose_id, 0), notice.version)
    return versions


def read_registry(pupil_ids: Iterable[int], purpose_ids: Iterable[int], now: datetime) -> Registry:
    """Four queries, however many pupils and guardians."""
    pupil_ids, purpose_ids = sorted(set(pupil_ids)), sorted(set(purpose_ids))
    registry = Registry()
    registry.pupils = {
        p.pk: p for p in Pupil.objects.filter(pk__in=pupil_ids, left_on__isnull=True, archived_at__isnull=True)
        .only("pk", "first_name", "school_id")
    }
    for pupil_id, *carer in Guardianship.objects.filter(pupil_id__in=list(registry.pupils)).values_list(
            "pupil_id", "guardian_id", "parental_responsibility", "guardian__archived_at",
            "guardian__processing_restricted_at", "guardian__email"):
        registry.carers[pupil_id].append(Carer(*carer))
    for guardian_id, pupil_id, purpose_id, state, renewal_needed, version in ConsentStatus.objects.filter(
        pupil_id__in=list(registry.pupils), purpose_id__in=purpose_ids
    ).values_list("guardian_id", "pupil_id", "purpose_id", "state", "renewal_needed", "last_event__notice_version"):
        registry.statuses[(guardian_id, pupil_id, purpose_id)] = (state, renewal_needed, version or 0)
    registry.lapse_versions = _lapse_versions(purpose_ids, now)
    return registry


def consent_active(registry: Registry, guardian_id: int, pupil_id: int, purpose_id: int) -> bool:
    """This guardian's own consent for the child is active: given, and not waiting for a renewal whose deadline
    has passed. (Public for `sessions.coverage`, which says why a child may not attend.)"""
    state, renewal_needed, version = registry.statuses.get((guardian_id, pupil_id, purpose_id), ("none", False, 0))
    if state != ConsentState.GIVEN:
        return False
    return not (renewal_needed and version < registry.lapse_versions.get(purpose_id, 0))


def guardian_may_receive(guardian: Guardian | Carer) -> bool:
    return (guardian.archived_at is None and guardian.processing_restricted_at is None
            and _one_address(guardian.email))


def _one_address(email: str) -> bool:
    """Exactly one valid address, as the outbox requires: a row edited to "a@x, b@y" (or with a line break)
    must never reach a backend that would read it as two recipients."""
    try:
        return bool(email) and check_address(email) == email
    except ValueError:
        return False


def eligible_children(registry: Registry, pupil_ids: Iterable[int], purpose_id: int) -> dict[int, list[int]]:
    """guardian id → the children (of `pupil_ids`) for whom that guardian is to be invited."""
    result: dict[int, list[int]] = defaultdict(list)
    for pupil_id in sorted(set(pupil_ids)):
        if pupil_id not in registry.pupils:
            continue  # left or erased
        carers = [c for c in registry.carers.get(pupil_id, []) if c.archived_at is None]
        # The purpose's rule: a refusal or withdrawal by any (unerased) guardian wins.
        if any(registry.statuses.get((c.guardian_id, pupil_id, purpose_id), ("none",))[0]
               in (ConsentState.REFUSED, ConsentState.WITHDRAWN) for c in carers):
            continue
        for g in carers:
            if (g.parental_responsibility and guardian_may_receive(g)
                    and consent_active(registry, g.guardian_id, pupil_id, purpose_id)):
                result[g.guardian_id].append(pupil_id)
    return result


def session_pupils(session_ids: Sequence[int], only_pupils: Iterable[int] | None = None) -> dict[int, set[int]]:
    """session id → pupils in its groups or hand-picked. Two queries."""
    found: dict[int, set[int]] = defaultdict(set)
    through = Group.pupils.through.objects.filter(group__video_sessions__in=session_ids)
    picked = VideoSession.pupils.through.objects.filter(videosession_id__in=session_ids)
    if only_pupils is not None:
        through, picked = through.filter(pupil_id__in=list(only_pupils)), picked.filter(pupil_id__in=list(only_pupils))
    for session_id, pupil_id in through.values_list("group__video_sessions", "pupil_id"):
        found[session_id].add(pupil_id)
    for session_id, pupil_id in picked.values_list("videosession_id", "pupil_id"):
        found[session_id].add(pupil_id)
    return found
