"""Give every hazard row a stable `row_key`. Existing rows each get their own key (a callable default on
AddField would give them all the same one): rows of earlier versions are not linked to their copies, so an
action reminded before this migration may be reminded once more after its next re-approval."""

import uuid

from django.db import migrations, models


def give_each_row_its_own_key(apps, schema_editor):
    Hazard = apps.get_model("riskassess", "Hazard")
    rows = list(Hazard.objects.only("pk"))
    for row in rows:
        row.row_key = uuid.uuid4()
    Hazard.objects.bulk_update(rows, ["row_key"], batch_size=500)


class Migration(migrations.Migration):

    dependencies = [
        ("riskassess", "0002_approved_pdf"),
    ]

    operations = [
        migrations.AddField(model_name="hazard", name="row_key", field=models.UUIDField(null=True, editable=False)),
        migrations.RunPython(give_each_row_its_own_key, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="hazard", name="row_key",
            field=models.UUIDField(db_index=True, default=uuid.uuid4, editable=False),
        ),
    ]
