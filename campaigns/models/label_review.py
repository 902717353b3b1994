"""Label history, label suspects and review requests (issue 15: label errors and re-labeling).

No label is overwritten without its history: every change of `Item.label` writes one `LabelChange` row (through
`campaigns.services.label_history`, the only writer). After a training, confident learning ranks the labeled items by
how likely their label is wrong (`LabelQualityRun` and its `LabelSuspect` rows); a person sends chosen suspects back
to Label Studio as `LabelReview`s, and the reviewer's decision replaces the label (source "review").
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from campaigns.models import Cycle, Item, Project


class LabelSource(models.TextChoices):
    """Where an item's label came from (also `Item.label_source`)."""

    IMPORT = "import", "Import"
    ANNOTATION = "annotation", "Annotation"
    CONSENSUS = "consensus", "Consensus"
    REVIEW = "review", "Review"
    SIMULATION = "simulation", "Simulation"


class LabelChange(models.Model):
    """One change of one item's label: the old and the new value, what made it and who. Never updated."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="label_changes")
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=LabelSource.choices)
    # A person in alweb (a review decided in the dashboard or API), or a Label Studio annotator's name or email.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    annotator = models.CharField(max_length=254, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["item", "created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(source__in=LabelSource.values), name="%(app_label)s_%(class)s_source_valid"
            ),
        ]
        indexes = [
            # An item's history (admin inline, API detail): WHERE item_id=? ORDER BY created_at, id.
            models.Index(fields=["item", "created_at", "id"], name="labelchange_item_time"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.old_value!r} -> {self.new_value!r} ({self.source})"


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class LabelQualityRun(models.Model):
    """Confident learning over the labeled set after one model version's training: one run per version."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="label_quality_runs")
    cycle = models.ForeignKey(Cycle, on_delete=models.CASCADE, related_name="label_quality_runs")
    model_version = models.OneToOneField(
        "models_registry.ModelVersion", on_delete=models.CASCADE, related_name="label_quality_run"
    )
    state = models.CharField(max_length=8, choices=RunState.choices, default=RunState.QUEUED)
    # {"stage": "folds", "done": n, "total": k, "updated_at": iso}
    progress = models.JSONField(default=dict, blank=True)
    # {"folds": k, "labeled": n, "issues": m, "method": ..., "annotators": [per-annotator CROWDLAB quality]}: what
    # was run, for the dashboard and the API.
    summary = models.JSONField(default=dict, blank=True)
    # The out-of-fold probabilities (an .npz of item_ids and probs): a later cycle's ActiveLab split compares its
    # labeled items with new ones on them, without training the folds again.
    probabilities = models.BinaryField(null=True, blank=True, editable=False)
    failure_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=RunState.values), name="%(app_label)s_%(class)s_state_valid"),
        ]
        indexes = [
            # The project's latest finished run: WHERE project_id=? AND state='done' ORDER BY id DESC LIMIT 1.
            models.Index(fields=["project", "state", "-id"], name="labelqualityrun_latest"),
        ]

    def __str__(self) -> str:
        return f"label quality of {self.model_version_id} ({self.state})"


class LabelSuspect(models.Model):
    """A labeled item whose label confident learning flags as likely wrong, with the model's suggestion."""

    run = models.ForeignKey(LabelQualityRun, on_delete=models.CASCADE, related_name="suspects")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="label_suspects")
    rank = models.PositiveIntegerField(help_text="1 = the most likely wrong label of the run")
    # cleanlab's label quality score in [0, 1]: lower = more likely wrong.
    quality = models.FloatField()
    label = models.JSONField(help_text="The label the item had when ranked.")
    suggested_label = models.CharField(max_length=200)
    suggested_probability = models.FloatField()
    # Items with several answers: CROWDLAB's consensus over the annotators and the model, and how likely it is right
    # (then also the `quality` above); "" and None for a single answer.
    annotations = models.PositiveSmallIntegerField(default=1, help_text="How many annotators' answers the item has.")
    consensus_label = models.CharField(max_length=200, blank=True, default="")
    consensus_quality = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["run", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["run", "item"], name="%(app_label)s_%(class)s_unique_item"),
            models.UniqueConstraint(fields=["run", "rank"], name="%(app_label)s_%(class)s_unique_rank"),
        ]

    def __str__(self) -> str:
        return f"#{self.rank} {self.item_id}: {self.label!r} -> {self.suggested_label!r}"


class ReviewState(models.TextChoices):
    OPEN = "open", "In review"
    DECIDED = "decided", "Decided"
    CANCELLED = "cancelled", "Cancelled"


class ReviewSync(models.TextChoices):
    PENDING = "pending", "Pending"
    SYNCED = "synced", "Synced"
    FAILED = "failed", "Failed"


class LabelReview(models.Model):
    """An item sent back to Label Studio for review: a task of its own there, showing the current label and the
    model's suggestion; the first answer on it is the decision and replaces the label (source "review")."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="label_reviews")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="label_reviews")
    suspect = models.ForeignKey(LabelSuspect, on_delete=models.SET_NULL, null=True, blank=True, related_name="reviews")
    state = models.CharField(max_length=10, choices=ReviewState.choices, default=ReviewState.OPEN)
    label_before = models.JSONField(null=True, blank=True)
    suggested_label = models.CharField(max_length=200, blank=True, default="")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    sync_state = models.CharField(max_length=8, choices=ReviewSync.choices, default=ReviewSync.PENDING)
    # The review task in Label Studio (not the item's own task: that one keeps its annotations as they were).
    ls_task_id = models.PositiveBigIntegerField(null=True, blank=True)
    sync_error = models.TextField(blank=True, default="")
    # Written (and committed) before the review's task is imported, and carried in the task's data: a retried sync
    # that finds it set looks the task up in Label Studio instead of importing it twice.
    sync_batch = models.CharField(max_length=32, blank=True, default="")
    decision = models.JSONField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_annotator = models.CharField(max_length=254, blank=True, default="")
    ls_annotation_id = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One open review per item, whatever the number of concurrent "send back" clicks.
            models.UniqueConstraint(
                fields=["item"], condition=Q(state="open"), name="%(app_label)s_%(class)s_one_open_per_item"
            ),
            models.UniqueConstraint(
                fields=["project", "ls_task_id"],
                condition=Q(ls_task_id__isnull=False),
                name="%(app_label)s_%(class)s_unique_ls_task",
            ),
            models.CheckConstraint(
                condition=Q(state__in=ReviewState.values), name="%(app_label)s_%(class)s_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(sync_state__in=ReviewSync.values), name="%(app_label)s_%(class)s_sync_state_valid"
            ),
        ]
        indexes = [
            # The review sync and the pull's routing: WHERE project_id=? AND state='open' [AND sync_state=?].
            models.Index(fields=["project", "state", "sync_state"], name="labelreview_project_state"),
        ]

    def __str__(self) -> str:
        return f"review of {self.item_id} ({self.state})"
