"""Label suspects: after each training, rank the labeled items by how likely their label is wrong.

One `LabelQualityRun` per trained model version, run by its own Celery task after the training commits (the cycle
goes on scoring meanwhile: this is K more trainings, and nothing in the cycle waits for it). The engine does the
work (`engine.label_quality`): out-of-fold probabilities from K models of the cycle's architecture, then cleanlab's
confident learning. What cleanlab flags is stored as `LabelSuspect` rows, most likely wrong first, each with the
out-of-fold model's suggestion. At-least-once delivery: a finished run is never redone, and a redelivered one
replaces its suspects in one transaction.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from campaigns.models import Cycle, LabelQualityRun, LabelSuspect, RunState, TaskType
from campaigns.selectors import items_labeled
from campaigns.services import queue
from campaigns.services.features import item_inputs
from campaigns.services.training import build_model, project_train_config
from engine.label_quality import MAX_FOLDS, out_of_fold_probs, rank_label_issues
from models_registry.models import ModelVersion

log = logging.getLogger(__name__)
# Fewer labels than this, or a single class, and there is nothing to cross-validate: the run ends with the reason.
MIN_LABELS = 10
# Stored suspects per run, most likely wrong first: a review queue, not a second copy of the dataset.
MAX_SUSPECTS = 1000


def label_quality_queue(*, model_version: ModelVersion, cycle: Cycle) -> LabelQualityRun | None:
    """Create the version's run (once) and send its task after commit. Classifiers alweb trained only: an external
    model's probabilities are not out-of-fold, and detection labels are boxes."""
    if model_version.kind != "trained" or cycle.project.task_type == TaskType.OBJECT_DETECTION:
        return None
    run, created = LabelQualityRun.objects.get_or_create(
        model_version=model_version, defaults={"project_id": cycle.project_id, "cycle": cycle}
    )
    if created:
        queue.enqueue_on_commit(queue.LABEL_QUALITY, model_version_id=model_version.pk)
    return run


def _progress(run_id: int, done: int, total: int) -> None:
    LabelQualityRun.objects.filter(pk=run_id).update(
        progress={"stage": "folds", "done": done, "total": total, "updated_at": timezone.now().isoformat()}
    )


def label_quality_run(*, model_version_id: int) -> LabelQualityRun | None:
    """The task's work: rank the project's labeled items by label quality and store the suspects. None when the
    run is gone (its project deleted) or already done."""
    claimed = LabelQualityRun.objects.filter(
        Q(state__in=[RunState.QUEUED, RunState.RUNNING, RunState.FAILED]), model_version_id=model_version_id
    ).update(state=RunState.RUNNING, failure_reason="")
    if claimed != 1:
        log.info("label quality of model version %s: already done, or gone", model_version_id)
        return None
    run = LabelQualityRun.objects.select_related("cycle", "project").get(model_version_id=model_version_id)
    project, cycle = run.project, run.cycle
    labels = list(project.labels)
    # The labels as they are now (a label fixed since the training is not suspected again); string labels of the
    # project only (a label renamed away has no class to be scored against).
    items = [i for i in items_labeled(project=project).order_by("pk") if isinstance(i.label, str) and i.label in labels]
    y = np.asarray([labels.index(i.label) for i in items], dtype=np.int64)
    if len(items) < MIN_LABELS or len(np.unique(y)) < 2:
        return _finish(run, [], summary={"labeled": len(items), "skipped": "too few labels or a single class"})
    # The folds train the way the cycle's model did (the same recipe and schedule), only without each fold's labels.
    config = project_train_config(project, build_model(project, seed=int(cycle.seed)), seed=int(cycle.seed))
    x = torch.as_tensor(item_inputs(project, items))
    probs = out_of_fold_probs(
        lambda fold: build_model(project, seed=int(cycle.seed) + fold),
        x,
        torch.as_tensor(y),
        num_classes=len(labels),
        config=config,
        folds=MAX_FOLDS,
        on_fold=lambda done, total: _progress(run.pk, done, total),
    )
    issues = rank_label_issues(y, probs)
    flagged = [int(p) for p in issues.order if issues.flagged[p]][:MAX_SUSPECTS]
    suspects = [
        LabelSuspect(
            run=run,
            item_id=items[p].pk,
            rank=rank,
            quality=float(issues.quality[p]),
            label=items[p].label,
            suggested_label=labels[int(issues.suggested[p])],
            suggested_probability=float(issues.suggested_probability[p]),
        )
        for rank, p in enumerate(flagged, start=1)
    ]
    summary = {
        "labeled": len(items),
        "flagged": int(issues.flagged.sum()),
        "folds": min(MAX_FOLDS, len(items)),
        "method": "cleanlab find_label_issues (prune_by_noise_rate), ranked by self-confidence, on K-fold "
        "out-of-fold probabilities of the cycle's architecture",
    }
    return _finish(run, suspects, summary=summary)


@transaction.atomic
def _finish(run: LabelQualityRun, suspects: list[LabelSuspect], *, summary: dict[str, Any]) -> LabelQualityRun:
    LabelSuspect.objects.filter(run=run).delete()
    LabelSuspect.objects.bulk_create(suspects, batch_size=1000)
    run.state, run.summary, run.finished_at = RunState.DONE, summary, timezone.now()
    run.save(update_fields=["state", "summary", "finished_at"])
    log.info("label quality of model version %s: %s suspects", run.model_version_id, len(suspects))
    return run


def label_quality_fail(*, model_version_id: int, reason: str) -> None:
    """A run that gave up: marked failed with the reason (its cycle is not affected)."""
    LabelQualityRun.objects.filter(model_version_id=model_version_id, state=RunState.RUNNING).update(
        state=RunState.FAILED, failure_reason=reason[:4000], finished_at=timezone.now()
    )
