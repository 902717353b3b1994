# Label history, label suspects and review requests (issue 15: label errors and re-labeling).
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0017_agreement"),
        ("models_registry", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="LabelQualityRun",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "state",
                    models.CharField(
                        choices=[("queued", "Queued"), ("running", "Running"), ("done", "Done"), ("failed", "Failed")],
                        default="queued",
                        max_length=8,
                    ),
                ),
                ("progress", models.JSONField(blank=True, default=dict)),
                ("summary", models.JSONField(blank=True, default=dict)),
                ("failure_reason", models.TextField(blank=True, default="")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "cycle",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="label_quality_runs",
                        to="campaigns.cycle",
                    ),
                ),
                (
                    "model_version",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="label_quality_run",
                        to="models_registry.modelversion",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="label_quality_runs",
                        to="campaigns.project",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
            },
        ),
        migrations.CreateModel(
            name="LabelSuspect",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("rank", models.PositiveIntegerField(help_text="1 = the most likely wrong label of the run")),
                ("quality", models.FloatField()),
                ("label", models.JSONField(help_text="The label the item had when ranked.")),
                ("suggested_label", models.CharField(max_length=200)),
                ("suggested_probability", models.FloatField()),
                (
                    "item",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="label_suspects", to="campaigns.item"
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="suspects",
                        to="campaigns.labelqualityrun",
                    ),
                ),
            ],
            options={
                "ordering": ["run", "rank"],
            },
        ),
        migrations.CreateModel(
            name="LabelReview",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "state",
                    models.CharField(
                        choices=[("open", "In review"), ("decided", "Decided"), ("cancelled", "Cancelled")],
                        default="open",
                        max_length=10,
                    ),
                ),
                ("label_before", models.JSONField(blank=True, null=True)),
                ("suggested_label", models.CharField(blank=True, default="", max_length=200)),
                (
                    "sync_state",
                    models.CharField(
                        choices=[("pending", "Pending"), ("synced", "Synced"), ("failed", "Failed")],
                        default="pending",
                        max_length=8,
                    ),
                ),
                ("ls_task_id", models.PositiveBigIntegerField(blank=True, null=True)),
                ("sync_error", models.TextField(blank=True, default="")),
                ("sync_batch", models.CharField(blank=True, default="", max_length=32)),
                ("decision", models.JSONField(blank=True, null=True)),
                ("decided_annotator", models.CharField(blank=True, default="", max_length=254)),
                ("ls_annotation_id", models.PositiveBigIntegerField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("decided_at", models.DateTimeField(blank=True, null=True)),
                (
                    "decided_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "item",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="label_reviews", to="campaigns.item"
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="label_reviews",
                        to="campaigns.project",
                    ),
                ),
                (
                    "requested_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "suspect",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="reviews",
                        to="campaigns.labelsuspect",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
            },
        ),
        migrations.CreateModel(
            name="LabelChange",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("old_value", models.JSONField(blank=True, null=True)),
                ("new_value", models.JSONField(blank=True, null=True)),
                (
                    "source",
                    models.CharField(
                        choices=[
                            ("import", "Import"),
                            ("annotation", "Annotation"),
                            ("consensus", "Consensus"),
                            ("review", "Review"),
                            ("simulation", "Simulation"),
                        ],
                        max_length=16,
                    ),
                ),
                ("annotator", models.CharField(blank=True, default="", max_length=254)),
                ("reason", models.TextField(blank=True, default="")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "item",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="label_changes", to="campaigns.item"
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["item", "created_at", "id"],
                "indexes": [models.Index(fields=["item", "created_at", "id"], name="labelchange_item_time")],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            ("source__in", ["import", "annotation", "consensus", "review", "simulation"])
                        ),
                        name="campaigns_labelchange_source_valid",
                    )
                ],
            },
        ),
        migrations.AddIndex(
            model_name="labelqualityrun",
            index=models.Index(fields=["project", "state", "-id"], name="labelqualityrun_latest"),
        ),
        migrations.AddConstraint(
            model_name="labelqualityrun",
            constraint=models.CheckConstraint(
                condition=models.Q(("state__in", ["queued", "running", "done", "failed"])),
                name="campaigns_labelqualityrun_state_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="labelsuspect",
            constraint=models.UniqueConstraint(fields=("run", "item"), name="campaigns_labelsuspect_unique_item"),
        ),
        migrations.AddConstraint(
            model_name="labelsuspect",
            constraint=models.UniqueConstraint(fields=("run", "rank"), name="campaigns_labelsuspect_unique_rank"),
        ),
        migrations.AddIndex(
            model_name="labelreview",
            index=models.Index(fields=["project", "state", "sync_state"], name="labelreview_project_state"),
        ),
        migrations.AddConstraint(
            model_name="labelreview",
            constraint=models.UniqueConstraint(
                condition=models.Q(("state", "open")), fields=("item",), name="campaigns_labelreview_one_open_per_item"
            ),
        ),
        migrations.AddConstraint(
            model_name="labelreview",
            constraint=models.UniqueConstraint(
                condition=models.Q(("ls_task_id__isnull", False)),
                fields=("project", "ls_task_id"),
                name="campaigns_labelreview_unique_ls_task",
            ),
        ),
        migrations.AddConstraint(
            model_name="labelreview",
            constraint=models.CheckConstraint(
                condition=models.Q(("state__in", ["open", "decided", "cancelled"])),
                name="campaigns_labelreview_state_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="labelreview",
            constraint=models.CheckConstraint(
                condition=models.Q(("sync_state__in", ["pending", "synced", "failed"])),
                name="campaigns_labelreview_sync_state_valid",
            ),
        ),
    ]
