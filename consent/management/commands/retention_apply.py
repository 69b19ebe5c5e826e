from datetime import datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from consent.models import Pupil
from consent.retention import retention_apply

LABELS = {
    "pupils_deleted": "leavers deleted (no consent evidence)",
    "pupils_archived": "leavers archived (kept only as consent evidence)",
    "guardians_deleted": "guardians deleted",
    "guardians_archived": "guardians archived (contact details erased)",
    "evidence_pupils_deleted": "archived pupils whose evidence period ended, deleted with their evidence",
    "events_deleted": "consent events deleted",
    "links_deleted": "personal links deleted",
    "emails_deleted": "emails to leavers' guardians deleted",
    "uploads_erased": "uploaded roster files erased",
    "import_runs_deleted": "import runs deleted",
    "email_bodies_erased": "bodies of emails sent over a month ago erased",
    "addresses_erased": "addresses of old emails to people no longer in the registry erased",
}


class Command(BaseCommand):
    help = (
        "Apply each organisation's retention schedule now (the periodic task does this hourly). "
        "With --dry-run, list what it would delete or erase and change nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Report only; change nothing.")
        parser.add_argument(
            "--as-of", metavar="YYYY-MM-DD",
            help="With --dry-run: what a run on that day would do (e.g. the first of August).",
        )

    def handle(self, *args, dry_run: bool, as_of: str | None, **options):
        now = timezone.now()
        if as_of:
            if not dry_run:
                raise CommandError("--as-of only goes with --dry-run: the schedule is applied as of today.")
            try:
                day = datetime.strptime(as_of, "%Y-%m-%d").date()
            except ValueError:
                raise CommandError(f"--as-of {as_of!r} is not a date like 2027-08-01.") from None
            now = timezone.make_aware(datetime.combine(day, time(12)))
        report = retention_apply(now=now, dry_run=dry_run)
        verb = "would be" if dry_run else "were"
        title = f"Retention {'dry run' if dry_run else 'run'} as of {timezone.localtime(now):%Y-%m-%d %H:%M %Z}"
        self.stdout.write(title)
        for key, count in report.counts().items():
            self.stdout.write(f"  {count:>7}  {LABELS[key]}")
        if dry_run:
            self._list("Leavers that would be erased", report.pupils_deleted + report.pupils_archived)
            self._list("Archived pupils whose evidence would be deleted", report.evidence_pupils_deleted)
        if not report.changed:
            self.stdout.write(self.style.SUCCESS(f"Nothing {verb} due."))

    def _list(self, heading: str, pupil_ids: list[int]) -> None:
        if not pupil_ids:
            return
        self.stdout.write(f"{heading} (pupil number, school, left on):")
        for pupil in Pupil.objects.filter(pk__in=pupil_ids).select_related("school").order_by("school__name", "pk"):
            self.stdout.write(f"  #{pupil.pk}  {pupil.school}  {pupil.left_on:%Y-%m-%d}")
