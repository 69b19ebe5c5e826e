"""Email: the one way Gatehouse sends mail.

`email_queue` renders a message and records it; a Celery task (`outbox_send`) claims and sends it after
the transaction commits; `outbox_sweep`, every minute, picks up whatever a lost task, a dead worker or a
transient error left behind. The database is the truth; the broker only says "look at these rows".

Delivery is at-least-once: a row is claimed (status `sending`, with a lease) and committed BEFORE we talk
to the mail server, and marked `sent` only after the server accepted it. If a worker dies between the
server's accept and our write, the lease expires, the sweeper counts that in `possible_duplicate` and
the message is sent again. That window is the only way to get a duplicate; closing it would mean
at-most-once, i.e. silently losing mail whenever a worker dies, which is worse for invitations.
"""

import base64
import json
import logging
import smtplib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection, make_msgid
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F, Model, Q, QuerySet
from django.template import Engine, engines
from django.template.loader import render_to_string
from django.utils import timezone

from schools.audit import SYSTEM, Actor, audit_log
from schools.models import Role
from schools.scope import StaffScope

from .models import OutboxMessage

logger = logging.getLogger(__name__)

Status = OutboxMessage.Status

# Ids per send task: one SMTP connection carries a whole batch.
SEND_BATCH_SIZE = 50
# Rows the sweeper handles per transaction, and transactions per run (beat calls it every minute).
SWEEP_BATCH_SIZE = 500
SWEEP_MAX_BATCHES = 20
# A claimable row whose task was handed to the broker longer ago than this is presumed lost.
LOST_TASK_AFTER = timedelta(minutes=1)
# Backoff after a transient error: 1, 2, 4, 8, 15, 15 … minutes (long waits live in the database).
RETRY_BASE_SECONDS = 60
RETRY_MAX_SECONDS = 15 * 60

LEASE_EXPIRED_ERROR = "The worker stopped while sending; the mail server may already have accepted it."


# ---------------------------------------------------------------------------------------------------
# Queueing


# Who reads the outbox: the people who fix addresses and answer for the school's mail.
OUTBOX_ROLES = frozenset({Role.HEADTEACHER, Role.OFFICE, Role.ORG_ADMIN})


def outbox_visible_to(scope: StaffScope) -> QuerySet:
    """School messages of the schools where the user holds an outbox role; organisation-wide messages
    for organisation roles. (A headteacher does not see another school's mail, nor the organisation's.)"""
    schools = scope.schools_where(OUTBOX_ROLES)
    organisations = [oid for oid, roles in scope.roles_by_organisation.items() if roles & OUTBOX_ROLES]
    return OutboxMessage.objects.filter(_belonging_to(schools, organisations))


def _belonging_to(school_ids: Iterable[int], organisation_ids: Iterable[int]) -> Q:
    """Messages of these schools, and organisation-wide messages of these organisations."""
    return Q(school_id__in=list(school_ids)) | Q(school__isnull=True, organisation_id__in=list(organisation_ids))


@lru_cache(maxsize=2)
def _text_engine(html_engine: Engine) -> Engine:
    """The project's template engine, without HTML autoescaping, for plain-text parts.

    Same directories, app templates, libraries and builtins as the HTML engine, so `-body.txt` templates
    can `{% extends "emails/_base.txt" %}` like any other; keyed on the HTML engine so that a settings
    change (in tests) that rebuilds it also rebuilds this one.
    """
    return Engine(
        dirs=html_engine.dirs,
        app_dirs=html_engine.app_dirs,
        context_processors=[],
        debug=html_engine.debug,
        libraries=html_engine.libraries,
        builtins=[b for b in html_engine.builtins if b not in Engine.default_builtins],
        string_if_invalid=html_engine.string_if_invalid,
        autoescape=False,
    )


def text_engine() -> Engine:
    return _text_engine(engines["django"].engine)


def one_line(text: str) -> str:
    """Collapse all whitespace, CR and LF included, so a subject can never inject a header."""
    return " ".join(text.split())


def check_address(to: str) -> str:
    to = to.strip()
    if any(ch in to for ch in "\r\n,;") or not to:
        raise ValueError("An outbox message goes to exactly one address.")
    try:
        validate_email(to)
    except ValidationError as exc:
        raise ValueError(f"Not an email address: {to!r}") from exc
    return to


def _encode_attachments(attachments: Iterable[tuple[str, bytes | str, str]] | None) -> str:
    items = []
    for filename, content, mimetype in attachments or ():
        if one_line(filename) != filename or one_line(mimetype) != mimetype or "/" not in mimetype:
            raise ValueError("An attachment needs a one-line file name and a type such as text/calendar.")
        data = content.encode() if isinstance(content, str) else bytes(content)
        items.append({"filename": filename, "mimetype": mimetype, "content": base64.b64encode(data).decode()})
    return json.dumps(items) if items else ""


def email_queue(
    *,
    template: str,
    to: str,
    context: dict[str, Any],
    school=None,
    organisation=None,
    related: Model | None = None,
    attachments: Iterable[tuple[str, bytes | str, str]] | None = None,
) -> OutboxMessage:
    """Render `templates/emails/<template>-subject.txt`, `-body.txt` and `-body.html`, record the message,
    and send it once the surrounding transaction (if any) commits.

    `attachments` are `(filename, content, mimetype)` triples, as for `EmailMessage.attach`.
    """
    to = check_address(to)
    if organisation is None and school is not None:
        organisation = school.organisation
    full_context = {"site_url": settings.SITE_URL, "school": school, "organisation": organisation, **context}
    text = text_engine()
    subject = one_line(text.render_to_string(f"emails/{template}-subject.txt", full_context))
    body_text = text.render_to_string(f"emails/{template}-body.txt", full_context)
    body_html = render_to_string(f"emails/{template}-body.html", full_context)
    now = timezone.now()
    message = OutboxMessage.objects.create(
        school=school,
        organisation=organisation,
        template=template,
        recipient=to,
        subject=subject[:300],
        body_text=body_text,
        body_html=body_html,
        attachments=_encode_attachments(attachments),
        related_type=related._meta.label_lower if related is not None else "",
        related_id=str(related.pk) if related is not None else "",
        status=Status.QUEUED,
        next_attempt_at=now,
        dispatched_at=now,
        message_id=make_msgid(domain=settings.EMAIL_MESSAGE_ID_DOMAIN),
    )
    _send_after_commit(message.pk)
    return message


class _SendAfterCommit:
    """The on-commit callback of one queued message. All those of one transaction share a batch, and the
    first to run dispatches the whole of it: a bulk send (a hundred invitations in one transaction) then
    becomes a few tasks on one connection each, not a hundred tasks on a hundred connections."""

    def __init__(self, batch: list[int]):
        self.batch = batch

    def __call__(self) -> None:
        ids = list(self.batch)
        self.batch.clear()
        if ids:
            outbox_dispatch(ids)


def _send_after_commit(message_id: int) -> None:
    connection = transaction.get_connection()
    batch: list[int] | None = None
    if connection.in_atomic_block:
        # The newest pending callback is nearly always the last one registered, so this stays cheap.
        # If a savepoint holding this message is later rolled back, its id may still go out with the
        # batch: the send task finds no claimable row and skips it.
        for _savepoints, func, _robust in reversed(connection.run_on_commit):
            if isinstance(func, _SendAfterCommit):
                batch = func.batch
                break
    if batch is None:
        batch = []
    batch.append(message_id)
    transaction.on_commit(_SendAfterCommit(batch))


def outbox_dispatch(message_ids: Sequence[int]) -> None:
    """Hand ids to the broker in batches. Call it after commit only.

    If the broker is down the rows stay claimable and the sweeper sends them once it is back, so the
    error is logged rather than turned into a failed web request.
    """
    from kombu.exceptions import OperationalError

    from .tasks import outbox_send

    for start in range(0, len(message_ids), SEND_BATCH_SIZE):
        batch = list(message_ids[start : start + SEND_BATCH_SIZE])
        try:
            outbox_send.delay(batch)
        except (OperationalError, OSError):
            logger.warning("Could not hand outbox messages %s to the broker; the sweeper will send them", batch,
                           exc_info=True)


def email_test_message(*, to: str, actor=None) -> OutboxMessage:
    """A message for operators checking the mail settings (`manage.py send_test_email`)."""
    actor = actor or Actor(kind=SYSTEM.kind, label="Operator (manage.py send_test_email)")
    with transaction.atomic():
        message = email_queue(
            template="test-message",
            to=to,
            context={"requested_at": timezone.now(), "backend": settings.EMAIL_BACKEND},
        )
        audit_log(actor=actor, action="email.test_queued", obj=message, data={"message_id": message.message_id})
    return message


# ---------------------------------------------------------------------------------------------------
# Sending


@dataclass(frozen=True)
class SendError:
    """What went wrong, classified: retry later or give up; and whether the connection is still usable."""

    transient: bool
    connection_broken: bool
    reason: str  # short and address-free: goes into the audit trail
    detail: str = ""  # the server's words: goes into last_error on the row
    expected: bool = True  # False: a bug or an unknown condition, worth a traceback in the log

    @property
    def text(self) -> str:
        return f"{self.reason}: {self.detail}"[:500] if self.detail else self.reason


def _describe(exc: BaseException) -> str:
    try:
        return str(exc)[:300]
    except Exception:  # some libraries' __str__ assumes a response that a network error never had
        return repr(exc.args)[:300]


def _smtp_text(message: bytes | str) -> str:
    return (message.decode(errors="replace") if isinstance(message, bytes) else str(message)).strip()[:300]


def classify_send_error(exc: BaseException) -> SendError:
    """SMTP 4xx, disconnects, timeouts and refused connections are transient; SMTP 5xx and refused
    recipients are permanent; an email service's 429 and 5xx are transient, its other refusals are not."""
    name = type(exc).__name__
    if isinstance(exc, SoftTimeLimitExceeded):
        return SendError(True, True, "stopped by the task time limit")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(_smtp_text(msg) for _, msg in exc.recipients.values())
        transient = bool(codes) and all(400 <= code < 500 for code in codes)
        return SendError(transient, False, f"recipient refused (SMTP {'/'.join(map(str, codes))})", detail)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SendError(True, True, "the mail server disconnected", _describe(exc))
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        # A settings problem, not this message's: retry (bounded) while someone fixes the credentials.
        return SendError(True, True, f"SMTP authentication failed ({exc.smtp_code})", _smtp_text(exc.smtp_error))
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        broken = code == 421 or isinstance(exc, smtplib.SMTPConnectError)
        return SendError(400 <= code < 500, broken, f"SMTP {code}", _smtp_text(exc.smtp_error))
    if isinstance(exc, AnymailRecipientsRefused):
        return SendError(False, False, "recipient refused by the email service", _describe(exc))
    if isinstance(exc, AnymailAPIError):
        status = exc.status_code
        if status is None:
            return SendError(True, True, "email service unreachable", _describe(exc))
        transient = status == 429 or status >= 500
        return SendError(transient, False, f"email service answered {status}", _describe(exc))
    if isinstance(exc, TimeoutError):
        return SendError(True, True, "timed out talking to the mail server", _describe(exc))
    if isinstance(exc, ConnectionRefusedError):
        return SendError(True, True, "connection to the mail server refused", _describe(exc))
    if isinstance(exc, OSError | smtplib.SMTPException):
        return SendError(True, True, f"mail connection error ({name})", _describe(exc))
    if isinstance(exc, ValueError):
        # A malformed message or address (BadHeaderError, AnymailInvalidAddress): sending again won't help.
        return SendError(False, False, f"message rejected before sending ({name})", _describe(exc))
    # Unknown: retry (bounded by EMAIL_MAX_ATTEMPTS) rather than give up on something that may pass.
    return SendError(True, False, f"unexpected error ({name})", _describe(exc), expected=False)


def send_lease() -> timedelta:
    return timedelta(seconds=2 * settings.EMAIL_TIMEOUT + 30)


def _batch_budget_seconds() -> float:
    """Stop claiming new rows while there is still time to finish one within the soft time limit."""
    soft_limit = getattr(settings, "CELERY_TASK_SOFT_TIME_LIMIT", None) or 100
    return max(10.0, soft_limit - 2 * settings.EMAIL_TIMEOUT - 10)


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_MAX_SECONDS))


def outbox_claim(message_id: int) -> OutboxMessage | None:
    """Take one due row for sending, in one short transaction. None if it is not ours to send (already
    sent, being sent by another worker, not yet due, or gone)."""
    now = timezone.now()
    with transaction.atomic():
        message = (
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(pk=message_id, status__in=OutboxMessage.CLAIMABLE, next_attempt_at__lte=now)
            .first()
        )
        if message is None:
            return None
        message.status = Status.SENDING
        message.attempts += 1
        message.lease_until = now + send_lease()
        message.save(update_fields=["status", "attempts", "lease_until"])
    return message


def build_email(message: OutboxMessage, connection=None) -> EmailMultiAlternatives:
    email = EmailMultiAlternatives(
        subject=message.subject,
        body=message.body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[message.recipient],
        headers={"Message-ID": message.message_id, "Auto-Submitted": "auto-generated"},
        connection=connection,
    )
    email.attach_alternative(message.body_html, "text/html")
    for attachment in message.attachment_list():
        email.attach(attachment.filename, attachment.content, attachment.mimetype)
    return email


def _record_sent(message: OutboxMessage) -> None:
    now = timezone.now()
    # Not conditional on still holding the lease: the server accepted it, so it is sent, whatever the
    # sweeper did in the meantime (that case is already counted in possible_duplicate).
    OutboxMessage.objects.filter(pk=message.pk).exclude(status=Status.SENT).update(
        status=Status.SENT, sent_at=now, lease_until=None, next_attempt_at=None, dispatched_at=None
    )
    logger.info("Sent outbox message %s %s (%s), attempt %s", message.pk, message.message_id,
                message.template, message.attempts)


def _record_failure(message: OutboxMessage, error: SendError) -> str:
    """Record a retry or a final failure; returns the new status. A final failure is audited and logged
    as an error, and shows on the outbox page and in the dashboard's count."""
    final = not error.transient or message.attempts >= settings.EMAIL_MAX_ATTEMPTS
    status = Status.FAILED if final else Status.RETRY
    now = timezone.now()
    text = error.text
    if final and error.transient:
        text = f"Gave up after {message.attempts} attempts. {text}"[:500]
    with transaction.atomic():
        # Only while the row is still ours: if our lease expired and another worker took it, leave it.
        updated = OutboxMessage.objects.filter(
            pk=message.pk, status=Status.SENDING, attempts=message.attempts
        ).update(
            status=status,
            last_error=text,
            lease_until=None,
            dispatched_at=None,
            next_attempt_at=None if final else now + retry_delay(message.attempts),
        )
        if updated and final:
            audit_log(
                actor=None,
                action="email.failed",
                obj=message,
                data={"template": message.template, "attempts": message.attempts, "reason": error.reason,
                      "message_id": message.message_id},
            )
    if not updated:
        logger.warning("Outbox message %s was taken over by another worker before we recorded: %s",
                       message.pk, error.reason)
    elif final:
        logger.error("Outbox message %s %s (%s) failed after %s attempt(s): %s", message.pk,
                     message.message_id, message.template, message.attempts, error.reason)
    else:
        logger.warning("Outbox message %s %s (%s) will be retried (attempt %s): %s", message.pk,
                       message.message_id, message.template, message.attempts, error.reason)
    return status


@dataclass
class BatchResult:
    sent: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)  # not tried: connection broke, or out of time


class MailBatch:
    """One mail server connection for a batch of messages, shared by every send loop (the outbox's and
    the invitations'): opened lazily, so that a batch with nothing left to send never connects (left to
    `send_messages()`, it would be opened and closed per message); closed at the end whatever happened;
    with a time budget, so a loop stops starting new sends while there is still time to finish one
    within the task's soft time limit.

        with MailBatch() as batch:
            for item in items:
                if batch.out_of_time(): … give the rest back; break
                error = batch.send(lambda connection: build_email(item, connection), what=…)
                if error is None: … record sent
                else: … record retry or failed; if error.connection_broken: … leave the rest; break
    """

    def __init__(self, *, budget_seconds: float | None = None, at_most_seconds: float | None = None):
        """`budget_seconds`: the time budget (by default what the soft time limit leaves); `at_most_seconds`:
        a cap on the default, for a loop whose rows wait their turn under a shorter lease."""
        self.connection = get_connection(timeout=settings.EMAIL_TIMEOUT)
        self.opened = False
        self.started = time.monotonic()
        self.budget_seconds = _batch_budget_seconds() if budget_seconds is None else budget_seconds
        if at_most_seconds is not None:
            self.budget_seconds = min(self.budget_seconds, at_most_seconds)

    def __enter__(self) -> "MailBatch":
        return self

    def __exit__(self, *exc_info) -> None:
        if self.opened:
            self.connection.close()

    def out_of_time(self) -> bool:
        return time.monotonic() - self.started > self.budget_seconds

    def send(self, build: Callable[[Any], EmailMessage], *, what: str) -> SendError | None:
        """Build one message on this connection and send it. None once the server accepted it, else the
        classified error (never raised: the caller records it). `what` names the message in the log."""
        try:
            if not self.opened:
                self.opened = True  # close() in any case, even if open() fails half-way (after STARTTLS)
                self.connection.open()
            if not self.connection.send_messages([build(self.connection)]):
                raise ValueError("the email backend accepted no recipient")
        except Exception as exc:
            error = classify_send_error(exc)
            if not error.expected:
                logger.exception("Unexpected error sending %s", what)
            return error
        return None


def outbox_send_batch(message_ids: Iterable[int]) -> BatchResult:
    """Claim and send each message over one connection. At-least-once (see the module docstring).

    The mail server is only ever spoken to outside a transaction. When the connection breaks the rest
    of the batch is left claimable for the sweeper (a natural backoff against a server that is down);
    when time runs short the rest goes to a fresh task.
    """
    ids = list(dict.fromkeys(int(pk) for pk in message_ids))
    result = BatchResult()
    with MailBatch() as batch:
        for index, pk in enumerate(ids):
            if batch.out_of_time():
                result.left = ids[index:]
                outbox_dispatch(result.left)
                break
            try:
                message = outbox_claim(pk)
            except ValueError:
                # A body no key in FIELD_ENCRYPTION_KEYS can decrypt: it can never be sent.
                _fail_unreadable(pk)
                result.failed.append(pk)
                continue
            if message is None:
                result.skipped.append(pk)
                continue
            error = batch.send(lambda connection: build_email(message, connection),  # noqa: B023 (called at once)
                               what=f"outbox message {pk}")
            if error is None:
                _record_sent(message)
                result.sent.append(pk)
                continue
            status = _record_failure(message, error)
            (result.failed if status == Status.FAILED else result.retry).append(pk)
            if error.connection_broken:
                result.left = ids[index + 1 :]
                break
    return result


def _fail_unreadable(message_id: int) -> None:
    error = "Cannot decrypt the stored message: its encryption key is no longer in FIELD_ENCRYPTION_KEYS."
    with transaction.atomic():
        updated = OutboxMessage.objects.filter(pk=message_id, status__in=OutboxMessage.CLAIMABLE).update(
            status=Status.FAILED, last_error=error, next_attempt_at=None, dispatched_at=None
        )
        if updated:
            message = OutboxMessage.objects.defer("body_text", "body_html", "attachments").get(pk=message_id)
            audit_log(actor=None, action="email.failed", obj=message,
                      data={"template": message.template, "attempts": message.attempts,
                            "reason": "undecryptable", "message_id": message.message_id})
    logger.error("Outbox message %s: %s", message_id, error)


# ---------------------------------------------------------------------------------------------------
# Sweeping


@dataclass
class SweepResult:
    dispatched: int = 0
    lease_expired: int = 0
    lease_failed: int = 0


def _sweep_expired_leases(limit: int) -> tuple[int, int]:
    """Take back rows whose worker presumably died mid-send: retry them (possibly a duplicate, counted),
    or fail them if that was their last attempt. Constant queries per batch, plus one audit entry per
    final failure."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(status=Status.SENDING, lease_until__lt=now)
            .order_by("lease_until")
            .values_list("pk", "attempts")[:limit]
        )
        again = [pk for pk, attempts in rows if attempts < settings.EMAIL_MAX_ATTEMPTS]
        final = [pk for pk, attempts in rows if attempts >= settings.EMAIL_MAX_ATTEMPTS]
        if again:
            OutboxMessage.objects.filter(pk__in=again).update(
                status=Status.RETRY,
                possible_duplicate=F("possible_duplicate") + 1,
                lease_until=None,
                next_attempt_at=now,
                dispatched_at=None,
                last_error=LEASE_EXPIRED_ERROR,
            )
        if final:
            OutboxMessage.objects.filter(pk__in=final).update(
                status=Status.FAILED,
                lease_until=None,
                next_attempt_at=None,
                dispatched_at=None,
                last_error=f"Gave up: {LEASE_EXPIRED_ERROR}",
            )
            for message in OutboxMessage.objects.filter(pk__in=final).defer("body_text", "body_html", "attachments"):
                audit_log(actor=None, action="email.failed", obj=message,
                          data={"template": message.template, "attempts": message.attempts,
                                "reason": "lease expired on the last attempt", "message_id": message.message_id})
    for pk in again:
        logger.warning("Outbox message %s: lease expired, sending again (possible duplicate)", pk)
    for pk in final:
        logger.error("Outbox message %s: lease expired on its last attempt; marked failed", pk)
    return len(again), len(final)


def _sweep_due(limit: int) -> list[int]:
    """Queued rows whose task seems lost, and retries that are now due: hand them to the broker."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(status__in=OutboxMessage.CLAIMABLE, next_attempt_at__lte=now)
            .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lte=now - LOST_TASK_AFTER))
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            OutboxMessage.objects.filter(pk__in=ids).update(dispatched_at=now)
            transaction.on_commit(lambda: outbox_dispatch(ids))
    return ids


def outbox_sweep(*, batch_size: int = SWEEP_BATCH_SIZE, max_batches: int = SWEEP_MAX_BATCHES) -> SweepResult:
    """Run every minute by beat. Safe to run twice at once: every step claims rows with SKIP LOCKED."""
    result = SweepResult()
    for _ in range(max_batches):
        again, final = _sweep_expired_leases(batch_size)
        result.lease_expired += again
        result.lease_failed += final
        if again + final < batch_size:
            break
    for _ in range(max_batches):
        ids = _sweep_due(batch_size)
        result.dispatched += len(ids)
        if len(ids) < batch_size:
            break
    return result


# ---------------------------------------------------------------------------------------------------
# People: retrying a failure, counting failures


def outbox_retry(*, message: OutboxMessage, actor) -> bool:
    """Put a failed message back in the queue with a fresh set of attempts. False if it is not failed."""
    with transaction.atomic():
        locked = (
            OutboxMessage.objects.select_for_update()
            .filter(pk=message.pk, status=Status.FAILED)
            .defer("body_text", "body_html", "attachments")
            .first()
        )
        if locked is None:
            return False
        previous_attempts = locked.attempts
        now = timezone.now()
        OutboxMessage.objects.filter(pk=locked.pk).update(
            status=Status.QUEUED, attempts=0, next_attempt_at=now, dispatched_at=now, lease_until=None
        )
        audit_log(actor=actor, action="email.retried", obj=locked,
                  data={"template": locked.template, "previous_attempts": previous_attempts,
                        "message_id": locked.message_id})
        _send_after_commit(locked.pk)
    return True


def outbox_failed_count(
    *, school_ids: Iterable[int], organisation_ids: Iterable[int] = (), since: datetime | None = None
) -> int:
    """Failed messages of these schools (and organisation-wide ones of these organisations), for the
    dashboard. One query."""
    failed = OutboxMessage.objects.filter(_belonging_to(school_ids, organisation_ids), status=Status.FAILED)
    if since is not None:
        failed = failed.filter(created_at__gte=since)
    return failed.count()
