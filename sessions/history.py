"""Each invitation's story for the host's page, in a teacher's words: every time it was sent, sent again,
held back or cancelled, and where it stands now (promise 10: the history, not only the latest state), and
every time the parent was told the lesson was cancelled, moved or cannot go ahead. Read from the
invitations' `DeliveryEvent`s and the outbox's emails about them: two queries for a page of them."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from outbox.models import OutboxMessage

from .changes import MOVED_REASON, RESEND_REASON
from .dispatch import REVIVED_REASON
from .models import Delivery, DeliveryEvent

Status = Delivery.Status

# The emails to a parent already invited (`sessions.guardian_notices`), as steps of their invitation's story.
TOLD = {
    "session-cancelled": "The parent was told the lesson is cancelled",
    "session-moved": "The parent was told the lesson moved, and not to use this invitation",
    "session-not-going-ahead": "The parent was told the lesson cannot go ahead, and not to use this invitation",
}

# What the sweeper writes of a row the worker may have sent before it died (`sessions.sweep`).
MAYBE_SENT_PREFIX = "the worker stopped while sending"


@dataclass
class Step:
    at: datetime
    text: str


@dataclass
class Story:
    state: str  # where the invitation stands now
    tone: str  # "ok", "waiting", "problem" or "muted": the badge's colour
    steps: list[Step] = field(default_factory=list)
    times_sent: int = 0


def _step(event: DeliveryEvent, sent_before: int) -> str | None:
    """The words for one event, or None for the bookkeeping a teacher need not see (the first planning, a
    claim, a row given back untried)."""
    reason = event.reason
    if event.status == Status.SENT:
        return "Sent" if not sent_before else "Sent again with the new details"
    if event.status == Status.PENDING:
        return {RESEND_REASON: "The lesson changed: the new details are to be sent",
                MOVED_REASON: "The lesson moved: the new details will be sent at the new send time",
                REVIVED_REASON: "Consent given again: to be sent"}.get(reason)
    if event.status == Status.RETRY:
        if reason.startswith(MAYBE_SENT_PREFIX):
            return "A fault while sending: it may arrive twice"
        if reason.startswith("not tried") or reason.startswith("the worker stopped before"):
            return None
        return f"Not delivered yet ({reason}); trying again"
    if event.status == Status.FAILED:
        return f"Could not be sent: {reason}" if reason else "Could not be sent"
    if event.status == Status.CANCELLED:
        return f"Cancelled: {reason}" if reason else "Cancelled"
    if event.status == Status.SKIPPED:
        return f"Not sent: {reason}" if reason else "Not sent"
    return None


def _state(delivery: Delivery, times_sent: int) -> tuple[str, str]:
    """Where the invitation stands, saying so when the parent already has an earlier email with the link."""
    went = delivery.ever_sent or times_sent > 0
    status = delivery.status
    if status == Status.SENT:
        return ("Sent" if times_sent < 2 else f"Sent ({times_sent} emails)"), "ok"
    if status in (Status.PENDING, Status.RETRY, Status.SENDING):
        if went:
            return "Sent earlier; the new details are still to be sent", "waiting"
        return {Status.PENDING: "Waiting to be sent", Status.RETRY: "Waiting to retry",
                Status.SENDING: "Being sent"}[status], "waiting"
    if status == Status.FAILED:
        return ("Sent earlier; the new details could not be sent" if went else "Could not be sent"), "problem"
    if status == Status.CANCELLED:
        if went:
            return "Cancelled after it was sent: the parent still has the earlier email with the link", "problem"
        return "Cancelled before it was sent", "muted"
    if went:
        return "Sent earlier; not sent again", "problem"
    return "Not sent", "muted"


def invitation_stories(deliveries: Sequence[Delivery]) -> dict[int, Story]:
    """delivery id → its story. One query."""
    events: dict[int, list[DeliveryEvent]] = defaultdict(list)
    for event in DeliveryEvent.objects.filter(delivery__in=[d.pk for d in deliveries]).order_by("delivery", "at",
                                                                                                  "pk"):
        events[event.delivery_id].append(event)
    told: dict[int, list[Step]] = defaultdict(list)
    for related_id, template, at in OutboxMessage.objects.filter(
            related_type=Delivery._meta.label_lower, related_id__in=[str(d.pk) for d in deliveries],
            template__in=list(TOLD)).order_by("created_at", "pk").values_list("related_id", "template", "created_at"):
        told[int(related_id)].append(Step(at, TOLD[template]))
    return {delivery.pk: _story(delivery, events[delivery.pk], told[delivery.pk]) for delivery in deliveries}


def _story(delivery: Delivery, events: Iterable[DeliveryEvent], told: Sequence[Step] = ()) -> Story:
    steps: list[Step] = []
    sent = 0
    for event in events:
        text = _step(event, sent)
        if event.status == Status.SENT:
            sent += 1
        if text and not (steps and steps[-1].text == text):  # a retry repeated: said once
            steps.append(Step(event.at, text))
    if not sent and delivery.status == Status.SENT and delivery.sent_at:
        # Recorded before its events were kept: the row's own time.
        steps.append(Step(delivery.sent_at, "Sent"))
        sent = 1
    if told:
        steps = sorted([*steps, *told], key=lambda step: step.at)
    state, tone = _state(delivery, sent)
    return Story(state=state, tone=tone, steps=steps, times_sent=sent)
