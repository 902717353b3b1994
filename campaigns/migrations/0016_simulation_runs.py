# Simulation runs (issue 14): a comparison of strategies against random as a task, and sandboxes marked as such.
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0015_default_heuristic_margin"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="sandbox_of",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="sandboxes",
                to="campaigns.project",
            ),
        ),
        migrations.CreateModel(
            name="SimulationRun",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("strategies", models.JSONField(default=list)),
                ("seeds", models.PositiveSmallIntegerField(default=3)),
                ("cycles", models.PositiveSmallIntegerField(default=4)),
                ("budget", models.PositiveIntegerField(default=20)),
                (
                    "heuristic",
                    models.CharField(
                        choices=[
                            ("bald", "BALD"),
                            ("entropy", "Predictive entropy"),
                            ("margin", "Margin"),
                            ("least_confidence", "Least confidence"),
                            ("variation_ratio", "Variation ratio"),
                            ("power_bald", "PowerBALD"),
                            ("random", "Random"),
                        ],
                        default="margin",
                        max_length=32,
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[("queued", "Queued"), ("running", "Running"), ("done", "Done"), ("failed", "Failed")],
                        default="queued",
                        max_length=8,
                    ),
                ),
                ("attempt", models.PositiveIntegerField(default=0)),
                ("progress", models.JSONField(blank=True, default=dict)),
                ("report", models.JSONField(blank=True, default=dict)),
                ("failure_reason", models.TextField(blank=True, default="")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="simulations",
                        to="campaigns.project",
                    ),
                ),
            ],
            options={"ordering": ["-created_at", "-pk"]},
        ),
        migrations.AddField(
            model_name="project",
            name="sandbox_run",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="sandboxes",
                to="campaigns.simulationrun",
            ),
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.CheckConstraint(
                condition=models.Q(("sandbox_run__isnull", True), ("sandbox_of__isnull", False), _connector="OR"),
                name="campaigns_project_run_sandbox_has_source",
            ),
        ),
        migrations.AddConstraint(
            model_name="simulationrun",
            constraint=models.CheckConstraint(
                condition=models.Q(("state__in", ["queued", "running", "done", "failed"])),
                name="campaigns_simulationrun_state_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="simulationrun",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "heuristic__in",
                        ["bald", "entropy", "margin", "least_confidence", "variation_ratio", "power_bald", "random"],
                    )
                ),
                name="campaigns_simulationrun_heuristic_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="simulationrun",
            constraint=models.CheckConstraint(
                condition=models.Q(("seeds__gte", 2)), name="campaigns_simulationrun_seeds_at_least_2"
            ),
        ),
        migrations.AddConstraint(
            model_name="simulationrun",
            constraint=models.CheckConstraint(
                condition=models.Q(("cycles__gte", 1)), name="campaigns_simulationrun_cycles_positive"
            ),
        ),
        migrations.AddConstraint(
            model_name="simulationrun",
            constraint=models.CheckConstraint(
                condition=models.Q(("budget__gte", 1)), name="campaigns_simulationrun_budget_positive"
            ),
        ),
        migrations.AddConstraint(
            model_name="simulationrun",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("finished_at__isnull", True), ("finished_at__gte", models.F("created_at")), _connector="OR"
                ),
                name="campaigns_simulationrun_finished_after_created",
            ),
        ),
        migrations.AddConstraint(
            model_name="simulationrun",
            constraint=models.UniqueConstraint(
                condition=models.Q(("state__in", ("queued", "running"))),
                fields=("project",),
                name="campaigns_simulationrun_one_active_per_project",
            ),
        ),
    ]
