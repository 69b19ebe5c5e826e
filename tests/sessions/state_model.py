"""The plain-Python oracle of the invitation state machine (tests/sessions/test_state_machine.py).

It knows what the registry and the sessions should look like after each step — every guardian's consent
per child, addresses, parental responsibility, group membership, each session's groups, start, lead time,
status and revision — and the time, in whole minutes since the world was built ("virtual minutes"). It
answers the questions the checks ask, with the project's eligibility rule (`sessions/dispatch.py`'s
docstring), written again here without reading the database:

- a guardian may be invited to a session for a child when the child is in one of the session's groups, the
  guardian has parental responsibility for the child and an email address, the guardian's own consent is
  "given", and no guardian of the child (with or without parental responsibility) has refused or withdrawn;
- a session is due when it is scheduled and its send time (start − lead) has come but its start has not.

It never looks at deliveries: what the dispatcher did is read from the database and judged against this.
"""

from dataclasses import dataclass, field

GIVEN, REFUSED, WITHDRAWN, NONE = "given", "refused", "withdrawn", "none"
NO = frozenset({REFUSED, WITHDRAWN})


@dataclass
class SessionModel:
    pk: int
    groups: frozenset[int]
    start: int  # virtual minutes
    lead: int
    duration: int
    scheduled: bool = True
    revision: int = 1

    @property
    def send_at(self) -> int:
        return self.start - self.lead


@dataclass
class Model:
    now: int = 0  # virtual minutes since the world was built
    emails: dict[int, str] = field(default_factory=dict)  # guardian → address ("" for none)
    # (guardian, pupil) → has parental responsibility; the keys are the guardianships
    responsibility: dict[tuple[int, int], bool] = field(default_factory=dict)
    consent: dict[tuple[int, int], str] = field(default_factory=dict)  # (guardian, pupil) → state
    group_of: dict[int, int | None] = field(default_factory=dict)  # pupil → group (or none)
    first_names: dict[int, str] = field(default_factory=dict)  # pupil → first name
    sessions: dict[int, SessionModel] = field(default_factory=dict)

    # --- consent -------------------------------------------------------------------------------------

    def state(self, guardian: int, pupil: int) -> str:
        return self.consent.get((guardian, pupil), NONE)

    def decide(self, guardian: int, pupil: int, kind: str) -> bool:
        """Apply a decision by link; False when the service must refuse it (giving without responsibility)."""
        if kind == GIVEN and not self.responsibility[(guardian, pupil)]:
            return False
        self.consent[(guardian, pupil)] = kind
        return True

    def guardians_of(self, pupil: int) -> list[int]:
        return sorted(g for (g, p) in self.responsibility if p == pupil)

    # --- eligibility ---------------------------------------------------------------------------------

    def pupils_in(self, session: SessionModel) -> set[int]:
        return {p for p, g in self.group_of.items() if g is not None and g in session.groups}

    def eligible(self, session: SessionModel) -> dict[int, set[int]]:
        """guardian → the children for whom they may be invited now (ignoring time and status)."""
        found: dict[int, set[int]] = {}
        for pupil in self.pupils_in(session):
            guardians = self.guardians_of(pupil)
            if any(self.state(g, pupil) in NO for g in guardians):
                continue
            for g in guardians:
                if self.responsibility[(g, pupil)] and self.emails[g] and self.state(g, pupil) == GIVEN:
                    found.setdefault(g, set()).add(pupil)
        return found

    # --- time ----------------------------------------------------------------------------------------
    # The real clock runs a few seconds past the virtual minute (never a whole minute: the machine checks),
    # so "the start has come" at virtual minute `now` means start <= now.

    def started(self, session: SessionModel) -> bool:
        return session.start <= self.now

    def ended(self, session: SessionModel) -> bool:
        return session.start + session.duration <= self.now

    def due(self, session: SessionModel) -> bool:
        return session.scheduled and session.send_at <= self.now < session.start
