"""The activity feed: audit entries told as sentences a school person reads.

The audit chain keeps ids only (`audit_repr`), so that erasing the registry leaves no name behind in it.
This module names pupils, parents and carers, sessions and documents from the LIVE record at display
time, and only when the reader's scope holds that record: an object outside the scope, deleted, or
archived by the retention schedule keeps the id-only text that was recorded. Names never come from the
chain itself.

One query per kind of object on the page (plus one for staff names and one for school names), however
many entries: `activity_rows` is meant for a page of entries, the audit page's 50 or the dashboard's 8.
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db.models import Model, Q, QuerySet
from django.urls import reverse

from outbox.kinds import email_kind

from .audit import action_label
from .models import AuditEntry, Organisation, Role, School
from .scope import StaffScope

# Who reads the audit trail beyond their own actions.
AUDIT_READERS = frozenset({Role.HEADTEACHER, Role.DPO, Role.SIRO, Role.ORG_ADMIN})


def audit_entries_for(scope: StaffScope) -> QuerySet:
    """The entries this scope may read. Headteachers see their schools' entries; organisation roles also
    see organisation-wide ones; everyone sees what they did themselves (e.g. their own sign-ins, filed
    organisation-wide when they work at several schools)."""
    readable_schools = scope.schools_where(AUDIT_READERS)
    org_ids = [oid for oid, roles in scope.roles_by_organisation.items() if roles & AUDIT_READERS]
    return AuditEntry.objects.filter(
        Q(school_id__in=readable_schools)
        | Q(school_id__isnull=True, organisation_id__in=org_ids)
        | Q(actor_kind=AuditEntry.ActorKind.STAFF, actor_id=scope.user_id)
    )


@dataclass(frozen=True)
class ActivityRow:
    """One entry, readable: `actor` `action` `subject`, at `place`, `when`; `url` opens the subject."""

    entry: AuditEntry
    when: datetime
    actor: str
    action: str
    subject: str
    url: str
    place: str

    @property
    def sentence(self) -> str:
        """"Helen Corkish recorded a consent decision …: Consent given: Aoife Corrigan by Sinéad Corrigan"."""
        return f"{self.actor} {self.action}" + (f": {self.subject}" if self.subject else "")


# --- Naming objects from the live record ------------------------------------------------------------------


def _erased(person) -> bool:
    """Archived by the retention schedule (or erased at the parent's request): no name is shown any more."""
    return person is None or person.archived_at is not None


def _pupil(pupil) -> str | None:
    return None if _erased(pupil) else str(pupil)


def _guardian(guardian) -> str | None:
    return None if _erased(guardian) or not str(guardian) else str(guardian)


def _both(text: Callable[[str, str], str], pupil, guardian) -> str | None:
    pupil_name, guardian_name = _pupil(pupil), _guardian(guardian)
    return text(pupil_name, guardian_name) if pupil_name and guardian_name else None


def _notice_url(notice) -> str:
    if notice.published_at is not None:
        return reverse("consent:notice", kwargs={"pk": notice.pk})
    return reverse("consent:notice-history", kwargs={"pk": notice.purpose_id})


@dataclass(frozen=True)
class _Kind:
    """How to load one kind of object through the scope, name it, and link to its page."""

    school_path: str | None = "school"
    organisation_path: str | None = None
    related: tuple[str, ...] = ()
    name: Callable[[Any], str | None] = str
    url: Callable[[Any], str] | None = None


def _page(name: str, attribute: str = "pk") -> Callable[[Any], str]:
    return lambda obj: reverse(name, kwargs={"pk": getattr(obj, attribute)})


KINDS: dict[str, _Kind] = {
    "consent.pupil": _Kind(name=_pupil, url=_page("consent:pupil")),
    "consent.guardian": _Kind(
        name=lambda g: (name := _guardian(g)) and f"{name} (parent or carer)", url=_page("consent:guardian")
    ),
    "consent.guardianship": _Kind(
        school_path="pupil__school", related=("pupil", "guardian"),
        name=lambda g: _both(lambda p, n: f"{n} (parent or carer of {p})", g.pupil, g.guardian),
        url=_page("consent:guardian", "guardian_id"),
    ),
    "consent.consentevent": _Kind(
        school_path="pupil__school", related=("pupil", "guardian"),
        name=lambda e: _both(lambda p, g: f"{e.get_kind_display()}: {p} by {g}", e.pupil, e.guardian),
        url=_page("consent:event"),
    ),
    "consent.consentstatus": _Kind(
        school_path="pupil__school", related=("pupil", "guardian"),
        name=lambda s: _both(lambda p, g: f"Consent of {p} by {g}", s.pupil, s.guardian),
        url=_page("consent:pupil", "pupil_id"),
    ),
    "consent.rightsrequest": _Kind(
        related=("guardian",),
        name=lambda r: (g := _guardian(r.guardian)) and f"{r.get_kind_display()} request #{r.pk} from {g}",
        url=_page("consent:rights-request"),
    ),
    "consent.importrun": _Kind(name=lambda r: f"Import of {r.filename}", url=_page("consent:import")),
    "consent.purpose": _Kind(school_path=None, organisation_path="organisation", url=_page("consent:notice-history")),
    "consent.notice": _Kind(school_path=None, organisation_path="purpose__organisation", related=("purpose",),
                            url=_notice_url),
    "video_sessions.videosession": _Kind(url=_page("video_sessions:session")),
    "video_sessions.delivery": _Kind(
        school_path="session__school", related=("session", "guardian"),
        name=lambda d: (g := _guardian(d.guardian)) and f"Invitation of {g} to “{d.session.title}”",
        url=_page("video_sessions:session", "session_id"),
    ),
    "video_sessions.attendance": _Kind(
        school_path="session__school", related=("session", "pupil"),
        name=lambda a: (p := _pupil(a.pupil)) and f"Attendance of {p} at “{a.session.title}”",
        url=_page("video_sessions:session", "session_id"),
    ),
    "video_sessions.incident": _Kind(
        school_path="session__school", related=("session",),
        name=lambda i: f"{i.get_kind_display()} in “{i.session.title}”",
        url=_page("video_sessions:session", "session_id"),
    ),
    "riskassess.assessment": _Kind(organisation_path="organisation", url=_page("riskassess:assessment")),
    "pia.pia": _Kind(organisation_path="organisation", url=_page("pia:pia")),
    "pia.platform": _Kind(school_path=None, organisation_path="organisation"),
    "outbox.outboxmessage": _Kind(
        organisation_path="organisation", name=lambda m: f"{m.kind_label} “{m.subject}”"
    ),
    "schools.school": _Kind(school_path="pk", url=_page("schools:school")),
    "schools.organisation": _Kind(school_path=None, organisation_path="pk"),
}

# The outbox's recorded text names the email's template ("Email #12 (session-gate-red)"): say what it is.
_RECORDED_EMAIL = re.compile(r"^Email #(\d+) \(([\w.-]+)\)$")


def _recorded_text(entry: AuditEntry) -> str:
    match = _RECORDED_EMAIL.match(entry.object_repr)
    if match:
        return f"{email_kind(match.group(2))} (email #{match.group(1)})"
    return entry.object_repr


@dataclass
class _Found:
    """The live objects of a page, by (object type, id)."""

    objects: dict[tuple[str, str], Model] = field(default_factory=dict)

    def get(self, object_type: str, object_id: Any) -> Model | None:
        return self.objects.get((object_type, str(object_id)))


def _ids_by_type(entries: Iterable[AuditEntry]) -> dict[str, set[int]]:
    wanted: dict[str, set[int]] = {}
    for entry in entries:
        if entry.object_type in KINDS and entry.object_id.isdigit():
            wanted.setdefault(entry.object_type, set()).add(int(entry.object_id))
        if entry.actor_kind == AuditEntry.ActorKind.GUARDIAN and entry.actor_id is not None:
            wanted.setdefault("consent.guardian", set()).add(entry.actor_id)
    return wanted


def _load(wanted: dict[str, set[int]], scope: StaffScope) -> _Found:
    """One query per kind, each through the reader's scope: what the scope does not hold is not found."""
    found = _Found()
    for object_type, ids in wanted.items():
        kind = KINDS[object_type]
        try:
            model = apps.get_model(object_type)
        except LookupError:
            continue
        queryset = model._default_manager.filter(pk__in=ids).select_related(*kind.related)
        queryset = scope.filter(queryset, school_path=kind.school_path, organisation_path=kind.organisation_path)
        for obj in queryset:
            found.objects[(object_type, str(obj.pk))] = obj
    return found


def _staff_names(entries: Iterable[AuditEntry]) -> dict[int, str]:
    """Staff are named by their current name (the recorded label adds their email address)."""
    ids = {e.actor_id for e in entries if e.actor_kind == AuditEntry.ActorKind.STAFF and e.actor_id is not None}
    ids |= {int(e.object_id) for e in entries if e.object_type == "accounts.user" and e.object_id.isdigit()}
    if not ids:
        return {}
    users = get_user_model()._default_manager.filter(pk__in=ids)
    return {user.pk: user.get_full_name() or user.get_username() for user in users}


def _actor(entry: AuditEntry, found: _Found, staff: dict[int, str]) -> str:
    if entry.actor_kind == AuditEntry.ActorKind.STAFF and entry.actor_id in staff:
        return staff[entry.actor_id]
    if entry.actor_kind == AuditEntry.ActorKind.GUARDIAN:
        name = _guardian(found.get("consent.guardian", entry.actor_id))
        if name:
            return f"{name} (parent or carer)"
    return entry.actor_label


def _subject(entry: AuditEntry, found: _Found, staff: dict[int, str]) -> tuple[str, str]:
    """(text, url) of what the entry is about: named from the live record when the scope holds it."""
    if not entry.object_type or entry.object_is_actor:
        return "", ""
    if entry.object_type == "accounts.user" and entry.object_id.isdigit():
        return staff.get(int(entry.object_id), entry.object_repr), ""
    kind = KINDS.get(entry.object_type)
    obj = found.get(entry.object_type, entry.object_id) if kind else None
    if obj is None:
        return _recorded_text(entry), ""
    name = kind.name(obj)
    if not name:  # erased: the recorded text says what it was, by number
        return _recorded_text(entry), ""
    return name, kind.url(obj) if kind.url else ""


def _places(entries: Iterable[AuditEntry], scope: StaffScope) -> tuple[dict[int, str], dict[int, str]]:
    school_ids = {e.school_id for e in entries if e.school_id is not None} & scope.school_ids
    org_ids = {e.organisation_id for e in entries if e.school_id is None and e.organisation_id is not None}
    org_ids &= scope.organisation_ids
    schools = dict(School.objects.filter(pk__in=school_ids).values_list("pk", "name")) if school_ids else {}
    organisations = (
        dict(Organisation.objects.filter(pk__in=org_ids).values_list("pk", "name")) if org_ids else {}
    )
    return schools, organisations


def activity_rows(entries: Iterable[AuditEntry], scope: StaffScope) -> list[ActivityRow]:
    """Readable rows for a page of audit entries, in the order given.

    `entries` are entries the reader may see (from `audit_entries_for(scope)`, sliced or paginated);
    `scope` is the reader's (`scope_for(request)`): pupils, parents, sessions and documents are named
    from the live record only inside it, and only while not erased; otherwise the recorded id-only text
    stays. Costs a constant number of queries whatever the number of entries.
    """
    entries = list(entries)
    found = _load(_ids_by_type(entries), scope)
    staff = _staff_names(entries)
    schools, organisations = _places(entries, scope)
    rows = []
    for entry in entries:
        subject, url = _subject(entry, found, staff)
        if entry.school_id is not None:
            place = schools.get(entry.school_id, "")
        else:
            place = organisations.get(entry.organisation_id, "")
        rows.append(ActivityRow(
            entry=entry, when=entry.created_at, actor=_actor(entry, found, staff),
            action=action_label(entry.action), subject=subject, url=url, place=place,
        ))
    return rows
