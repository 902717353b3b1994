# Overlap and consensus (issue 15): how many annotators label each task, and how their answers become the label.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0016_simulation_runs")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.AddField(
            model_name="project",
            name="annotators_per_task",
            field=models.PositiveSmallIntegerField(default=1),
        ),
        migrations.AddField(
            model_name="project",
            name="consensus_rule",
            field=models.CharField(
                choices=[
                    ("majority", "The most frequent answer, from the first answer on (ties: the earliest)"),
                    ("quorum", "Only once more than half of the annotators per task agree"),
                ],
                default="majority",
                max_length=16,
            ),
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.CheckConstraint(
                condition=models.Q(("annotators_per_task__gte", 1), ("annotators_per_task__lte", 20)),
                name="campaigns_project_annotators_per_task_range",
            ),
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.CheckConstraint(
                condition=models.Q(("consensus_rule__in", ["majority", "quorum"])),
                name="campaigns_project_consensus_rule_valid",
            ),
        ),
    ]
