# Reserved for one change in flight (filled in by the change that owns it); empty until then, which Django allows.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0021_detection")]

    operations: list[migrations.operations.base.Operation] = []
