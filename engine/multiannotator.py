"""Several annotators per item: CROWDLAB consensus and ActiveLab re-labeling scores (cleanlab.multiannotator).

Both take the annotators' answers as an items x annotators matrix of class indices (NaN where an annotator did not
label the item) and out-of-fold class probabilities of the labeled items (`engine.label_quality.out_of_fold_probs`),
so the model that weighs the annotators never saw the labels it is weighed against.

- `crowdlab`: a consensus label per item, its quality (how likely that consensus is right, from the annotators'
  agreement, each annotator's estimated quality and the model), and per annotator a quality score.
- `activelab_split`: cleanlab's `get_active_learning_scores` scores labeled items (would one more label help?) and
  unlabeled ones (would a first label help?) on one scale, lower = more worth a label. A cycle's budget goes to
  the lowest scores among both, re-labels capped at a share of the budget.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# A cycle spends at most this share of its budget on re-labels unless told otherwise: chosen once, a priori (half the
# budget still buys new items, so the pool keeps being explored), not tuned on the benchmark.
DEFAULT_MAX_RELABEL_SHARE = 0.5


def annotator_matrix(answers: Sequence[dict[str, int]]) -> tuple[NDArray[np.float64], list[str]]:
    """Per item {annotator: class index} -> (items x annotators matrix, NaN where missing; the annotators' names
    in column order, sorted). An item's answer list may be empty only if it is dropped by the caller."""
    names = sorted({name for row in answers for name in row})
    column = {name: j for j, name in enumerate(names)}
    matrix = np.full((len(answers), len(names)), np.nan)
    for i, row in enumerate(answers):
        for name, label in row.items():
            matrix[i, column[name]] = label
    return matrix, names


@dataclass(frozen=True)
class Crowdlab:
    consensus: NDArray[np.int64]  # per item: CROWDLAB's consensus class
    quality: NDArray[np.float64]  # per item, in [0, 1]: how likely the consensus is right
    agreement: NDArray[np.float64]  # per item: the annotators' agreement with the consensus
    annotations: NDArray[np.int64]  # per item: how many annotators labeled it
    annotators: list[dict[str, object]]  # per annotator: name, quality, agreement with consensus, labels


def crowdlab(matrix: NDArray[np.float64], pred_probs: NDArray[np.float64], names: Sequence[str]) -> Crowdlab:
    """CROWDLAB (cleanlab's get_label_quality_multiannotator) over every labeled item, single-annotator ones
    included (they still inform each annotator's quality). Needs at least two annotator columns; raises
    ValueError when cleanlab refuses the data (e.g. no item labeled by two annotators)."""
    from cleanlab.multiannotator import get_label_quality_multiannotator

    if matrix.shape[1] < 2:
        raise ValueError("CROWDLAB needs answers from at least two annotators")
    with warnings.catch_warnings():
        # cleanlab warns about annotators with few labels or no overlap with others: expected in early cycles.
        warnings.simplefilter("ignore")
        out = get_label_quality_multiannotator(matrix, _normalised(pred_probs), verbose=False)
    quality = out["label_quality"]
    stats = out["annotator_stats"]
    annotators = [
        {
            "annotator": str(names[int(j)]),
            "quality": round(float(row["annotator_quality"]), 4),
            "agreement_with_consensus": round(float(row["agreement_with_consensus"]), 4),
            "labels": int(row["num_examples_labeled"]),
        }
        for j, row in stats.iterrows()
    ]
    return Crowdlab(
        consensus=quality["consensus_label"].to_numpy(dtype=np.int64),
        quality=quality["consensus_quality_score"].to_numpy(dtype=np.float64),
        agreement=quality["annotator_agreement"].to_numpy(dtype=np.float64),
        annotations=quality["num_annotations"].to_numpy(dtype=np.int64),
        annotators=annotators,
    )


@dataclass(frozen=True)
class RelabelSplit:
    relabel: NDArray[np.int64]  # positions in the labeled items to label again, the most worth it first
    new: int  # how many new (unlabeled) items the rest of the budget buys
    labeled_scores: NDArray[np.float64]
    unlabeled_scores: NDArray[np.float64]


def activelab_split(
    matrix: NDArray[np.float64],
    pred_probs: NDArray[np.float64],
    pred_probs_unlabeled: NDArray[np.float64],
    *,
    budget: int,
    max_share: float,
) -> RelabelSplit:
    """Split `budget` between re-labels and new items by ActiveLab scores: the budget goes to the lowest scores
    among the labeled items and the unlabeled candidates (the items the strategy would pick, in its order), and
    re-labels are capped at floor(max_share x budget)."""
    from cleanlab.multiannotator import get_active_learning_scores

    cap = min(len(matrix), math.floor(max_share * budget))
    empty = np.zeros(0, dtype=np.float64)
    if cap <= 0 or len(matrix) == 0:
        return RelabelSplit(np.zeros(0, dtype=np.int64), budget, empty, empty)
    unlabeled = _normalised(pred_probs_unlabeled) if len(pred_probs_unlabeled) else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores, scores_unlabeled = get_active_learning_scores(matrix, _normalised(pred_probs), unlabeled)
    scores = np.asarray(scores, dtype=np.float64)
    scores_unlabeled = np.asarray(scores_unlabeled, dtype=np.float64) if unlabeled is not None else empty
    combined = np.concatenate([scores, scores_unlabeled])
    # Stable: on a tie the labeled item (listed first) wins; the lowest `budget` scores of both kinds.
    lowest = np.argsort(combined, kind="stable")[:budget]
    relabel = lowest[lowest < len(scores)][:cap].astype(np.int64)
    return RelabelSplit(relabel, budget - len(relabel), scores, scores_unlabeled)


def _normalised(probs: NDArray[np.float64]) -> NDArray[np.float64]:
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)
    return p / p.sum(axis=1, keepdims=True)
