"""CROWDLAB consensus and the ActiveLab budget split (engine.multiannotator) on small synthetic answers."""

from __future__ import annotations

import numpy as np

from engine.multiannotator import activelab_split, annotator_matrix, crowdlab


def answers_and_probs(n: int = 90, k: int = 3) -> tuple[list[dict[str, int]], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, k, n)
    rows = []
    for i, t in enumerate(truth):
        row = {"good": int(t)}
        if i % 2 == 0:
            row["ok"] = int(t) if rng.random() > 0.15 else int((t + 1) % k)
        if i % 3 == 0:
            row["bad"] = int(t) if rng.random() > 0.6 else int((t + 1) % k)
        rows.append(row)
    probs = np.full((n, k), 0.15)
    probs[np.arange(n), truth] = 0.7
    return rows, probs, truth


def test_crowdlab_trusts_the_careful_annotator_and_recovers_the_truth() -> None:
    rows, probs, truth = answers_and_probs()
    matrix, names = annotator_matrix(rows)
    assert names == ["bad", "good", "ok"] and np.isnan(matrix[1, 0]) and matrix[0, 1] == truth[0]
    result = crowdlab(matrix, probs, names)
    quality = {a["annotator"]: a["quality"] for a in result.annotators}
    assert quality["bad"] < quality["ok"] < quality["good"], quality
    assert (result.consensus == truth).all()
    assert list(result.annotations[:6]) == [3, 1, 2, 2, 2, 1]
    assert ((result.quality >= 0) & (result.quality <= 1)).all()


def test_activelab_split_relabels_doubtful_labels_up_to_the_cap() -> None:
    rows, probs, truth = answers_and_probs()
    single = np.asarray([[r["good"]] for r in rows], dtype=np.float64)
    single[:5, 0] = (truth[:5] + 1) % 3  # five labels the model disagrees with
    uncertain_new = np.full((20, 3), 1 / 3)  # new items the model knows nothing about
    split = activelab_split(single, probs, uncertain_new, budget=20, max_share=0.5)
    # The doubtful labels score below the uncertain new items, the agreed ones above: 5 re-labels, 15 new.
    assert sorted(split.relabel.tolist()) == [0, 1, 2, 3, 4] and split.new == 15
    assert split.labeled_scores[:5].max() < split.unlabeled_scores.min() < split.labeled_scores[5:].min()
    # New items the model is sure about are worth less than any label again, but re-labels stop at the cap, the
    # most doubtful first.
    confident_new = np.tile([0.98, 0.01, 0.01], (20, 1))
    capped = activelab_split(single, probs, confident_new, budget=20, max_share=0.5)
    assert len(capped.relabel) == 10 and sorted(capped.relabel[:5].tolist()) == [0, 1, 2, 3, 4]
    assert capped.new == 10
    none = activelab_split(single, probs, confident_new, budget=20, max_share=0.0)
    assert len(none.relabel) == 0 and none.new == 20
