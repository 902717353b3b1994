"""Model versions: a mirror of each MLflow registry version alweb trained or a user registered."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class ModelKind(models.TextChoices):
    TRAINED = "trained", "Trained by alweb"
    EXTERNAL = "external", "External pyfunc"


class ModelStatus(models.TextChoices):
    TRAINING = "training", "Training"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    ARCHIVED = "archived", "Archived"


class ModelVersion(models.Model):
    project = models.ForeignKey("campaigns.Project", on_delete=models.CASCADE, related_name="model_versions")
    version = models.PositiveIntegerField(help_text="alweb's own sequence per project.")
    kind = models.CharField(max_length=16, choices=ModelKind.choices, default=ModelKind.TRAINED)
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.TRAINING)
    architecture = models.CharField(max_length=64, blank=True, default="")
    mlflow_run_id = models.CharField(max_length=64, blank=True, default="")
    model_uri = models.CharField(max_length=1024, blank=True, default="")
    registered_name = models.CharField(max_length=256, blank=True, default="")
    registered_version = models.CharField(max_length=32, blank=True, default="")
    is_champion = models.BooleanField(default=False)
    label_count = models.PositiveIntegerField(default=0, help_text="Labels the model was trained on.")
    # {"accuracy": ..., "macro_f1": ..., "per_class": {...}, "confusion": [[...]], "valid": {...}}
    metrics = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    failure_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="%(app_label)s_%(class)s_unique_version"),
            # The champion alias points at one version per project.
            models.UniqueConstraint(
                fields=["project"], condition=Q(is_champion=True), name="%(app_label)s_%(class)s_one_champion"
            ),
            models.CheckConstraint(condition=Q(kind__in=ModelKind.values), name="%(app_label)s_%(class)s_kind_valid"),
            models.CheckConstraint(
                condition=Q(status__in=ModelStatus.values), name="%(app_label)s_%(class)s_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} v{self.version}"
