from django.core.management.base import BaseCommand
from django.db import transaction

from consent.counts import counts_rebuild


class Command(BaseCommand):
    help = ("Recount the maintained consent counts of every school from the registry (consent.counts), e.g. after "
            "data was written around the services.")

    def handle(self, *args, **options):
        with transaction.atomic():
            written = counts_rebuild()
        self.stdout.write(f"Recounted {written} school and purpose row(s).")
