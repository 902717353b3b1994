# Scoring fanned out over workers (issue 20): a cycle's scoring plan and its chunks, each written by any worker.
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0018_label_review")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.CreateModel(
            name="ScoringPlan",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "chunks",
                    models.PositiveIntegerField(help_text="Chunks to write, the labeled-embeddings chunk included."),
                ),
                ("items", models.PositiveIntegerField(help_text="Pool items in the plan: the progress bar's total.")),
                ("chunk_ids", models.PositiveIntegerField(help_text="ALWEB_SCORING_CHUNK_IDS when the plan was made.")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("completed_at", models.DateTimeField(blank=True, null=True)),
                ("completed_by", models.CharField(blank=True, default="", max_length=200)),
                (
                    "cycle",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="scoring_plan",
                        to="campaigns.cycle",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="ScoringChunk",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("chunk", models.IntegerField()),
                ("items", models.PositiveIntegerField(help_text="Pool items planned in the chunk.")),
                ("written_at", models.DateTimeField(blank=True, null=True)),
                (
                    "scored",
                    models.PositiveIntegerField(
                        blank=True, help_text="Items scored (labeled since: fewer).", null=True
                    ),
                ),
                (
                    "worker",
                    models.CharField(
                        blank=True, default="", help_text="host:pid of the process that wrote it", max_length=200
                    ),
                ),
                ("seconds", models.FloatField(blank=True, null=True)),
                (
                    "cycle",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="scoring_chunks",
                        to="campaigns.cycle",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["cycle", "written_at"], name="scoringchunk_cycle_written")],
                "constraints": [
                    models.UniqueConstraint(fields=("cycle", "chunk"), name="campaigns_scoringchunk_unique_chunk"),
                    models.CheckConstraint(
                        condition=models.Q(("chunk__gte", -1)), name="campaigns_scoringchunk_chunk_known"
                    ),
                ],
            },
        ),
    ]
