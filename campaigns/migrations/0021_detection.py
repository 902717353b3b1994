# Detection: the boxes a detector predicted, kept per scored item and copied onto the selection, so the prediction
# synced to Label Studio (and the ML backend's answer) carries them as rectanglelabels regions.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0020_model_backbones")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.AddField(
            model_name="score",
            name="boxes",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="selecteditem",
            name="boxes",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
