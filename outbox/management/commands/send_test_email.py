"""Check the mail settings: `manage.py send_test_email --to you@example.org [--now]`."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from outbox.models import OutboxMessage
from outbox.services import email_test_message, outbox_send_batch

Status = OutboxMessage.Status


class Command(BaseCommand):
    help = "Queue a test email through the outbox; with --now, send it at once and report what happened."

    def add_arguments(self, parser):
        parser.add_argument("--to", required=True, help="The address to send the test message to.")
        parser.add_argument("--now", action="store_true",
                            help="Send it from this process instead of waiting for a worker, and print the result.")

    def handle(self, *args, to: str, now: bool, **options):
        try:
            message = email_test_message(to=to)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Queued test email #{message.pk} to {message.recipient} ({message.message_id}).")
        if not now:
            self.stdout.write("A worker will send it; follow it on the outbox page or with --now.")
            return
        outbox_send_batch([message.pk])
        message = self._wait_for_outcome(message.pk)
        if message.status == Status.SENT:
            self.stdout.write(self.style.SUCCESS(
                f"Sent: the mail server accepted {message.message_id} (backend {settings.EMAIL_BACKEND})."
            ))
            return
        if message.status == Status.RETRY:
            raise CommandError(f"Not sent yet, will retry ({message.attempts} attempt(s)): {message.last_error}")
        if message.status == Status.FAILED:
            raise CommandError(f"Failed: {message.last_error}")
        raise CommandError(f"Still {message.get_status_display().lower()} after waiting; see the outbox page.")

    def _wait_for_outcome(self, pk: int) -> OutboxMessage:
        """A worker may have claimed the message first; wait for its outcome rather than race it."""
        deadline = time.monotonic() + 2 * settings.EMAIL_TIMEOUT + 5
        message = OutboxMessage.objects.get(pk=pk)
        while message.status in (Status.QUEUED, Status.SENDING) and time.monotonic() < deadline:
            time.sleep(0.5)
            message = OutboxMessage.objects.get(pk=pk)
        return message
