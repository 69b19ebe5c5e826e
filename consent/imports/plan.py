"""Plan an import against the registry, then apply the plan in one transaction.

`import_plan` reads the school's registry in a fixed handful of queries and says, per row and per
entity, what would be created, updated or left as it is (and, for a full import, which pupils would
be marked as left). It writes nothing, so the preview page can show it. The plan is plain data
(`to_dict` / `from_dict`) so it can be stored between the preview and the confirmation.

`import_apply` writes the plan all-or-nothing, in batches of bulk inserts and updates: the number of
queries grows with the number of batches, never with the number of rows.
"""

import datetime
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from consent.counts import counts_recount_school
from consent.models import Group, Guardian, GuardianLink, Guardianship, Pupil
from schools.audit import audit_log
from schools.models import School

from .reading import ContactRow, Roster, RowError, year_group_name

PUPIL_FIELDS = ("first_name", "last_name", "year_group")
GUARDIAN_FIELDS = ("first_name", "last_name", "email", "phone")
DEFAULT_BATCH_SIZE = 500

CREATE, UPDATE, UNCHANGED = "create", "update", "unchanged"


class ImportRefused(Exception):
    """The plan cannot be applied: it has errors, or the registry changed since it was made."""


@dataclass
class Changes:
    create: list[dict[str, Any]] = field(default_factory=list)
    update: list[dict[str, Any]] = field(default_factory=list)  # each with the row's "id"
    unchanged: int = 0


@dataclass
class ImportPlan:
    school_id: int
    full: bool
    format: str
    rows: int
    errors: list[RowError] = field(default_factory=list)
    # Per source row: [row number, pupil action, contact action or ""], for the preview.
    row_actions: list[list] = field(default_factory=list)
    groups: Changes = field(default_factory=Changes)
    pupils: Changes = field(default_factory=Changes)
    guardians: Changes = field(default_factory=Changes)
    links: Changes = field(default_factory=Changes)  # create: pupil_mis_id, guardian_mis_id, fields
    links_to_remove: list[int] = field(default_factory=list)
    memberships_to_add: list[list[str]] = field(default_factory=list)  # [group mis id, pupil mis id]
    memberships_to_remove: list[int] = field(default_factory=list)  # through-table ids
    leavers: list[int] = field(default_factory=list)  # pupil ids

    @property
    def has_errors(self) -> bool:
        return bool(self.errors)

    @property
    def changes_anything(self) -> bool:
        return any(self.counts()[key] for key in self.counts() if not key.endswith("unchanged") and key != "rows")

    def counts(self) -> dict[str, int]:
        counts = {"rows": self.rows}
        for name in ("groups", "pupils", "guardians", "links"):
            changes: Changes = getattr(self, name)
            counts |= {f"{name}_created": len(changes.create), f"{name}_updated": len(changes.update),
                       f"{name}_unchanged": changes.unchanged}
        counts |= {"links_removed": len(self.links_to_remove), "memberships_added": len(self.memberships_to_add),
                   "memberships_removed": len(self.memberships_to_remove), "pupils_left": len(self.leavers)}
        return counts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ImportPlan":
        data = dict(data)
        data["errors"] = [RowError(**error) for error in data["errors"]]
        for name in ("groups", "pupils", "guardians", "links"):
            data[name] = Changes(**data[name])
        return cls(**data)


def import_plan(*, school: School, rows: Roster | Iterable[ContactRow], full: bool) -> ImportPlan:
    """Compare the rows with the school's registry. Reads only; five queries whatever the size."""
    if isinstance(rows, Roster):
        fmt, errors, contact_rows = rows.format, list(rows.errors), rows.rows
    else:
        fmt, errors, contact_rows = "rows", [], list(rows)
    wanted = _consolidate(contact_rows, errors)
    plan = ImportPlan(school_id=school.pk, full=full, format=fmt, rows=len(contact_rows), errors=errors)

    existing_groups = list(Group.objects.filter(school=school).values("id", "name", "kind", "mis_id"))
    existing_pupils = {p["mis_id"]: p for p in Pupil.objects.filter(school=school).values(
        "id", "mis_id", "left_on", *PUPIL_FIELDS)}
    existing_guardians = {g["mis_id"]: g for g in Guardian.objects.filter(school=school).values(
        "id", "mis_id", *GUARDIAN_FIELDS)}
    existing_links = {(link["pupil__mis_id"], link["guardian__mis_id"]): link for link in Guardianship.objects.filter(
        pupil__school=school).values("id", "pupil__mis_id", "guardian__mis_id", "relationship",
                                     "parental_responsibility")}
    Membership = Group.pupils.through
    existing_memberships = list(Membership.objects.filter(group__school=school).exclude(group__mis_id="").values_list(
        "id", "group__mis_id", "pupil__mis_id"))

    _plan_groups(plan, wanted.groups, existing_groups)
    pupil_actions = _plan_entities(plan.pupils, wanted.pupils, existing_pupils, PUPIL_FIELDS, rejoin=True)
    guardian_actions = _plan_entities(plan.guardians, wanted.guardians, existing_guardians, GUARDIAN_FIELDS)
    link_fields = ("relationship", "parental_responsibility")
    for key, values in wanted.links.items():
        current = existing_links.get(key)
        if current is None:
            plan.links.create.append({"pupil_mis_id": key[0], "guardian_mis_id": key[1], **values})
        elif any(current[f] != values[f] for f in link_fields):
            plan.links.update.append({"id": current["id"], **values})
        else:
            plan.links.unchanged += 1

    if full:
        plan.leavers = sorted(p["id"] for mis_id, p in existing_pupils.items()
                              if mis_id not in wanted.pupils and p["left_on"] is None)
        plan.links_to_remove = sorted(link["id"] for key, link in existing_links.items()
                                      if key[0] in wanted.pupils and key not in wanted.links)
    # Memberships of groups the MIS owns (those with an MIS id) follow the file for every pupil in it;
    # a full import also takes leavers out of them. Groups made by hand are never touched.
    leaver_ids = set(plan.leavers)
    leaver_mis_ids = {mis_id for mis_id, p in existing_pupils.items() if p["id"] in leaver_ids}
    current_pairs = set()
    for membership_id, group_mis_id, pupil_mis_id in existing_memberships:
        current_pairs.add((group_mis_id, pupil_mis_id))
        if pupil_mis_id in leaver_mis_ids or (
            pupil_mis_id in wanted.pupils and group_mis_id not in wanted.memberships[pupil_mis_id]
        ):
            plan.memberships_to_remove.append(membership_id)
    for pupil_mis_id, group_mis_ids in wanted.memberships.items():
        for group_mis_id in sorted(group_mis_ids):
            if (group_mis_id, pupil_mis_id) not in current_pairs:
                plan.memberships_to_add.append([group_mis_id, pupil_mis_id])

    for row in contact_rows:
        plan.row_actions.append([row.row, pupil_actions.get(row.pupil_id, UNCHANGED),
                                 guardian_actions.get(row.contact_id, UNCHANGED) if row.contact_id else ""])
    return plan


@dataclass
class _Wanted:
    pupils: dict[str, dict[str, Any]] = field(default_factory=dict)
    guardians: dict[str, dict[str, Any]] = field(default_factory=dict)
    links: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, tuple[str, str]] = field(default_factory=dict)  # mis id -> (name, kind)
    memberships: dict[str, set[str]] = field(default_factory=dict)  # pupil mis id -> group mis ids


def _consolidate(rows: list[ContactRow], errors: list[RowError]) -> _Wanted:
    """One record per MIS id. Repeated rows are fine; the same id with different data is an error."""
    wanted = _Wanted()
    first_row: dict[tuple[str, str], int] = {}

    def merge(kind: str, store: dict, key, values: dict[str, Any], row: ContactRow, labels: dict[str, str]) -> None:
        current = store.get(key)
        if current is None:
            store[key] = values
            first_row[(kind, key)] = row.row
            return
        for name, value in values.items():
            if current[name] != value:
                errors.append(RowError(row.row, labels.get(name, name), f"“{value}” differs from “{current[name]}” "
                                       f"given for the same id in row {first_row[(kind, key)]}", row.file))

    pupil_labels = {"first_name": "Pupil first name", "last_name": "Pupil surname", "year_group": "Year group"}
    contact_labels = {"first_name": "Contact first name", "last_name": "Contact surname", "email": "Contact email",
                      "phone": "Contact phone", "relationship": "Relationship",
                      "parental_responsibility": "Parental responsibility"}
    for row in rows:
        merge("pupil", wanted.pupils, row.pupil_id, {"first_name": row.pupil_first_name,
              "last_name": row.pupil_last_name, "year_group": row.year_group}, row, pupil_labels)
        groups = wanted.memberships.setdefault(row.pupil_id, set())
        if row.year_group:
            name = year_group_name(row.year_group)
            wanted.groups.setdefault(f"year:{name}"[:64], (name[:120], Group.Kind.YEAR))
            groups.add(f"year:{name}"[:64])
        for group_mis_id, name in row.classes:
            wanted.groups.setdefault(group_mis_id, (name, Group.Kind.CLASS))
            groups.add(group_mis_id)
        if row.contact_id:
            merge("guardian", wanted.guardians, row.contact_id, {"first_name": row.contact_first_name,
                  "last_name": row.contact_last_name, "email": row.contact_email, "phone": row.contact_phone},
                  row, contact_labels)
            merge("link", wanted.links, (row.pupil_id, row.contact_id), {"relationship": row.relationship,
                  "parental_responsibility": row.parental_responsibility}, row, contact_labels)
    return wanted


def _plan_groups(plan: ImportPlan, wanted: dict[str, tuple[str, str]], existing: list[dict]) -> None:
    by_mis_id = {g["mis_id"]: g for g in existing if g["mis_id"]}
    by_name = {g["name"]: g for g in existing}
    taken = set(by_name)
    for mis_id, (name, kind) in sorted(wanted.items()):
        current = by_mis_id.get(mis_id)
        if current is None and name in by_name and not by_name[name]["mis_id"]:
            current = by_name.pop(name)  # a group made by hand with this name: the MIS now owns it
        if current is None:
            if name in taken:  # two MIS classes with the same title: the names must stay unique
                name = f"{name} ({mis_id.removeprefix('class:')})"[:120]
            taken.add(name)
            plan.groups.create.append({"mis_id": mis_id, "name": name, "kind": kind})
            continue
        if name != current["name"] and name in taken:
            name = current["name"]  # renaming would clash with another group: keep the old name
        if current["mis_id"] != mis_id or current["name"] != name:
            taken.add(name)
            plan.groups.update.append({"id": current["id"], "mis_id": mis_id, "name": name})
        else:
            plan.groups.unchanged += 1


def _plan_entities(changes: Changes, wanted: dict[str, dict], existing: dict[str, dict], fields: tuple[str, ...],
                   rejoin: bool = False) -> dict[str, str]:
    actions = {}
    for mis_id, values in wanted.items():
        current = existing.get(mis_id)
        if current is None:
            changes.create.append({"mis_id": mis_id, **values})
            actions[mis_id] = CREATE
        elif any(current[f] != values[f] for f in fields) or (rejoin and current["left_on"] is not None):
            # A pupil listed again after leaving has come back: clear the leaving date.
            changes.update.append({"id": current["id"], **values})
            actions[mis_id] = UPDATE
        else:
            changes.unchanged += 1
            actions[mis_id] = UNCHANGED
    return actions


def import_apply(
    *,
    plan: ImportPlan,
    actor,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Write the plan in one transaction and audit it once. Returns the counts.

    `progress(done, total)` is called after each batch (for a Celery task's progress bar).
    """
    if plan.errors:
        raise ImportRefused(f"The file has {len(plan.errors)} error(s); nothing was imported.")
    school = School.objects.select_related("organisation").get(pk=plan.school_id)
    counts = plan.counts()
    work = _Work(plan, progress)
    try:
        with transaction.atomic():
            _apply(plan, school, batch_size, work)
            counts_recount_school(school=school)
            audit_log(actor=actor, action="import.applied", obj=school,
                      data={"format": plan.format, "full": plan.full, **counts})
    except IntegrityError:
        raise ImportRefused("The registry changed since this import was previewed; preview it again.") from None
    return counts


class _Work:
    def __init__(self, plan: ImportPlan, progress) -> None:
        self.total = sum(len(part) for part in (
            plan.groups.create, plan.groups.update, plan.pupils.create, plan.pupils.update, plan.leavers,
            plan.guardians.create, plan.guardians.update, plan.links.create, plan.links.update,
            plan.links_to_remove, plan.memberships_to_add, plan.memberships_to_remove))
        self.done = 0
        self.progress = progress

    def advance(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _revoke_links_of_changed_addresses(batch: list[dict], now) -> None:
    """A personal link went to an address; when the MIS changes the address, links sent to the old one stop
    working (the guardian gets a fresh link with their next email). One query per batch."""
    new = {values["id"]: (values.get("email") or "").lower() for values in batch if "email" in values}
    old = Guardian.objects.filter(pk__in=new).values_list("pk", "email")
    changed = [pk for pk, email in old if (email or "").lower() != new[pk]]
    if changed:
        GuardianLink.objects.filter(guardian_id__in=changed, revoked_at__isnull=True).update(revoked_at=now)


def _apply(plan: ImportPlan, school: School, size: int, work: _Work) -> None:
    now = timezone.now()
    today: datetime.date = timezone.localdate(now, school.tz)  # the leaving date in the school's own calendar
    Membership = Group.pupils.through

    for batch in _batches(plan.groups.create, size):
        Group.objects.bulk_create([Group(school=school, **values) for values in batch], batch_size=size)
        work.advance(len(batch))
    for batch in _batches(plan.groups.update, size):
        Group.objects.bulk_update([Group(**values) for values in batch], ["mis_id", "name"], batch_size=size)
        work.advance(len(batch))

    for model, changes, fields in ((Pupil, plan.pupils, PUPIL_FIELDS), (Guardian, plan.guardians, GUARDIAN_FIELDS)):
        for batch in _batches(changes.create, size):
            model.objects.bulk_create([model(school=school, created_at=now, updated_at=now, **values)
                                       for values in batch], batch_size=size)
            work.advance(len(batch))
        extra = {"left_on": None} if model is Pupil else {}
        for batch in _batches(changes.update, size):
            if model is Guardian:
                _revoke_links_of_changed_addresses(batch, now)
            model.objects.bulk_update([model(updated_at=now, **extra, **values) for values in batch],
                                      [*fields, *extra, "updated_at"], batch_size=size)
            work.advance(len(batch))
    for batch in _batches(plan.leavers, size):
        Pupil.objects.filter(school=school, id__in=batch).update(left_on=today, updated_at=now)
        work.advance(len(batch))

    if not (plan.links.create or plan.memberships_to_add):
        pupil_ids = guardian_ids = group_ids = {}
    else:  # three queries, however many rows: the ids of what was just created
        pupil_ids = dict(Pupil.objects.filter(school=school).values_list("mis_id", "id"))
        guardian_ids = dict(Guardian.objects.filter(school=school).values_list("mis_id", "id"))
        group_ids = dict(Group.objects.filter(school=school).exclude(mis_id="").values_list("mis_id", "id"))

    for batch in _batches(plan.links.create, size):
        Guardianship.objects.bulk_create([
            Guardianship(pupil_id=pupil_ids[link["pupil_mis_id"]], guardian_id=guardian_ids[link["guardian_mis_id"]],
                         relationship=link["relationship"], parental_responsibility=link["parental_responsibility"])
            for link in batch
        ], batch_size=size)
        work.advance(len(batch))
    for batch in _batches(plan.links.update, size):
        Guardianship.objects.bulk_update([Guardianship(**link) for link in batch],
                                         ["relationship", "parental_responsibility"], batch_size=size)
        work.advance(len(batch))
    for batch in _batches(plan.links_to_remove, size):
        removed = Guardianship.objects.filter(pupil__school=school, id__in=batch)
        # Touched, so that the retention schedule's grace for guardians left with no child counts from now.
        Guardian.objects.filter(pk__in=removed.values("guardian_id")).update(updated_at=now)
        removed.delete()
        work.advance(len(batch))

    for batch in _batches(plan.memberships_to_remove, size):
        Membership.objects.filter(group__school=school, id__in=batch).delete()
        work.advance(len(batch))
    for batch in _batches(plan.memberships_to_add, size):
        Membership.objects.bulk_create([Membership(group_id=group_ids[g], pupil_id=pupil_ids[p]) for g, p in batch],
                                       batch_size=size)
        work.advance(len(batch))
