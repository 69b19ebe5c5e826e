"""The maintained consent counts per school and purpose (`ConsentCounts`): what the home page shows for every
school of an organisation, read in one query however many pupils.

How they stay true — every change to what they count happens in a transaction that also brings the row up
to date before it commits:

- a decision, a lapse, or a withdrawal on erasure appends an event in `services._append`, under the pupil's
  row lock: it calls `counts_record_change` with the pupil's effective state before and after, and the row
  moves by the difference (nothing when the pupil is not on roll); last in `_append`, as the row stays
  locked until the commit;
- what changes many pupils at once recounts the school from the registry (`counts_recount`, one pass
  of `figures.consent_figures`): an import (pupils leaving or returning, guardians linked, unlinked or given
  or losing parental responsibility), a material change of the notice (consents needing renewal), and a
  parent's erasure (their "no" no longer binds). The retention schedule changes nothing counted: it erases
  leavers and guardians linked to no child. A pupil or guardian changed or deleted in the admin recounts
  their school too (`consent.admin`).

Both take the row `FOR UPDATE` before they read, so they serialise per school: a recount either runs after
a decision committed and sees it, or before it, and the decision then moves the recounted row. A row is
created by a recount the first time a school needs one (before that, no decision has been made there, so
every count is 0); `manage.py consent_counts_rebuild` recounts every row, e.g. after data was written around
the services (a bulk load, the admin). Tests compare the rows with a recount after every kind of change.
"""

from collections.abc import Iterable

from django.db.models import Count, F

from schools.audit import audit_chain_lock
from schools.models import School

from .figures import Figures, consent_figures
from .models import ConsentCounts, ConsentState, Pupil, Purpose

FIELDS = ("given", "renewal", "refused", "withdrawn", "lapsed")


def _lock(school_ids: list[int], purpose_id: int) -> dict[int, ConsentCounts]:
    # Every writer of these rows also writes an audit entry before it commits, and some (a parent's erasure
    # completing a request) have written it before they get here: the chain's lock first, then the rows,
    # in every transaction, so that two writers never wait for each other.
    audit_chain_lock()
    # ON CONFLICT DO NOTHING: a concurrent creator waits for the first to commit, then finds its row.
    ConsentCounts.objects.bulk_create([ConsentCounts(school_id=pk, purpose_id=purpose_id) for pk in school_ids],
                                      ignore_conflicts=True)
    rows = ConsentCounts.objects.select_for_update().filter(school_id__in=school_ids, purpose_id=purpose_id)
    return {row.school_id: row for row in rows.order_by("school_id")}


def _store(rows: Iterable[ConsentCounts], figures: dict[int, Figures]) -> None:
    for row in rows:
        found = figures.get(row.school_id, Figures())
        for name in FIELDS:
            setattr(row, name, getattr(found, name))
        row.counted = True
    ConsentCounts.objects.bulk_update(list(rows), [*FIELDS, "counted"])


def counts_recount(*, school_ids: Iterable[int], purpose: Purpose) -> None:
    """Recount these schools' rows for this purpose from the registry (creating them)."""
    ids = sorted(set(school_ids))
    if ids:
        rows = _lock(ids, purpose.pk)
        _store(rows.values(), consent_figures(school_ids=ids, purpose=purpose))


def counts_recount_school(*, school) -> None:
    """Recount one school for every purpose of its organisation."""
    for purpose in Purpose.objects.filter(organisation_id=school.organisation_id).order_by("pk"):
        counts_recount(school_ids=[school.pk], purpose=purpose)


def _buckets(state: str, renewal_needed: bool) -> list[str]:
    if state == ConsentState.GIVEN:
        return ["given", "renewal"] if renewal_needed else ["given"]
    return [state] if state in FIELDS else []


def counts_record_change(*, pupil_id: int, purpose: Purpose, before: tuple[str, bool], after: tuple[str, bool]) -> None:
    """One pupil's effective state went from `before` to `after` (state, renewal needed) in this transaction."""
    if before == after:
        return
    pupil = Pupil.objects.filter(pk=pupil_id).values("school_id", "left_on", "archived_at").get()
    if pupil["left_on"] is not None or pupil["archived_at"] is not None:
        return  # not on roll: not counted
    row = _lock([pupil["school_id"]], purpose.pk)[pupil["school_id"]]
    if not row.counted:  # created just now: the recount already sees this transaction's change
        _store([row], consent_figures(school_ids=[row.school_id], purpose=purpose))
        return
    delta = dict.fromkeys(FIELDS, 0)
    for name in _buckets(*before):
        delta[name] -= 1
    for name in _buckets(*after):
        delta[name] += 1
    ConsentCounts.objects.filter(pk=row.pk).update(**{name: F(name) + n for name, n in delta.items() if n})


def counts_rebuild() -> int:
    """Recount every school for every purpose of its organisation. Returns the rows written."""
    written = 0
    for purpose in Purpose.objects.order_by("pk"):
        ids = list(School.objects.filter(organisation_id=purpose.organisation_id).values_list("pk", flat=True))
        counts_recount(school_ids=ids, purpose=purpose)
        written += len(ids)
    return written


def school_figures(*, school_ids: Iterable[int], purpose: Purpose | None) -> dict[int, Figures]:
    """School id → its figures: the pupils on roll counted live (one aggregate over the pupil table), the
    states from the maintained rows. Two queries, whatever the number of pupils."""
    ids = list(school_ids)
    totals = dict(Pupil.objects.filter(school_id__in=ids, left_on__isnull=True, archived_at__isnull=True)
                  .values_list("school_id").annotate(n=Count("pk")).order_by())
    stored = {}
    if purpose is not None:
        stored = {row["school_id"]: row for row in ConsentCounts.objects.filter(
            school_id__in=ids, purpose=purpose).values("school_id", *FIELDS)}
    result = {}
    for pk in set(totals) | set(stored):
        row = stored.get(pk, {})
        result[pk] = Figures(total=totals.get(pk, 0), **{name: row.get(name, 0) for name in FIELDS})
    return result
