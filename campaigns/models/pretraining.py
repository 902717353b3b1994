"""Self-supervised pretraining runs: a project's image trunk pretrained on its own unlabeled pool (issue 19), run by
a Celery task, registered in MLflow as a backbone version and stored under backbones/ in media storage."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from campaigns.models import Project
from campaigns.models.label_review import RunState

# A run that holds (or will hold) a worker: one per project at a time.
ACTIVE_PRETRAINING_STATES = (RunState.QUEUED.value, RunState.RUNNING.value)


class BackbonePretraining(models.Model):
    """One pretraining of the project's trunk; once done, `backbone` is the file `model_config.backbone` takes."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pretrainings")
    state = models.CharField(max_length=8, choices=RunState.choices, default=RunState.QUEUED)
    # Bumped by every claim (queued→running, or a takeover of a running run whose worker died): a worker writes
    # progress and the result only while the attempt is still its own.
    attempt = models.PositiveIntegerField(default=0)
    # What was asked: epochs, max_seconds, flip, and whether the result becomes the project's backbone ("use").
    params = models.JSONField(default=dict, blank=True)
    # {"done": epochs finished, "total": epochs planned, "updated_at": iso}
    progress = models.JSONField(default=dict, blank=True)
    images = models.PositiveIntegerField(default=0)  # pool images it was pretrained on
    backbone = models.CharField(max_length=255, blank=True, default="")  # the file in media storage
    sha256 = models.CharField(max_length=64, blank=True, default="")
    mlflow_run_id = models.CharField(max_length=64, blank=True, default="")
    model_uri = models.CharField(max_length=255, blank=True, default="")  # models:/<name>/<version>
    # losses per epoch, epochs run, seconds, feature width, what stopped it, the normalisation used
    metrics = models.JSONField(default=dict, blank=True)
    failure_reason = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=RunState.values), name="%(app_label)s_%(class)s_state_valid"),
            models.CheckConstraint(
                condition=Q(finished_at__isnull=True) | Q(finished_at__gte=F("created_at")),
                name="%(app_label)s_%(class)s_finished_after_created",
            ),
            # One queued or running pretraining per project (the request's 409).
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(state__in=ACTIVE_PRETRAINING_STATES),
                name="%(app_label)s_%(class)s_one_active_per_project",
            ),
        ]

    def __str__(self) -> str:
        return f"pretraining {self.pk} of {self.project}"
