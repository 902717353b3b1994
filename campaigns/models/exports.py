"""Exports: a project's items written to a file by a Celery task (issue 15)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from campaigns.models import Project


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    JSONL = "jsonl", "JSON Lines"
    PARQUET = "parquet", "Parquet"
    COCO = "coco", "COCO (detection)"
    YOLO = "yolo", "YOLO (detection)"
    IMAGEFOLDER = "imagefolder", "ImageFolder zip (image classification)"


class ExportState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Export(models.Model):
    """A project's items written to a file in default storage (under exports/) by a Celery task, with progress."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=16, choices=ExportFormat.choices)
    # Snapshot: the training set of this cycle's model instead of the project as it is now.
    as_of_cycle = models.PositiveIntegerField(null=True, blank=True)
    include_media = models.BooleanField(default=False)
    # By default an export holds the labeled items (the dataset); with this, every active item.
    include_unlabeled = models.BooleanField(default=False)
    state = models.CharField(max_length=8, choices=ExportState.choices, default=ExportState.QUEUED)
    # {"done": rows written, "total": rows expected, "updated_at": iso}
    progress = models.JSONField(default=dict, blank=True)
    file = models.FileField(upload_to="exports/", max_length=512, blank=True, default="")
    rows = models.PositiveIntegerField(default=0)
    # Snapshots: {"training_set_hash": recomputed, "expected_hash": the model version's, "matches": bool}
    result = models.JSONField(default=dict, blank=True)
    failure_reason = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(format__in=ExportFormat.values), name="%(app_label)s_%(class)s_format_valid"
            ),
            models.CheckConstraint(
                condition=Q(state__in=ExportState.values), name="%(app_label)s_%(class)s_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(as_of_cycle__isnull=True) | Q(as_of_cycle__gte=1),
                name="%(app_label)s_%(class)s_as_of_cycle_positive",
            ),
            # A finished export always has its file: the download link never points at nothing.
            models.CheckConstraint(
                condition=~Q(state=ExportState.DONE) | ~Q(file=""), name="%(app_label)s_%(class)s_done_has_file"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.format} export {self.pk} of {self.project}"
