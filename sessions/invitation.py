"""The invitation email, made from a claimed row (`Claimed`, what `sessions.dispatch` claims): its context,
its text and HTML rendered once per batch and session, and the message itself, framed (`sessions.mailfast`)
when it goes through Django's SMTP backend."""

import re
import secrets
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import conditional_escape

from consent.models import Guardian, Pupil
from outbox.services import one_line, text_engine

from .ics import invitation_ics
from .mailfast import FramedEmail
from .models import Delivery, VideoSession
from .protocol import effective_protocol, parent_reminders
from .revisions import revision_changes


@dataclass
class Claimed:
    delivery: Delivery
    session: VideoSession
    guardian: Guardian
    pupils: list[Pupil]
    withdraw_link: str
    # What the claim found the row at (pending or retry): a row claimed but never tried goes back to it.
    previous_status: str = Delivery.Status.PENDING
    # Parts of the email that are the same for every guardian of the session, built once per batch and
    # shared by that session's claims (see `_session_parts` below).
    shared: dict = field(default_factory=dict)


def _session_parts(claimed: Claimed) -> dict:
    """What every guardian's invitation to this session shares (the protocol's reminders, the .ics), built
    once per batch: reading the protocol is two queries, and the calendar file is the same bytes for all."""
    parts = claimed.shared
    if "ics" not in parts:
        parts["reminders"] = parent_reminders(effective_protocol(claimed.session.school)), False
        parts["ics"] = invitation_ics(claimed.session)
    return parts


def invitation_context(claimed: Claimed) -> dict:
    session, school = claimed.session, claimed.session.school
    reminders, reminders_minimal = _session_parts(claimed)["reminders"]
    names = [p.first_name for p in claimed.pupils]
    starts_at = timezone.localtime(session.starts_at, school.tz)
    # Sent before for an older revision: this email replaces that one, and says what changed.
    replaces_earlier = claimed.delivery.sent_revision is not None
    if replaces_earlier:
        # Once per batch and earlier revision, not per message: a change re-sends to everyone invited.
        changes = claimed.shared.setdefault("changes", {})
        since = claimed.delivery.sent_revision
        if since not in changes:
            changes[since] = revision_changes(session=session, since_revision=since)
        changed = changes[since]
    return {
        "replaces_earlier": replaces_earlier,
        "changed": changed if replaces_earlier else [],
        "site_url": settings.SITE_URL,
        "school": school,
        "organisation": school.organisation,
        "guardian": claimed.guardian,
        "session": session,
        "children": " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0],
        "starts_at": starts_at,
        "ends_at": timezone.localtime(session.ends_at, school.tz),
        "time_zone": school.time_zone,
        "host_name": session.host.get_full_name() or session.host.get_username(),
        "reminders": reminders,
        "reminders_minimal": reminders_minimal,
        "withdraw_link": claimed.withdraw_link,
    }


INVITATION_TEMPLATES = ("emails/session-invitation-subject.txt", "emails/session-invitation-body.txt",
                        "emails/session-invitation-body.html")
# What differs from one guardian's invitation to the next of the same session (and revision).
PER_GUARDIAN = ("guardian", "children", "withdraw_link")


def invitation_render(context: dict) -> tuple[str, str, str]:
    """The invitation's subject, text and HTML: the templates rendered in full."""
    text = text_engine()
    return (one_line(text.render_to_string(INVITATION_TEMPLATES[0], context)),
            text.render_to_string(INVITATION_TEMPLATES[1], context),
            render_to_string(INVITATION_TEMPLATES[2], context))


def _invitation_render_shared(claimed: Claimed, context: dict) -> tuple[str, str, str]:
    """`invitation_render`, with the templates rendered once per batch and session: a marker stands for
    each of `PER_GUARDIAN`, then each message fills in its own values (escaped in the HTML, as the template
    would). Rendering three templates per message was most of the send path's time. The markers carry a
    random key of the batch, so nothing typed into a title or a name can pose as one; and the children
    marker says whether there are several (the templates choose "is" or "are" by it). The result is the
    full render's, to the byte: tests/sessions/test_dispatch_queries.py checks it."""
    parts = claimed.shared
    key = secrets.token_hex(8) if "marker_key" not in parts else parts["marker_key"]
    parts["marker_key"] = key
    several = " and " in context["children"]
    variant = (context["replaces_earlier"], tuple(str(item) for item in context["changed"]), several)
    rendered = parts.setdefault("rendered", {})
    if variant not in rendered:
        marked = {**context, **{name: f"\x1f{key}:{name}\x1f" for name in PER_GUARDIAN}}
        if several:
            marked["children"] = f"\x1f{key}:children and \x1f"
        text = text_engine()
        rendered[variant] = (text.render_to_string(INVITATION_TEMPLATES[0], marked),
                             text.render_to_string(INVITATION_TEMPLATES[1], marked),
                             render_to_string(INVITATION_TEMPLATES[2], marked))
    subject, body, html = rendered[variant]
    marker = re.compile(f"\x1f{key}:({'|'.join(PER_GUARDIAN)})(?: and )?\x1f")
    values = {name: str(context[name]) for name in PER_GUARDIAN}
    escaped = {name: conditional_escape(value) for name, value in values.items()}
    return (one_line(marker.sub(lambda m: values[m[1]], subject)), marker.sub(lambda m: values[m[1]], body),
            marker.sub(lambda m: escaped[m[1]], html))


def invitation_email(claimed: Claimed, connection=None) -> EmailMultiAlternatives:
    """The invitation, as an ordinary email for any backend; through Django's SMTP backend its bytes come
    from a frame serialised once per batch and session (`sessions.mailfast`): serialising each message
    in full, headers folded and boundaries searched, was most of a message's time on the send path."""
    subject, body, html = _invitation_render_shared(claimed, invitation_context(claimed))
    email = FramedEmail(
        subject=subject,
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[claimed.delivery.recipient],
        headers={"Message-ID": claimed.delivery.message_id, "Auto-Submitted": "auto-generated"},
        connection=connection,
        frames=claimed.shared,
    )
    email.attach_alternative(html, "text/html")
    email.attach("invitation.ics", _session_parts(claimed)["ics"], "text/calendar")
    return email
