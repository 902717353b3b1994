# No schema change: this slot was reserved for the model-backbone work, which needed none. Kept as a no-op so the
# chain 0019 -> 0021 stays as shipped.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0019_scoring_fanout")]

    operations: list[migrations.operations.base.Operation] = []
