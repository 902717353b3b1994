"""Label suspects: after each training, rank the labeled items by how likely their label is wrong.

One `LabelQualityRun` per trained model version, run by its own Celery task after the training commits (the cycle
goes on scoring meanwhile: this is K more trainings, and nothing in the cycle waits for it). The engine does the
work (`engine.label_quality`): out-of-fold probabilities from K models of the cycle's architecture, then cleanlab's
confident learning. What cleanlab flags is stored as `LabelSuspect` rows, most likely wrong first, each with the
out-of-fold model's suggestion. At-least-once delivery: a finished run is never redone, and a redelivered one
replaces its suspects in one transaction.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from numpy.typing import NDArray

from campaigns.models import Cycle, Item, LabelQualityRun, LabelSuspect, RunState, TaskType
from campaigns.selectors import items_labeled
from campaigns.selectors.labels import answers_by_item
from campaigns.services import queue
from campaigns.services.features import item_inputs
from campaigns.services.training import build_model, project_train_config
from engine.label_quality import MAX_FOLDS, out_of_fold_probs, rank_label_issues
from engine.multiannotator import Crowdlab, annotator_matrix, crowdlab
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
    quality, flags = issues.quality.copy(), issues.flagged.copy()
    crowd, crowd_skipped = _crowdlab(items, labels, probs)
    if crowd is not None:
        # Items with several answers: CROWDLAB's consensus quality replaces self-confidence, and a consensus that
        # differs from the item's label flags it too.
        for p, consensus, q in zip(crowd.positions, crowd.result.consensus, crowd.result.quality, strict=True):
            quality[p] = q
            flags[p] = flags[p] or int(consensus) != int(y[p])
    order = np.argsort(quality, kind="stable")
    flagged = [int(p) for p in order if flags[p]][:MAX_SUSPECTS]
    consensus_of = {} if crowd is None else crowd.by_position()
    answers = _answer_counts([i.pk for i in items])
    suspects = [
        LabelSuspect(
            run=run,
            item_id=items[p].pk,
            rank=rank,
            quality=float(quality[p]),
            label=items[p].label,
            suggested_label=labels[int(issues.suggested[p])],
            suggested_probability=float(issues.suggested_probability[p]),
            annotations=min(answers.get(items[p].pk, 0), 32767) or 1,
            consensus_label=labels[consensus_of[p][0]] if p in consensus_of else "",
            consensus_quality=consensus_of[p][1] if p in consensus_of else None,
        )
        for rank, p in enumerate(flagged, start=1)
    ]
    summary: dict[str, Any] = {
        "labeled": len(items),
        "flagged": int(flags.sum()),
        "folds": min(MAX_FOLDS, len(items)),
        "method": "cleanlab find_label_issues (prune_by_noise_rate), ranked by self-confidence, on K-fold "
        "out-of-fold probabilities of the cycle's architecture",
    }
    if crowd is not None:
        summary["method"] += "; items with several answers: CROWDLAB (get_label_quality_multiannotator)"
        summary["multi_annotator_items"] = int((crowd.result.annotations > 1).sum())
        summary["annotators"] = crowd.result.annotators
    elif crowd_skipped:
        summary["crowdlab_skipped"] = crowd_skipped
    run.probabilities = probabilities_pack([i.pk for i in items], probs)
    return _finish(run, suspects, summary=summary)


@dataclass(frozen=True)
class _Crowd:
    positions: list[int]  # positions in the run's items of the items with at least one answer
    result: Crowdlab

    def by_position(self) -> dict[int, tuple[int, float]]:
        """(consensus class, its quality) of the items with several answers."""
        return {
            p: (int(c), float(q))
            for p, c, q, n in zip(
                self.positions, self.result.consensus, self.result.quality, self.result.annotations, strict=True
            )
            if n > 1
        }


def _answer_counts(item_ids: list[int]) -> dict[int, int]:
    return {pk: len(answers) for pk, answers in answers_by_item(item_ids).items()}


def _crowdlab(items: list[Item], labels: list[str], probs: NDArray[np.float64]) -> tuple[_Crowd | None, str]:
    """CROWDLAB over the items annotators answered, when at least one has several answers: (its result, ""), or
    (None, why not) when cleanlab refuses the data; (None, "") without several answers anywhere."""
    answers = answers_by_item([i.pk for i in items])
    positions = [p for p, i in enumerate(items) if any(v in labels for v in answers.get(i.pk, {}).values())]
    rows = [{a: labels.index(v) for a, v in answers[items[p].pk].items() if v in labels} for p in positions]
    if not any(len(r) > 1 for r in rows):
        return None, ""
    matrix, names = annotator_matrix(rows)
    try:
        return _Crowd(positions, crowdlab(matrix, probs[positions], names)), ""
    except ValueError as exc:  # cleanlab refuses some data (e.g. one annotator only): confident learning alone
        log.warning("CROWDLAB skipped: %s", exc)
        return None, str(exc)[:500]


def probabilities_pack(item_ids: list[int], probs: NDArray[np.float64]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, item_ids=np.asarray(item_ids, dtype=np.int64), probs=probs.astype(np.float32))
    return buffer.getvalue()


def probabilities_unpack(blob: bytes | memoryview) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    with np.load(io.BytesIO(bytes(blob))) as data:
        return data["item_ids"].astype(np.int64), data["probs"].astype(np.float64)


@transaction.atomic
def _finish(run: LabelQualityRun, suspects: list[LabelSuspect], *, summary: dict[str, Any]) -> LabelQualityRun:
    LabelSuspect.objects.filter(run=run).delete()
    LabelSuspect.objects.bulk_create(suspects, batch_size=1000)
    run.state, run.summary, run.finished_at = RunState.DONE, summary, timezone.now()
    run.save(update_fields=["state", "summary", "finished_at", "probabilities"])
    log.info("label quality of model version %s: %s suspects", run.model_version_id, len(suspects))
    return run


def label_quality_fail(*, model_version_id: int, reason: str) -> None:
    """A run that gave up: marked failed with the reason (its cycle is not affected)."""
    LabelQualityRun.objects.filter(model_version_id=model_version_id, state=RunState.RUNNING).update(
        state=RunState.FAILED, failure_reason=reason[:4000], finished_at=timezone.now()
    )
