"""Consent coverage: how many children of a session (or of the groups and pupils chosen on the schedule form)
may attend, and why the others may not.

"May attend" is the dispatcher's own rule (`sessions.eligibility.eligible_children`): a child may attend when
at least one guardian would be invited for them. So the figure shown while scheduling is the roster the host
later sees (`sessions.host.session_roster`), counted from the same bulk reads. Every other current child gets
one reason, in this order: a parent refused or withdrew (a "no" wins); a parent consented but none can be
emailed; the consent lapsed or its renewal deadline passed; nobody with parental responsibility has answered.

Every read takes a constant number of queries, however many children are chosen.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from django.db.models import TextChoices
from django.utils import timezone

from consent.models import ConsentState, Group, Purpose
from schools.models import Organisation, School

from .eligibility import Registry, consent_active, eligible_children, read_registry, session_pupils
from .models import VideoSession

NO = (ConsentState.REFUSED, ConsentState.WITHDRAWN)


class Standing(TextChoices):
    """Where one child stands for a session: the words staff read beside each name."""

    CONSENTED = "consented", "Consented"
    RENEWAL_DUE = "renewal_due", "Consented, renewal due"
    NO_ANSWER = "no_answer", "No answer"
    REFUSED = "refused", "Refused"
    WITHDRAWN = "withdrawn", "Withdrawn"
    LAPSED = "lapsed", "Consent lapsed"
    NO_EMAIL = "no_email", "Consented, no parent to email"


MAY_ATTEND = frozenset({Standing.CONSENTED, Standing.RENEWAL_DUE})
# The badge beside each name: text always says it, the colour only repeats it.
BADGE_CSS: dict[str, str] = {
    Standing.CONSENTED: "text-bg-success",
    Standing.RENEWAL_DUE: "text-bg-success",
    Standing.NO_ANSWER: "text-bg-light border",
    Standing.REFUSED: "text-bg-danger",
    Standing.WITHDRAWN: "text-bg-danger",
    Standing.LAPSED: "text-bg-secondary",
    Standing.NO_EMAIL: "text-bg-warning",
}


def standings(registry: Registry, pupil_ids: Iterable[int], purpose_id: int) -> dict[int, Standing]:
    """Each current child of `pupil_ids` (those in `registry.pupils`) with where they stand. No query."""
    current = [pk for pk in set(pupil_ids) if pk in registry.pupils]
    invited_for = eligible_children(registry, current, purpose_id)
    inviting: dict[int, list[int]] = defaultdict(list)  # child → guardians who would be invited for them
    for guardian_id, children in invited_for.items():
        for pupil_id in children:
            inviting[pupil_id].append(guardian_id)
    found: dict[int, Standing] = {}
    for pupil_id in current:
        carers = [c for c in registry.carers.get(pupil_id, []) if c.archived_at is None]
        statuses = [registry.statuses.get((c.guardian_id, pupil_id, purpose_id), ("none", False, 0)) for c in carers]
        states = {status[0] for status in statuses}
        responsible = [c for c in carers if c.parental_responsibility]
        if inviting[pupil_id]:
            renewing = all(registry.statuses[(g, pupil_id, purpose_id)][1] for g in inviting[pupil_id])
            found[pupil_id] = Standing.RENEWAL_DUE if renewing else Standing.CONSENTED
        elif ConsentState.REFUSED in states:
            found[pupil_id] = Standing.REFUSED
        elif ConsentState.WITHDRAWN in states:
            found[pupil_id] = Standing.WITHDRAWN
        elif any(consent_active(registry, c.guardian_id, pupil_id, purpose_id) for c in responsible):
            found[pupil_id] = Standing.NO_EMAIL
        elif ConsentState.LAPSED in states or any(
                registry.statuses.get((c.guardian_id, pupil_id, purpose_id), ("none",))[0] == ConsentState.GIVEN
                for c in responsible):
            found[pupil_id] = Standing.LAPSED  # given, but the renewal deadline has passed
        else:
            found[pupil_id] = Standing.NO_ANSWER
    return found


def _silent_parents(registry: Registry, pupil_ids: Iterable[int]) -> set[int]:
    """The guardians with parental responsibility (not erased) of these children: for children with no answer,
    the parents whose answer would let them attend."""
    return {c.guardian_id for pk in pupil_ids for c in registry.carers.get(pk, [])
            if c.parental_responsibility and c.archived_at is None}


@dataclass(frozen=True)
class GroupGap:
    """A chosen group with children whose parents have not answered: where the reminder link points."""

    group_id: int
    name: str
    parents: int


@dataclass(frozen=True)
class Coverage:
    total: int  # current children (not left, not erased) in the groups or hand-picked
    counts: Mapping[str, int]  # Standing → children
    no_answer_parents: int
    threshold: int  # the organisation's percent
    owner: str  # "the federation": whose threshold it is, in words
    gaps: tuple[GroupGap, ...] = ()  # chosen groups with parents who have not answered, by name
    ungrouped_parents: int = 0  # not-answering parents of hand-picked children outside the chosen groups
    standing: Mapping[int, Standing] = field(default_factory=dict, compare=False, repr=False)
    chosen: bool = True  # any group or pupil chosen at all (on a new form, none yet)

    def count(self, *which: Standing) -> int:
        return sum(self.counts.get(s, 0) for s in which)

    @property
    def may_attend(self) -> int:
        return self.count(*MAY_ATTEND)

    @property
    def no_answer(self) -> int:
        return self.count(Standing.NO_ANSWER)

    @property
    def refused(self) -> int:
        return self.count(Standing.REFUSED, Standing.WITHDRAWN)

    @property
    def lapsed(self) -> int:
        return self.count(Standing.LAPSED)

    @property
    def no_email(self) -> int:
        return self.count(Standing.NO_EMAIL)

    @property
    def renewal_due(self) -> int:
        return self.count(Standing.RENEWAL_DUE)

    @property
    def percent(self) -> int | None:
        """Rounded down, so that a share just under the threshold never reads as the threshold itself."""
        return self.may_attend * 100 // self.total if self.total else None

    @property
    def below_threshold(self) -> bool:
        """Fewer than the organisation's share may attend. No children at all is not a share: it is said
        (`empty`), not confirmed."""
        return self.total > 0 and self.may_attend * 100 < self.threshold * self.total

    @property
    def empty(self) -> bool:
        return self.total == 0

    @property
    def key(self) -> str:
        """What a confirmation confirms: these figures. New figures need a new confirmation."""
        return f"{self.may_attend}-{self.total}"

    @property
    def summary(self) -> str:
        if not self.chosen:
            return "Choose groups or pupils to see how many children may attend."
        if self.empty:
            return "No children are in the chosen groups or hand-picked yet: nobody would be invited."
        return f"{self.may_attend} of {self.total} {'child' if self.total == 1 else 'children'} may attend " \
               f"({self.percent}\u00a0%)."

    @property
    def warning(self) -> str:
        """The sentence the session page keeps while the share is below the threshold ("" when it is not)."""
        if self.empty:
            return "No children are in this session's groups or hand-picked: nobody will be invited."
        if not self.below_threshold:
            return ""
        return (f"Only {self.may_attend} of {self.total} children may attend ({self.percent}\u00a0%) — below "
                f"{self.owner}'s {self.threshold}\u00a0%.")

    def confirm_label(self, verb: str = "Schedule") -> str:
        return f"{verb} anyway: only {self.may_attend} of {self.total} children may attend."

    def as_data(self) -> dict:
        """For the audit trail and the form's script: figures only, never a name."""
        return {
            "total": self.total, "may_attend": self.may_attend, "percent": self.percent,
            "threshold": self.threshold, "below_threshold": self.below_threshold,
            "no_answer": self.no_answer, "no_answer_parents": self.no_answer_parents,
            "refused_or_withdrawn": self.refused, "lapsed": self.lapsed, "no_email": self.no_email,
            "renewal_due": self.renewal_due,
        }


def threshold_owner(organisation: Organisation) -> str:
    if organisation.kind == Organisation.Kind.OTHER:
        return "the organisation"
    return f"the {organisation.get_kind_display().lower()}"


def _coverage(registry: Registry, pupil_ids: set[int], purpose_id: int, organisation: Organisation,
              groups: Mapping[int, str] | None = None, members: Mapping[int, set[int]] | None = None) -> Coverage:
    standing = standings(registry, pupil_ids, purpose_id)
    counts: dict[str, int] = defaultdict(int)
    for value in standing.values():
        counts[value] += 1
    silent = {pk for pk, value in standing.items() if value == Standing.NO_ANSWER}
    gaps, grouped = [], set()
    for group_id, name in sorted((groups or {}).items(), key=lambda item: (item[1].casefold(), item[0])):
        in_group = silent & (members or {}).get(group_id, set())
        grouped |= in_group
        if parents := _silent_parents(registry, in_group):
            gaps.append(GroupGap(group_id, name, len(parents)))
    return Coverage(
        total=len(standing), counts=dict(counts), no_answer_parents=len(_silent_parents(registry, silent)),
        threshold=organisation.coverage_warning_percent, owner=threshold_owner(organisation), gaps=tuple(gaps),
        ungrouped_parents=len(_silent_parents(registry, silent - grouped)), standing=standing,
    )


def coverage_for(*, school: School, purpose: Purpose, group_ids: Iterable[int] = (), pupil_ids: Iterable[int] = (),
                 now: datetime | None = None) -> Coverage:
    """The coverage of these groups and hand-picked pupils of `school`, as the schedule form shows it before
    anything is saved. Ids of another school's groups or pupils are ignored. Six queries."""
    now = now or timezone.now()
    groups = dict(Group.objects.filter(school=school, pk__in=list(group_ids)).values_list("pk", "name"))
    members: dict[int, set[int]] = defaultdict(set)
    for group_id, pupil_id in Group.pupils.through.objects.filter(group_id__in=list(groups)).values_list(
            "group_id", "pupil_id"):
        members[group_id].add(pupil_id)
    chosen = set(pupil_ids).union(*members.values())
    registry = read_registry(chosen, [purpose.pk], now)
    ours = {pk for pk, pupil in registry.pupils.items() if pupil.school_id == school.pk}
    coverage = _coverage(registry, ours, purpose.pk, school.organisation, groups, members)
    return replace(coverage, chosen=bool(groups or ours))


def session_coverage(session: VideoSession, now: datetime | None = None) -> Coverage:
    """A saved session's coverage, computed now: the very children and rule of its roster. Six queries."""
    pupil_ids = session_pupils([session.pk]).get(session.pk, set())
    registry = read_registry(pupil_ids, [session.purpose_id], now or timezone.now())
    return _coverage(registry, set(registry.pupils), session.purpose_id, session.school.organisation)


def pupil_standings(*, purpose: Purpose, pupil_ids: Iterable[int], now: datetime | None = None) -> dict[int, Standing]:
    """Where each of these children stands, for the picker on the schedule form. Four queries."""
    pupil_ids = set(pupil_ids)
    registry = read_registry(pupil_ids, [purpose.pk], now or timezone.now())
    return standings(registry, pupil_ids, purpose.pk)
