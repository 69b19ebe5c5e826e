"""What a withdrawal (or refusal, or lapse) does to invitations (promise 5): called by `consent.services`
inside the decision's transaction, under the consent row's FOR UPDATE lock."""

from django.db.models.functions import Now

from consent.models import ConsentState, Guardian, Pupil
from schools.audit import audit_log

from .delivery_steps import delivery_events_record, session_alert_raise
from .models import Delivery, SessionAlert, VideoSession

Status = Delivery.Status


def invitation_went(delivery: Delivery, pupil_id: int) -> bool:
    """An invitation with the link and naming this child went to the guardian (or may have: being sent, or
    counted as a possible duplicate), whatever the row says now: sent, or pending again after the lesson
    moved, or cancelled since."""
    if pupil_id in delivery.sent_pupil_ids:
        return True
    may_have = delivery.status in (Status.SENT, Status.SENDING) or delivery.possible_duplicate > 0
    return may_have and pupil_id in delivery.pupil_ids


def on_consent_withdrawn(*, guardian_id: int, pupil_id: int, purpose_id: int, state: str) -> None:
    """Called by `consent.services` inside a decision's transaction, under the consent row's FOR UPDATE
    lock, when a consent becomes anything but "given" (withdrawn, refused, lapsed).

    A "no" from any guardian wins, so every guardian's unsent invitations naming this child, for sessions
    of this purpose still ahead, lose the child; an invitation left naming no child is cancelled. Rows a
    claim holds are skipped (SKIP LOCKED, no deadlock with the claim's FOR SHARE): that claim is waiting
    for this transaction and will see the new state. An invitation naming the child that already went
    (`invitation_went`: also one waiting to be sent again after the lesson moved) cannot be called back: the
    host is alerted and emailed once per invitation."""
    reason = {ConsentState.REFUSED: "consent refused", ConsentState.LAPSED: "consent lapsed",
              ConsentState.NONE: "consent superseded by a newer notice"}.get(state, "consent withdrawn")
    ahead = Delivery.objects.filter(session__purpose_id=purpose_id, session__starts_at__gt=Now(),
                                    guardian__guardianships__pupil_id=pupil_id)
    # Read before the unsent rows lose the child below.
    went = [d for d in ahead.select_related("session__school", "session__host") if invitation_went(d, pupil_id)]
    unsent = [
        d for d in ahead.filter(status__in=Delivery.CLAIMABLE).select_for_update(skip_locked=True, of=("self",))
        if pupil_id in d.pupil_ids
    ]
    cancelled, narrowed = [], []
    for delivery in unsent:
        remaining = [p for p in delivery.pupil_ids if p != pupil_id]
        if remaining:
            Delivery.objects.filter(pk=delivery.pk).update(pupil_ids=remaining)
            narrowed.append(delivery.pk)
        else:
            cancelled.append(delivery.pk)
    if cancelled:
        Delivery.objects.filter(pk__in=cancelled).update(status=Status.CANCELLED, reason=reason, lease_until=None,
                                                         next_attempt_at=None, dispatched_at=None)
        delivery_events_record((pk, Status.CANCELLED, reason) for pk in cancelled)
    if cancelled or narrowed:
        audit_log(actor=None, action="session.invitations_cancelled", obj=None,
                  school=Pupil.objects.select_related("school__organisation").get(pk=pupil_id).school,
                  data={"pupil_id": pupil_id, "guardian_id": guardian_id, "purpose_id": purpose_id, "reason": reason,
                        "cancelled": cancelled, "narrowed": narrowed})
    if went:
        # The host needs the first name to know whom not to admit (staff see pupils' first names anyway).
        first_name = Pupil.objects.filter(pk=pupil_id).values_list("first_name", flat=True).first() or "the child"
    for delivery in went:
        earlier = "" if delivery.status in (Status.SENT, Status.SENDING) else (
            " (before the lesson changed: that email still has the link)")
        session_alert_raise(session=delivery.session, kind=SessionAlert.Kind.WITHDRAWN_AFTER_SEND,
                            delivery_ids=[delivery.pk],
                            message=f"The invitation naming {first_name} was already sent{earlier}; since then: "
                                    f"{reason}. Do not admit {first_name} unless consent is given again.")


def invitations_sent_ahead(*, guardian: Guardian, pupil_id: int, purpose_id: int) -> list[VideoSession]:
    """Sessions still ahead for which this guardian was already sent an invitation naming this child (even if
    the lesson moved since, or the invitation was cancelled by this withdrawal): the parent's withdrawal
    page says so (and that the teacher has been told)."""
    rows = Delivery.objects.filter(guardian=guardian, session__purpose_id=purpose_id,
                                   session__starts_at__gt=Now()).select_related("session__school")
    return [d.session for d in rows if invitation_went(d, pupil_id)]
