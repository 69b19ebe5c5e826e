"""Fill the maintained consent counts of a database that already holds decisions (a school's row is otherwise
made only by its next recount, and the home page would show 0 until then)."""

from django.db import migrations


def fill(apps, schema_editor):
    # The counting rule lives in one place (consent.figures); a recount through it is what
    # `manage.py consent_counts_rebuild` does. Nothing to do on an empty database.
    ConsentStatus = apps.get_model("consent", "ConsentStatus")
    if not ConsentStatus.objects.exists():
        return
    from consent.counts import counts_rebuild

    counts_rebuild()


class Migration(migrations.Migration):
    dependencies = [("consent", "0008_consent_counts")]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
