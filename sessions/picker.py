"""The hand-picked pupils on the schedule and edit forms: the chosen ones, and those a search finds, each with
their class and where they stand for the session's consent purpose (`sessions.coverage.Standing`).

A school of 2,000 pupils never renders 2,000 rows: without a search the picker lists the chosen pupils only
(all current pupils when the school is small), and a search lists at most `FOUND_MAX`. A constant number of
queries, however many pupils.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Q

from consent.models import Group, Pupil, Purpose
from schools.models import School

from .coverage import BADGE_CSS, Standing, pupil_standings

# A school with at most this many current pupils lists them all, without a search.
LIST_ALL_MAX = 60
FOUND_MAX = 50
QUERY_MAX = 100


@dataclass(frozen=True)
class PickerRow:
    pk: int
    name: str  # first name and surname, as the school writes them
    where: str  # the child's class (or year group)
    standing: Standing | None  # None when the organisation has no consent purpose yet

    @property
    def standing_label(self) -> str:
        return self.standing.label if self.standing else ""

    @property
    def badge_css(self) -> str:
        return BADGE_CSS.get(self.standing, "text-bg-light border")


@dataclass(frozen=True)
class Picker:
    chosen: list[PickerRow] = field(default_factory=list)
    found: list[PickerRow] = field(default_factory=list)
    query: str = ""
    more: int = 0  # matches beyond the ones listed: the search should say more
    listing_all: bool = False  # a small school: every current pupil is listed


def _current(school: School):
    return Pupil.objects.filter(school=school, left_on__isnull=True, archived_at__isnull=True)


def _search(school: School, query: str):
    pupils = _current(school)
    for word in query.split():
        pupils = pupils.filter(Q(first_name__icontains=word) | Q(last_name__icontains=word)
                               | Q(groups__name__icontains=word) | Q(year_group__iexact=word))
    return pupils.distinct().order_by("last_name", "first_name", "pk")


def _classes(pupil_ids: Iterable[int]) -> dict[int, str]:
    """Each pupil's classes (else year groups), by name. One query."""
    found: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for pupil_id, name, kind in Group.pupils.through.objects.filter(pupil_id__in=list(pupil_ids)).values_list(
            "pupil_id", "group__name", "group__kind").order_by("group__name"):
        found[pupil_id][kind].append(name)
    return {pk: ", ".join(kinds.get(Group.Kind.CLASS) or kinds.get(Group.Kind.YEAR) or [])
            for pk, kinds in found.items()}


def _rows(pupils: list[Pupil], purpose: Purpose | None) -> list[PickerRow]:
    classes = _classes(p.pk for p in pupils)
    standing = pupil_standings(purpose=purpose, pupil_ids=[p.pk for p in pupils]) if purpose and pupils else {}
    return [PickerRow(p.pk, f"{p.first_name} {p.last_name}", classes.get(p.pk) or p.year_group, standing.get(p.pk))
            for p in pupils]


def picker_read(*, school: School, purpose: Purpose | None, chosen_ids: Iterable[int], query: str = "") -> Picker:
    """The chosen pupils (those still at the school) and, apart from them, those the search finds."""
    query = " ".join(query.split())[:QUERY_MAX]
    chosen_ids = set(chosen_ids)
    chosen = list(_current(school).filter(pk__in=chosen_ids).order_by("last_name", "first_name", "pk"))
    listing_all = not query and _current(school).count() <= LIST_ALL_MAX
    found: list[Pupil] = []
    more = 0
    if query or listing_all:
        matches = list(_search(school, query).exclude(pk__in=chosen_ids)[:FOUND_MAX + 1])
        found, more = matches[:FOUND_MAX], 0
        if len(matches) > FOUND_MAX:
            more = _search(school, query).exclude(pk__in=chosen_ids).count() - FOUND_MAX
    rows = _rows(chosen + found, purpose)
    return Picker(chosen=rows[:len(chosen)], found=rows[len(chosen):], query=query, more=more,
                  listing_all=listing_all)
