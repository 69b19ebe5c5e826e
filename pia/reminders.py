"""The action plan of signed PIAs (step six): marking actions done, and reminding the person responsible.

The hourly task `pia.tasks.pia_reminders` emails an action's `responsible_user` once when it is due within a
week and once when it is overdue: once per action, stage and due date (`ActionReminder`'s unique constraint).
The `ActionReminder` row is inserted in the transaction that queues the email, and a row that is already
there (an earlier run, or a run at the same moment whose insert we wait for) means "skip". Dates are
compared, never matched, in the school's time zone (the organisation's for an organisation-wide PIA), so a
run that did not happen on the day still catches up. Only the current signed version's actions count: a
superseded version's plan was replaced by the one signed after it.

At-most-once per action and stage: the row and the queued email commit together or not at all; the outbox
then sends the email after the commit. This mirrors `riskassess.reminders`.
"""

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from outbox.services import email_queue
from schools.audit import audit_log
from schools.scope import build_scope

from .editing import author_roles
from .models import Action, ActionCompletion, ActionReminder, Pia, PiaVersion

Stage = ActionReminder.Stage
Status = PiaVersion.Status

ACTION_SOON_DAYS = 7


def pia_tz(pia: Pia) -> ZoneInfo:
    """Where a PIA's days begin and end: its school's time zone; the organisation's for an organisation-wide
    one. The reminders, the action plan page and the platforms' gate all count with it."""
    return ZoneInfo(pia.school.time_zone if pia.school_id else pia.organisation.time_zone)


def pia_today(pia: Pia, now: datetime | None = None) -> date:
    return timezone.localdate(now or timezone.now(), pia_tz(pia))


def action_state(action: Action, today: date) -> str:
    """"done", "overdue", "due_soon", "later" or "no_date" (an action "on release" or "immediately")."""
    if getattr(action, "completion", None) is not None:
        return "done"
    if action.due_on is None:
        return "no_date"
    return action_stage(action.due_on, today) or "later"


def action_stage(due_on: date, today: date) -> str | None:
    """Which reminder an open action is due, if any: overdue once its date has passed, due soon within a week."""
    if due_on < today:
        return Stage.OVERDUE
    if due_on <= today + timedelta(days=ACTION_SOON_DAYS):
        return Stage.DUE_SOON
    return None


def _record(**fields) -> bool:
    """Insert the ActionReminder row, or say it was already there (inside the caller's transaction)."""
    try:
        with transaction.atomic():
            ActionReminder.objects.create(**fields)
    except IntegrityError:
        return False
    return True


def _open_actions(horizon: date):
    # The horizon is a generous bound (a day either side of any time zone); each row is then checked against
    # its own school's today.
    return (
        Action.objects.filter(
            version__status=Status.SIGNED, due_on__isnull=False, due_on__lte=horizon, completion__isnull=True,
            responsible_user__isnull=False, responsible_user__is_active=True,
        )
        .exclude(responsible_user__email="")
        .select_related("version__pia__school", "version__pia__organisation", "responsible_user")
        .order_by("due_on", "pk")
    )


def action_reminder_email_queue(*, action: Action, stage: str, today: date) -> None:
    """Queue the reminder to the action's responsible person (inside the caller's transaction)."""
    pia = action.version.pia
    email_queue(
        template="pia-action-reminder", to=action.responsible_user.email, school=pia.school,
        organisation=pia.organisation, related=pia,
        context={
            "recipient": action.responsible_user, "action": action, "pia": pia, "version": action.version,
            "overdue": stage == Stage.OVERDUE, "due_on": action.due_on, "days": abs((action.due_on - today).days),
            "link_path": reverse("pia:actions"),
        },
    )


def reminders_send(*, now: datetime) -> dict[str, int]:
    """Send every action reminder that is due and not sent yet; return the count per stage."""
    sent: Counter = Counter()
    per_organisation: dict[int, Counter] = defaultdict(Counter)
    organisations = {}
    utc_today = timezone.localdate(now, ZoneInfo("UTC"))
    for action in _open_actions(utc_today + timedelta(days=ACTION_SOON_DAYS + 2)):
        pia = action.version.pia
        today = pia_today(pia, now)
        stage = action_stage(action.due_on, today)
        if stage is None:
            continue
        with transaction.atomic():
            if not _record(action=action, stage=stage, due_on=action.due_on, sent_at=now):
                continue
            action_reminder_email_queue(action=action, stage=stage, today=today)
        sent[stage] += 1
        per_organisation[pia.organisation_id][stage] += 1
        organisations[pia.organisation_id] = pia.organisation
    # One audit entry per run and organisation reminded, so that its own people see it on their audit page.
    for organisation_id, counts in per_organisation.items():
        audit_log(actor=None, action="pia.reminder_sent", obj=organisations[organisation_id],
                  organisation=organisations[organisation_id],
                  data={stage: counts.get(stage, 0) for stage in Stage.values})
    return {stage: sent.get(stage, 0) for stage in Stage.values}


def may_mark_done(scope, action: Action) -> bool:
    """The person responsible for the action, or an author of its PIA (`editing.author_roles`)."""
    return action.responsible_user_id == scope.user_id or bool(author_roles(scope, action.version.pia))


def action_mark_done(*, action: Action, actor, done_on: date | None = None) -> ActionCompletion:
    """Record that an action of the current signed version is done. The signed version stays as it was: the
    completion is a row of its own (`ActionCompletion`), so the snapshot and its hash never change."""
    with transaction.atomic():
        # Lock the action's row so that two people marking it at once get one completion and one message.
        action = (Action.objects.select_for_update(of=("self",))
                  .select_related("version__pia__school", "version__pia__organisation").get(pk=action.pk))
        pia = action.version.pia
        if not may_mark_done(build_scope(actor), action):
            raise PermissionDenied("Only the person responsible for the action, or the headteacher or office, "
                                   "can mark it done.")
        if action.version.status != Status.SIGNED:
            raise ValidationError("Only actions of the current signed version are tracked here.")
        done = ActionCompletion.objects.filter(action=action).first()
        if done is not None:
            raise ValidationError(f"This action was already marked done on {done.done_on:%-d %B %Y}.")
        today = pia_today(pia)
        done_on = done_on or today
        if done_on > today:
            raise ValidationError("An action cannot be marked done on a day that has not come yet.")
        completion = ActionCompletion.objects.create(action=action, done_on=done_on, done_by=actor)
        audit_log(actor=actor, action="pia.action_done", obj=pia, school=pia.school, organisation=pia.organisation,
                  data={"version": action.version.number, "action_id": action.pk,
                        "due_on": action.due_on.isoformat() if action.due_on else None,
                        "done_on": done_on.isoformat()})
    return completion
