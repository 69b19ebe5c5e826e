"""The demo's email backend: every message sent outside the outbox (the session invitations, which are
`Delivery` rows sent directly over one connection per batch) is also recorded as a sent `OutboxMessage`,
so that the demo mailbox, which lists outbox rows, shows it beside everything else.

Messages the outbox sent itself already have their row (matched by Message-ID) and are not recorded twice.
Files are still written to EMAIL_FILE_PATH, as Django's file backend does. Demo mode only: in production the
invitations' own rows (`Delivery`) are the record, and no copy of a meeting password is kept.
"""

import base64
import json

from django.core.mail import make_msgid
from django.core.mail.backends.filebased import EmailBackend as FileBackend
from django.utils import timezone

from .models import OutboxMessage


def _html(message) -> str:
    return next((content for content, mimetype in getattr(message, "alternatives", ()) if mimetype == "text/html"),
                "")


def _attachments(message) -> str:
    items = []
    for attachment in message.attachments:
        if isinstance(attachment, tuple) and len(attachment) == 3:
            filename, content, mimetype = attachment
            data = content.encode() if isinstance(content, str) else bytes(content)
            items.append({"filename": filename, "mimetype": mimetype or "application/octet-stream",
                          "content": base64.b64encode(data).decode()})
    return json.dumps(items) if items else ""


def _school_of(message_id: str):
    """The school of the invitation this message is, if it is one (the demo mailbox shows the school)."""
    from sessions.models import Delivery

    delivery = Delivery.objects.filter(message_id=message_id).select_related("session__school__organisation").first()
    return (delivery.session.school, delivery) if delivery else (None, None)


class DemoMailboxBackend(FileBackend):
    def send_messages(self, email_messages):
        sent = super().send_messages(email_messages)
        for message in email_messages or ():
            message_id = message.extra_headers.get("Message-ID") or make_msgid()
            if OutboxMessage.objects.filter(message_id=message_id).exists():
                continue
            school, delivery = _school_of(message_id)
            now = timezone.now()
            OutboxMessage.objects.create(
                school=school, organisation=school.organisation if school else None,
                template="session-invitation" if delivery else "direct",
                recipient=", ".join(message.to)[:254], subject=message.subject[:300],
                body_text=message.body, body_html=_html(message), attachments=_attachments(message),
                related_type="video_sessions.delivery" if delivery else "",
                related_id=str(delivery.pk) if delivery else "",
                status=OutboxMessage.Status.SENT, attempts=1, sent_at=now, message_id=message_id,
            )
        return sent
