"""ActiveLab budget split: a cycle with `relabel: "activelab"` may spend part of its budget on labeling labeled items
again, when one more label on them is expected to help more than a new item's first label.

cleanlab's ActiveLab (`engine.multiannotator.activelab_split`) scores both kinds on one scale: the labeled items from
their annotators' answers (or their label alone, when imported) and the out-of-fold probabilities of the project's
latest label-quality run (a model that did not see those labels), the new items from the probabilities the cycle's
model gave them when scoring. The budget goes to the lowest scores, re-labels capped at `relabel_max_share` of it.

The chosen items go back to Label Studio through the review path (`reviews.reviews_request`): a task of their own
showing the current label; the answer replaces the label with its history kept (source "review"). Without a finished
label-quality run, or without stored probabilities, the cycle spends its whole budget on new items and its selection
says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from campaigns.models import Cycle, Item, LabelQualityRun, RunState, Score, TaskType
from campaigns.selectors.labels import answers_by_item, open_reviews_by_item
from campaigns.services.embeddings import probabilities_for
from campaigns.services.label_quality import probabilities_unpack
from campaigns.services.reviews import MAX_REVIEWS_PER_REQUEST
from engine.multiannotator import activelab_split, annotator_matrix

log = logging.getLogger(__name__)
# An item labeled without an annotator (an import, a review): its label counts as one answer of this column.
LABEL_ONLY = "(label)"


@dataclass(frozen=True)
class Relabels:
    item_ids: list[int]  # labeled items to label again, the most worth it first
    new: int  # how many of the strategy's picks the rest of the budget keeps
    notes: dict[str, Any]  # what the selection records about the split


def relabel_split(*, cycle: Cycle, new_item_ids: list[int], budget: int, max_share: float) -> Relabels:
    """How many of the budget go to re-labels (and which), given the strategy's picks `new_item_ids` in order."""
    notes: dict[str, Any] = {"relabel": "activelab", "relabel_max_share": max_share, "relabels": 0}

    def all_new(reason: str) -> Relabels:
        notes["relabel_skipped"] = reason
        return Relabels([], min(budget, len(new_item_ids)), notes)

    project = cycle.project
    if project.task_type == TaskType.OBJECT_DETECTION:
        return all_new("re-labeling applies to classification labels, not boxes")
    run = (
        LabelQualityRun.objects.filter(project=project, state=RunState.DONE, probabilities__isnull=False)
        .order_by("-id")
        .first()
    )
    if run is None or run.probabilities is None:
        return all_new("no label-quality run with out-of-fold probabilities yet (one runs after each training)")
    run_ids, run_probs = probabilities_unpack(run.probabilities)
    labels = list(project.labels)
    if run_probs.ndim != 2 or run_probs.shape[1] != len(labels):  # labels appended since that run
        return all_new("the project's labels changed since the last label-quality run")
    in_review = open_reviews_by_item(item_ids=[int(i) for i in run_ids])
    current = dict(Item.objects.filter(pk__in=[int(i) for i in run_ids]).values_list("pk", "label"))
    # The run's items still labeled with a class of the project and not already in review.
    keep = [
        p
        for p, pk in enumerate(run_ids.tolist())
        if isinstance(current.get(pk), str) and current[pk] in labels and pk not in in_review
    ]
    if not keep:
        return all_new("no labeled item left to label again")
    ids = [int(run_ids[p]) for p in keep]
    answers = answers_by_item(ids)
    rows = [
        {a: labels.index(v) for a, v in answers[pk].items() if v in labels} or {LABEL_ONLY: labels.index(current[pk])}
        for pk in ids
    ]
    matrix, _ = annotator_matrix(rows)
    chunks = dict(Score.objects.filter(cycle=cycle, item_id__in=new_item_ids).values_list("item_id", "chunk"))
    scored = [pk for pk in new_item_ids if pk in chunks]
    unlabeled = probabilities_for(cycle_id=cycle.pk, item_ids=scored, chunk_of=chunks) if scored else None
    if unlabeled is None:
        return all_new("this cycle's scores kept no class probabilities to compare new items with")
    # Re-labels go back as review tasks, at most MAX_REVIEWS_PER_REQUEST in one request: a larger share of a large
    # budget would make the whole selection fail.
    share = min(max_share, MAX_REVIEWS_PER_REQUEST / budget) if budget else max_share
    try:
        split = activelab_split(
            matrix, run_probs[keep], np.asarray(unlabeled, dtype=np.float64), budget=budget, max_share=share
        )
    except ValueError as exc:  # cleanlab refusing these inputs: the cycle still selects, all new items
        return all_new(f"ActiveLab could not score these items: {exc}")
    chosen = [ids[int(p)] for p in split.relabel]
    notes.update(relabels=len(chosen), relabel_item_ids=chosen[:1000], relabel_run=run.pk)
    log.info("cycle %s: ActiveLab split %s re-labels, %s new items", cycle.pk, len(chosen), split.new)
    return Relabels(chosen, split.new, notes)
