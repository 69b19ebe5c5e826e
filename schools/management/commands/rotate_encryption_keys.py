"""Re-encrypt every encrypted column under the newest key in FIELD_ENCRYPTION_KEYS.

Rotation: put the new key first in FIELD_ENCRYPTION_KEYS (keeping the old ones after it), restart,
run this command, then remove the old keys once it reports nothing left under them.
"""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from lib.crypto import EncryptedTextField

BATCH = 500


class Command(BaseCommand):
    help = "Re-encrypt all encrypted fields with the first key of FIELD_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        total = 0
        for model in apps.get_models():
            fields = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
            if not fields:
                continue
            count = 0
            queryset = model._default_manager.order_by("pk").only("pk", *fields)
            last_pk = None
            while True:
                page = queryset if last_pk is None else queryset.filter(pk__gt=last_pk)
                rows = list(page[:BATCH])  # reading decrypts with whichever key still fits
                if not rows:
                    break
                with transaction.atomic():
                    # Saving encrypts with the first (newest) key.
                    model._default_manager.bulk_update(rows, fields)
                count += len(rows)
                last_pk = rows[-1].pk
            self.stdout.write(f"{model._meta.label}: {count} row(s) re-encrypted ({', '.join(fields)})")
            total += count
        self.stdout.write(self.style.SUCCESS(f"Done: {total} row(s) now under the newest key."))
