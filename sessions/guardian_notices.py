"""The short emails to guardians already invited to a lesson that no longer goes ahead as their invitation
said: cancelled, moved, or unable to go ahead (its gate red after the invitations went, or still red at
its start). Never the link or the password; always "do not use the invitation we sent".

Who is told: a guardian was invited if an invitation ever went to them for this lesson, whatever the row
says now (`sent` or `sending`, or `sent_revision` set: an earlier revision went, whatever became of the
fresh one). Of those, the guardians the school may still write to (not erased, processing not
restricted, one valid address) and who still have a child in the lesson with active consent: a parent who
withdrew was told by their withdrawal's confirmation, and is not written to again about a lesson their
child no longer joins.
"""

from collections.abc import Iterable

from django.db.models import Q
from django.utils import timezone

from consent.links import guardian_link_issue
from consent.models import Pupil
from outbox.services import email_queue

from .eligibility import eligible_children, guardian_may_receive, read_registry, session_pupils
from .models import Delivery, VideoSession

Status = Delivery.Status


def children_names(pupil_ids: Iterable[int]) -> dict[int, str]:
    """pupil id → first name. One query."""
    return dict(Pupil.objects.filter(pk__in=list(set(pupil_ids))).values_list("pk", "first_name"))


def names_joined(names: list[str]) -> str:
    """"Ava", "Ava and Ben", "Ava, Ben and Cal"; "your child" when there is none."""
    names = sorted(names)
    if not names:
        return "your child"
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]


def guardian_email_context(delivery: Delivery, session: VideoSession, names: dict[int, str]) -> dict:
    """What every email to a guardian about a lesson says: who, which children, when, and their consent link."""
    school = session.school
    return {
        "guardian": delivery.guardian,
        "session": session,
        "children": names_joined([names[p] for p in delivery.pupil_ids if p in names]),
        "starts_at": timezone.localtime(session.starts_at, school.tz),
        "ends_at": timezone.localtime(session.ends_at, school.tz),
        "time_zone": school.time_zone,
        "consent_link": guardian_link_issue(guardian=delivery.guardian, purpose=session.purpose),
        "contact_email": school.contact_email,
    }


def invited_guardians(session: VideoSession) -> list[Delivery]:
    """The rows of the guardians to tell (see the module docstring), each with `pupil_ids` narrowed to the
    children still in the lesson with active consent. Six queries."""
    rows = list(Delivery.objects.filter(Q(status__in=[Status.SENT, Status.SENDING]) | Q(sent_revision__isnull=False),
                                        session=session).select_related("guardian").order_by("pk"))
    if not rows:
        return []
    members = session_pupils([session.pk]).get(session.pk, set())
    registry = read_registry(members, {session.purpose_id}, timezone.now())
    eligible = eligible_children(registry, members, session.purpose_id)
    told = []
    for row in rows:
        if row.guardian_id in eligible and guardian_may_receive(row.guardian):
            row.pupil_ids = eligible[row.guardian_id]
            told.append(row)
    return told


def guardians_tell(*, session: VideoSession, rows: list[Delivery], template: str, **context) -> int:
    """One email (`template`) to each of `rows`' guardians about `session`, through the outbox, inside the
    caller's transaction. Returns how many were queued."""
    names = children_names(p for row in rows for p in row.pupil_ids)
    for row in rows:
        email_queue(template=template, to=row.guardian.email, school=session.school, related=row,
                    context={**guardian_email_context(row, session, names), **context})
    return len(rows)
