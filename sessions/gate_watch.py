"""The gate after scheduling: a lesson whose gate turns red, turns green again, or is still red at its start.

`sessions_gate_watch` (beat, every 5 minutes) computes the gate of every scheduled lesson not yet started,
once per (school, platform, host), then:

Red, and `gate_red_since` empty: `gate_red_since` is set, a `SessionAlert` of kind GATE_RED records the
reasons, and each person to tell (the host and the school's headteachers) gets a notice (`schools.notices`).
Each of them hears once of each red spell of each lesson:
- starting more than 24 hours ahead: in their next daily digest (`schools.digest`); no email at once;
- starting within 24 hours: by email, one per person naming every such lesson not told yet. Lessons turning
  red a few minutes apart (one incident reaching several lessons; a PIA going out of date) make one email:
  a person is emailed once their oldest untold notice is `COALESCE_FOR` old, or at once when one of their
  lessons starts within `TELL_AT_ONCE_WITHIN`.
Red, and invitations already gone (`sessions.guardian_notices` says who was invited): each invited guardian
gets one "cannot go ahead as planned: do not use the invitation" email, once per red spell
(`parents_told_off_at`); the claim meanwhile sends nothing (it re-checks the gate).

Green again, `gate_red_since` set: the mark is cleared (a later red is told again) and notices nobody
heard yet are dropped. Those emailed that it could not go ahead (the notices of this red spell with `told_at`)
are emailed once that it can go ahead again, one email per person per run naming every such lesson; nobody
who had not been told hears of it. If the parents had been told the lesson could not go ahead, the lesson resumes: its
revision goes up (audited as a `session.updated` with nothing changed) and `changes.deliveries_revise`
sends those already invited a fresh invitation, through the claim's usual checks, that replaces the one
they were told not to use.

Still red at its start (`sessions_not_held`, same run): a lesson marked red whose start has come within
the last day, its gate still red now, is marked "did not go ahead" (`VideoSession.Status.NOT_HELD`), with
an alert emailed to its host; invited guardians not told yet are told it did not go ahead. A lesson whose
gate is green again by then only loses its red mark.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models.functions import Now
from django.utils import timezone

from outbox.services import email_queue
from schools.audit import audit_log
from schools.models import DigestItem, Membership, Role
from schools.notices import digest_items_add, digest_items_untold

from .changes import deliveries_revise
from .delivery_steps import session_alert_raise, session_path, session_url
from .gate import Gate, session_gate
from .guardian_notices import guardians_tell, invited_guardians
from .models import SessionAlert, VideoSession

# A lesson this close to its start that cannot go ahead is told at once, not in the next daily digest.
URGENT_WITHIN = timedelta(hours=24)
# Lessons turning red within this long of each other are told in one email per person ...
COALESCE_FOR = timedelta(minutes=4)
# ... unless one of them starts this soon.
TELL_AT_ONCE_WITHIN = timedelta(minutes=30)
# A lesson still red this long after its start is left as it is (the watch was not running).
NOT_HELD_LOOKBACK = timedelta(days=1)


@dataclass
class GateWatchResult:
    checked: int = 0
    red: int = 0
    alerted: int = 0
    cleared: int = 0
    told: int = 0  # staff emailed at once about lessons within 24 hours
    parents_told: int = 0  # guardians told a lesson cannot go ahead
    resumed: int = 0  # lessons green again after their parents were told
    told_green: int = 0  # staff emailed that lessons they were told of can go ahead again
    not_held: int = 0  # lessons still red at their start


def _gate_red_recipients(session: VideoSession) -> list:
    """The host and the school's headteachers (active, with an address), each once."""
    users = [session.host] if session.host.is_active else []
    users += [m.user for m in Membership.objects.filter(school_id=session.school_id, role=Role.HEADTEACHER,
                                                        user__is_active=True).select_related("user")]
    return list({user.pk: user for user in users if user.email}.values())


def _gate_red_mark(session_id: int, reasons: tuple[str, ...]) -> bool:
    """Mark the session red, record its alert, and leave a notice for each person to tell."""
    with transaction.atomic():
        session = (VideoSession.objects.select_for_update(no_key=True, of=("self",))
                   .filter(pk=session_id, status=VideoSession.Status.SCHEDULED, gate_red_since__isnull=True,
                           starts_at__gt=Now())
                   .select_related("school__organisation", "host").first())
        if session is None:
            return False  # marked already by another run, cancelled or started
        session.gate_red_since = timezone.now()
        session.save(update_fields=["gate_red_since"])
        message = SessionAlert.GATE_RED_PREFIX + " ".join(reasons)
        SessionAlert.objects.create(session=session, kind=SessionAlert.Kind.GATE_RED, message=message[:500])
        recipients = _gate_red_recipients(session)
        digest_items_add(users=recipients, kind=DigestItem.Kind.GATE_RED, school=session.school, related=session,
                         title=session.title, text="\n".join(reasons), path=session_path(session))
        audit_log(actor=None, action="session.alert_raised", obj=session,
                  data={"kind": SessionAlert.Kind.GATE_RED, "alerts": 1, "recipients": len(recipients)})
    return True


def _parents_tell_off(session_id: int, *, held_back: bool = False) -> int | None:
    """Tell each invited guardian (not told yet in this red spell) that the lesson cannot go ahead, or did
    not (`held_back`). None when there was nobody to tell or they were told already."""
    with transaction.atomic():
        session = (VideoSession.objects.select_for_update(no_key=True, of=("self",))
                   .filter(pk=session_id, parents_told_off_at__isnull=True)
                   .select_related("school__organisation", "purpose").first())
        if session is None:
            return None
        rows = invited_guardians(session)
        if not rows:
            return None
        told = guardians_tell(session=session, rows=rows, template="session-not-going-ahead", held_back=held_back)
        session.parents_told_off_at = timezone.now()
        session.save(update_fields=["parents_told_off_at"])
        audit_log(actor=None, action="session.parents_told_off", obj=session,
                  data={"guardians_told": told, "did_not_go_ahead": held_back})
    return told


def _resume(session_id: int) -> bool:
    """Green again after its parents were told it could not go ahead: a fresh invitation replaces the one
    they were told not to use (see the module docstring)."""
    with transaction.atomic():
        session = (VideoSession.objects.select_for_update(no_key=True, of=("self",))
                   .filter(pk=session_id, status=VideoSession.Status.SCHEDULED, parents_told_off_at__isnull=False,
                           starts_at__gt=Now())
                   .select_related("school__organisation", "purpose").first())
        if session is None:
            return False
        session.revision += 1
        session.parents_told_off_at = None
        session.save(update_fields=["revision", "parents_told_off_at"])
        audit_log(actor=None, action="session.updated", obj=session,
                  data={"changed": [], "revision": session.revision, "resumed": True,
                        "starts_at": session.starts_at.isoformat()})
        deliveries_revise(session=session)
    return True


def _lesson(session: VideoSession, *, gate: Gate | None = None, parents_told: bool = False, reader=None,
            heads: set[tuple[int, int]] = frozenset()) -> dict:
    """One lesson as the staff emails name it. `gate` (red): each failing check's reasons with who can fix it.
    `reader`: whether they are the school's headteacher (who can put it right) or only its host (who cannot,
    and may cancel or wait)."""
    school = session.school
    head = reader is not None and (reader.pk, session.school_id) in heads
    return {"title": session.title, "starts_at": timezone.localtime(session.starts_at, school.tz),
            "time_zone": school.time_zone, "school_name": school.name,
            "checks": [{"reasons": check.reasons, "fixer": check.fixer} for check in gate.failing] if gate else [],
            "host_name": session.host.get_full_name() or session.host.get_username(), "link": session_url(session),
            "parents_told": parents_told, "reader_is_head": head,
            "reader_is_host": reader is not None and reader.pk == session.host_id and not head}


def _headteachers(users, sessions) -> set[tuple[int, int]]:
    """(user id, school id) of the headteachers among `users` at the schools of `sessions`. One query."""
    return set(Membership.objects.filter(user_id__in={u.pk for u in users}, role=Role.HEADTEACHER,
                                         school_id__in={s.school_id for s in sessions})
               .values_list("user_id", "school_id"))


def _gate_red_tell_urgent(red_soon: dict[int, tuple[VideoSession, Gate]]) -> int:
    """Email everyone not told yet of these red lessons (starting within 24 hours), once their oldest untold
    notice is `COALESCE_FOR` old or one of their lessons starts within `TELL_AT_ONCE_WITHIN`: one email per
    person naming all of theirs. The notices are marked told in the same transaction (at-most-once per
    notice; the outbox then sends at-least-once). Returns how many people were emailed."""
    if not red_soon:
        return 0
    now = timezone.now()
    with transaction.atomic():
        items = list(digest_items_untold(kind=DigestItem.Kind.GATE_RED, related_type=VideoSession._meta.label_lower,
                                         related_ids=red_soon)
                     .select_for_update(skip_locked=True, of=("self",)).select_related("user").order_by("pk"))
        per_user: dict[int, list[DigestItem]] = defaultdict(list)
        for item in items:
            per_user[item.user_id].append(item)
        told = []
        heads = _headteachers({item.user for item in items}, [session for session, _ in red_soon.values()])
        for user_items in per_user.values():
            sessions = sorted({red_soon[int(i.related_id)][0] for i in user_items}, key=lambda s: (s.starts_at, s.pk))
            waited = now - min(i.created_at for i in user_items) >= COALESCE_FOR
            if not waited and sessions[0].starts_at - now > TELL_AT_ONCE_WITHIN:
                continue  # more may turn red in the next few minutes: one email for them all
            user = user_items[0].user
            parents = dict(VideoSession.objects.filter(pk__in=[s.pk for s in sessions])
                           .values_list("pk", "parents_told_off_at"))
            schools = {s.school_id for s in sessions}
            email_queue(template="session-gate-red", to=user.email,
                        school=sessions[0].school if len(schools) == 1 else None,
                        organisation=sessions[0].school.organisation,
                        related=sessions[0] if len(sessions) == 1 else user,
                        context={"recipient": user,
                                 "lessons": [_lesson(s, gate=red_soon[s.pk][1], parents_told=parents[s.pk] is not None,
                                                     reader=user, heads=heads) for s in sessions]})
            told += user_items
        DigestItem.objects.filter(pk__in=[item.pk for item in told]).update(told_at=now)
    return len({item.user_id for item in told})


def _gate_green_again(session_ids: list[int], parents_told: set[int]) -> tuple[int, int]:
    """Lessons green again before their start: clear their red mark, drop the notices nobody heard of, and
    email once each person told of this red spell (notices made since `gate_red_since`, with `told_at`) that it
    can go ahead again, one email naming all of theirs. `parents_told`: the lessons whose parents get a fresh
    invitation (`_resume`). One transaction: clearing the mark is what records that they were told
    (at-most-once; the outbox then sends at-least-once). Returns (lessons cleared, people emailed)."""
    related_type = VideoSession._meta.label_lower
    with transaction.atomic():
        sessions = {s.pk: s for s in VideoSession.objects.select_for_update(no_key=True, of=("self",))
                    .filter(pk__in=session_ids, gate_red_since__isnull=False)
                    .select_related("school__organisation", "host").order_by("pk")}
        if not sessions:
            return 0, 0
        items = (DigestItem.objects.filter(kind=DigestItem.Kind.GATE_RED, related_type=related_type,
                                           related_id__in=[str(pk) for pk in sessions], told_at__isnull=False)
                 .select_related("user").order_by("pk"))
        per_user: dict[int, dict[int, VideoSession]] = defaultdict(dict)
        users = {}
        for item in items:
            session = sessions[int(item.related_id)]
            if item.created_at >= session.gate_red_since and item.user.is_active and item.user.email:
                per_user[item.user_id][session.pk] = session
                users[item.user_id] = item.user
        for user_id, theirs in per_user.items():
            lessons = sorted(theirs.values(), key=lambda s: (s.starts_at, s.pk))
            schools = {s.school_id for s in lessons}
            email_queue(template="session-gate-green", to=users[user_id].email,
                        school=lessons[0].school if len(schools) == 1 else None,
                        organisation=lessons[0].school.organisation,
                        related=lessons[0] if len(lessons) == 1 else users[user_id],
                        context={"recipient": users[user_id],
                                 "lessons": [_lesson(s, parents_told=s.pk in parents_told) for s in lessons]})
        VideoSession.objects.filter(pk__in=list(sessions)).update(gate_red_since=None)
        # Nobody heard of these yet, and they are no longer true.
        digest_items_untold(kind=DigestItem.Kind.GATE_RED, related_type=related_type, related_ids=sessions).delete()
    return len(sessions), len(per_user)


def sessions_not_held(result: GateWatchResult) -> None:
    """Lessons marked red whose start has come: still red, they did not go ahead (see the module docstring)."""
    now = timezone.now()
    started = (VideoSession.objects.filter(status=VideoSession.Status.SCHEDULED, gate_red_since__isnull=False,
                                           starts_at__lte=Now(), starts_at__gt=now - NOT_HELD_LOOKBACK)
               .select_related("school__organisation", "platform", "host").order_by("pk"))
    for session in started:
        gate = session_gate(school=session.school, platform=session.platform, host=session.host)
        if gate.ok:
            VideoSession.objects.filter(pk=session.pk).update(gate_red_since=None)
            continue
        with transaction.atomic():
            locked = (VideoSession.objects.select_for_update(no_key=True, of=("self",))
                      .filter(pk=session.pk, status=VideoSession.Status.SCHEDULED)
                      .select_related("school__organisation", "host").first())
            if locked is None:
                continue
            locked.status = VideoSession.Status.NOT_HELD
            locked.save(update_fields=["status"])
            session_alert_raise(session=locked, kind=SessionAlert.Kind.NOT_HELD,
                                message="The lesson did not go ahead: at its start it still could not. "
                                        + " ".join(gate.reasons))
            audit_log(actor=None, action="session.not_held", obj=locked, data={"reasons": list(gate.reasons)})
        result.not_held += 1
        result.parents_told += _parents_tell_off(session.pk, held_back=True) or 0


def sessions_gate_watch() -> GateWatchResult:
    """Every 5 minutes (beat): see the module docstring."""
    result = GateWatchResult()
    gates: dict[tuple, Gate] = {}
    sessions = (VideoSession.objects.filter(status=VideoSession.Status.SCHEDULED, starts_at__gt=Now())
                .select_related("school__organisation", "platform", "host").order_by("pk"))
    green_marked, resumed = [], []
    red_soon: dict[int, tuple[VideoSession, Gate]] = {}
    red_sent: list[int] = []
    soon = timezone.now() + URGENT_WITHIN
    for session in sessions.iterator(chunk_size=500):
        result.checked += 1
        key = (session.school_id, session.platform_id, session.host_id)
        if key not in gates:
            gates[key] = session_gate(school=session.school, platform=session.platform, host=session.host)
        gate = gates[key]
        if gate.ok:
            if session.gate_red_since is not None:
                green_marked.append(session.pk)
            if session.parents_told_off_at is not None:
                resumed.append(session.pk)
            continue
        result.red += 1
        if session.gate_red_since is None and _gate_red_mark(session.pk, gate.reasons):
            result.alerted += 1
        if session.parents_told_off_at is None and session.send_at <= timezone.now():
            red_sent.append(session.pk)
        if session.starts_at <= soon:
            red_soon[session.pk] = (session, gate)
    if green_marked:
        result.cleared, result.told_green = _gate_green_again(green_marked, set(resumed))
    result.resumed = sum(_resume(pk) for pk in resumed)
    for pk in red_sent:
        result.parents_told += _parents_tell_off(pk) or 0
    result.told = _gate_red_tell_urgent(red_soon)
    sessions_not_held(result)
    return result
