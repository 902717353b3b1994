"""A cycle's scoring plan: the chunks its pool is cut into, each scored by any worker, and who wrote each (issue 20).

The plan is what "every chunk is written" is counted against: the cycle moves to `scored` when the number of
written chunk rows equals `ScoringPlan.chunks`, decided by one conditional UPDATE of the plan row, so neither a lost
worker nor a broker restart (which an in-memory chord would not survive) can stop or repeat it.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from campaigns.models import Cycle

# The chunk that stores the embeddings of the items the cycle's model was trained on (k-center starts from them):
# planned and written like a pool chunk, so the cycle completes only once they are stored too. It holds no pool item.
LABELED_CHUNK = -1


class ScoringPlan(models.Model):
    """Made once per cycle when its scoring starts; completed once, by the worker that wrote the last chunk."""

    cycle = models.OneToOneField(Cycle, on_delete=models.CASCADE, related_name="scoring_plan")
    chunks = models.PositiveIntegerField(help_text="Chunks to write, the labeled-embeddings chunk included.")
    items = models.PositiveIntegerField(help_text="Pool items in the plan: the progress bar's total.")
    chunk_ids = models.PositiveIntegerField(help_text="ALWEB_SCORING_CHUNK_IDS when the plan was made.")
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.CharField(max_length=200, blank=True, default="")

    def __str__(self) -> str:
        return f"scoring plan of {self.cycle_id}: {self.chunks} chunks"


class ScoringChunk(models.Model):
    """One unit of a cycle's scoring: the pool items whose id falls in one block of `chunk_ids` ids."""

    cycle = models.ForeignKey(Cycle, on_delete=models.CASCADE, related_name="scoring_chunks")
    chunk = models.IntegerField()
    items = models.PositiveIntegerField(help_text="Pool items planned in the chunk.")
    # Set in the transaction that writes the chunk's scores: a chunk is written with all its scores or not at all.
    written_at = models.DateTimeField(null=True, blank=True)
    scored = models.PositiveIntegerField(null=True, blank=True, help_text="Items scored (labeled since: fewer).")
    worker = models.CharField(max_length=200, blank=True, default="", help_text="host:pid of the process that wrote it")
    seconds = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cycle", "chunk"], name="%(app_label)s_%(class)s_unique_chunk"),
            models.CheckConstraint(condition=Q(chunk__gte=LABELED_CHUNK), name="%(app_label)s_%(class)s_chunk_known"),
        ]
        indexes = [
            # Completion and progress: SELECT count(*), sum(items) WHERE cycle_id=? AND written_at IS NOT NULL;
            # and the chunks still to send: WHERE cycle_id=? AND written_at IS NULL.
            models.Index(fields=["cycle", "written_at"], name="scoringchunk_cycle_written"),
        ]

    def __str__(self) -> str:
        return f"chunk {self.chunk} of {self.cycle_id}"
