from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0021_detection")]

    operations = [
        migrations.AddField(
            model_name="project",
            name="media_links_epoch",
            field=models.PositiveIntegerField(default=0),
        ),
    ]
