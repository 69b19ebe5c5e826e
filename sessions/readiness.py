"""Is each lesson ready to go ahead? The answer the dashboards and the sessions list show beside a lesson.

Three things, for a page of lessons at once and in a constant number of queries however many lessons,
children and parents (one read of each kind, whatever the page holds):

- the gate (`gates_for_sessions`): green, or red with its first reason and who can put it right;
- consent coverage: how many of the lesson's children may attend, counted with the one eligibility rule
  that the invitations use (`sessions.eligibility`), so the figure is the roster the host will see;
- the invitations: not yet due (with the time they go), sent n of m, failed n, possible duplicates; when due
  with none made, why: the gate is red, they are being prepared (the planner runs every minute), or nobody
  has consent — the same reasons, in the same order, as the session page.
"""

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from schools.models import School

from .eligibility import eligible_children, read_registry, session_pupils
from .gate import Gate, gates_for_combinations, gates_for_sessions
from .models import Delivery, VideoSession

Status = Delivery.Status


@dataclass(frozen=True)
class Coverage:
    may_attend: int
    children: int

    @property
    def percent(self) -> int | None:
        """Rounded down, as `sessions.coverage.Coverage.percent`: just under the threshold never reads as it."""
        return self.may_attend * 100 // self.children if self.children else None

    def __str__(self) -> str:
        return f"{self.may_attend} of {self.children} may attend"


@dataclass(frozen=True)
class Invitations:
    due: bool  # the send time has come
    send_at: datetime
    planned: int  # rows created (anything but skipped or cancelled)
    sent: int
    failed: int
    possible_duplicates: int

    @property
    def label(self) -> str:
        if not self.due:
            return "Not yet due"
        if not self.planned:
            return "None to send"
        parents = "parent" if self.planned == 1 else "parents"
        text = f"Sent to {self.sent} of {self.planned} {parents}"
        return f"{text}, {self.failed} failed" if self.failed else text


@dataclass(frozen=True)
class Readiness:
    session: VideoSession
    local_start: datetime
    gate: Gate | None  # None for a cancelled lesson
    coverage: Coverage
    invitations: Invitations
    started: bool = False

    @property
    def invitations_label(self) -> str:
        """The invitations in words, with the true reason when none were made though the send time has come."""
        if not self.invitations.due or self.invitations.planned:
            return self.invitations.label
        if self.blocked:
            return "None sent while the lesson cannot go ahead"
        if self.coverage.may_attend and not self.started:
            return "Being prepared: they go within a minute"
        if self.coverage.may_attend:
            return "None went out before the start"
        return "None to send: no parent or carer has active consent"

    @property
    def cancelled(self) -> bool:
        return self.session.status == VideoSession.Status.CANCELLED

    @property
    def blocked(self) -> bool:
        return self.gate is not None and not self.gate.ok

    @property
    def below_threshold(self) -> bool:
        """As the schedule form and the session page warn (`sessions.coverage.Coverage.below_threshold`)."""
        threshold = self.session.school.organisation.coverage_warning_percent
        return self.coverage.children > 0 and self.coverage.may_attend * 100 < threshold * self.coverage.children


def coverage_of_sessions(sessions: Iterable[VideoSession], now: datetime | None = None) -> dict[int, Coverage]:
    """session id → how many of its current children have a parent who would be invited. Six queries."""
    sessions = list(sessions)
    now = now or timezone.now()
    pupils_by_session = session_pupils([s.pk for s in sessions])
    everyone = set().union(*pupils_by_session.values()) if pupils_by_session else set()
    registry = read_registry(everyone, {s.purpose_id for s in sessions}, now)
    result = {}
    for session in sessions:
        pupils = [p for p in pupils_by_session.get(session.pk, ()) if p in registry.pupils]
        invited = eligible_children(registry, pupils, session.purpose_id)
        may_attend = {pupil for children in invited.values() for pupil in children}
        result[session.pk] = Coverage(may_attend=len(may_attend), children=len(pupils))
    return result


def invitations_of_sessions(sessions: Iterable[VideoSession], now: datetime | None = None) -> dict[int, Invitations]:
    """session id → its invitations' counts. One query."""
    sessions = list(sessions)
    now = now or timezone.now()
    counts: dict[int, Counter] = defaultdict(Counter)
    duplicates: Counter = Counter()
    rows = (Delivery.objects.filter(session__in=[s.pk for s in sessions]).values("session_id", "status")
            .annotate(n=Count("id"), duplicates=Sum("possible_duplicate")).order_by())
    for row in rows:
        counts[row["session_id"]][row["status"]] += row["n"]
        duplicates[row["session_id"]] += row["duplicates"] or 0
    result = {}
    for session in sessions:
        by_status = counts[session.pk]
        result[session.pk] = Invitations(
            due=session.send_at <= now, send_at=session.send_at,
            planned=sum(n for status, n in by_status.items() if status not in (Status.SKIPPED, Status.CANCELLED)),
            sent=by_status[Status.SENT], failed=by_status[Status.FAILED],
            possible_duplicates=duplicates[session.pk],
        )
    return result


def sessions_readiness(sessions: Iterable[VideoSession], now: datetime | None = None) -> list[Readiness]:
    """Readiness of each lesson, in the order given. The sessions come with `school__organisation`, `host`
    and `platform` selected. Eleven queries in all, however many lessons."""
    sessions = list(sessions)
    if not sessions:
        return []
    now = now or timezone.now()
    scheduled = [s for s in sessions if s.status == VideoSession.Status.SCHEDULED]
    gates = gates_for_sessions(scheduled)
    coverage = coverage_of_sessions(sessions, now)
    invitations = invitations_of_sessions(sessions, now)
    return [
        Readiness(session=s, local_start=timezone.localtime(s.starts_at, s.school.tz), gate=gates.get(s.pk),
                  coverage=coverage[s.pk], invitations=invitations[s.pk], started=s.starts_at <= now)
        for s in sessions
    ]


def blocked(sessions: QuerySet) -> Q:
    """A filter for the scheduled lessons of `sessions` whose gate is red: each (school, platform, host) among
    them is asked once, so the cost does not grow with the number of lessons (six queries)."""
    combos = list(sessions.filter(status=VideoSession.Status.SCHEDULED)
                  .values_list("school_id", "platform_id", "host_id").distinct().order_by())
    schools = School.objects.in_bulk({school for school, _, _ in combos})
    hosts = get_user_model().objects.in_bulk({host for _, _, host in combos})
    gates = gates_for_combinations([(schools[school], platform, hosts.get(host)) for school, platform, host in combos])
    red = Q(pk__in=[])
    for (school, platform, host), gate in gates.items():
        if not gate.ok:
            red |= Q(school_id=school, platform_id=platform, host_id=host)
    return red & Q(status=VideoSession.Status.SCHEDULED)
