"""Using a registered model version: load it from MLflow (any worker can load what another trained) and score
inputs with it — MC dropout for alweb's own models, the pyfunc's own output for external ones. Shared by a cycle's
scoring chunks, the prediction API and the Label Studio ML backend."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from campaigns.services.training import mlflow_errors, registry
from engine.detection import box_fractions
from engine.detector import CenterDetector
from engine.detector_training import score_detector
from engine.external import PyFuncClassifier, PyFuncDetector
from engine.scoring import Batch, ScoreChunk, concat_chunks, score_chunks, score_model
from models_registry.models import ModelVersion


def model_load(*, model_version: ModelVersion) -> Any:
    """The model behind a version (from MLflow, so any worker can load what another trained): a torch module, or
    an external pyfunc wrapped for the engine."""
    with mlflow_errors():
        if model_version.kind != "external":
            return registry().load_torch(model_version.model_uri)
        pyfunc = registry().load_pyfunc(model_version.model_uri)
    if model_version.architecture == "pyfunc-detector":
        return PyFuncDetector(pyfunc)
    return PyFuncClassifier(pyfunc)


def model_score(
    *,
    model: Any,
    inputs: np.ndarray,
    ids: list[int],
    iterations: int,
    heuristic: str,
    seed: int,
    labels: list[str] | None = None,
) -> ScoreChunk:
    """Scores for one chunk of inputs: MC dropout with penultimate embeddings (diversity-aware selection) for alweb's
    models; the pyfunc's probabilities or boxes for external ones."""
    if isinstance(model, PyFuncDetector):
        chunk = next(iter(model.score_chunks([Batch(inputs, ids=ids)])))
        return _detection_as_chunk(chunk, labels or [], size=(inputs.shape[-1], inputs.shape[-2]))
    if isinstance(model, CenterDetector):
        if not labels:
            raise ValueError("a detector's boxes need the project's labels")
        return score_detector(
            model, torch.as_tensor(inputs), ids, labels, iterations=iterations, heuristic=heuristic, seed=seed
        )
    if isinstance(model, PyFuncClassifier):
        # One probability vector per item: BALD would be 0 everywhere, so a single-sample heuristic stands in.
        single = heuristic if heuristic in ("entropy", "margin", "least_confidence", "random") else "entropy"
        return concat_chunks(score_chunks(model, [Batch(inputs, ids=ids)], heuristic=single, seed=seed))
    # A fine-tuned encoder replicates whole sequences T times: smaller batches bound that memory.
    size = int(getattr(model, "score_batch_size", 0)) or len(ids) or 1
    batches = [
        Batch(lambda lo=lo: torch.as_tensor(inputs[lo : lo + size]), ids=ids[lo : lo + size])
        for lo in range(0, len(ids), size)
    ]
    return concat_chunks(
        score_model(model, batches, iterations=iterations, heuristic=heuristic, seed=seed, embeddings=True)
    )


def _detection_as_chunk(chunk: Any, labels: list[str], *, size: tuple[int, int]) -> ScoreChunk:
    """A detector's per-image result in the engine's shape: label = the most confident box's, if a project label;
    its boxes read in pixels of the `size` (width, height) input it was given, kept as fractions of the image."""
    index = {label: i for i, label in enumerate(labels)}
    predicted = np.asarray([index.get(str(lbl), -1) if lbl is not None else -1 for lbl in chunk.labels])
    n = len(chunk.ids)
    return ScoreChunk(
        index=chunk.index,
        start=chunk.start,
        ids=list(chunk.ids),
        heuristic=f"detection:{chunk.method}",
        uncertainty=np.asarray(chunk.uncertainty, dtype=np.float64),
        probs=np.zeros((n, max(1, len(labels))), dtype=np.float32),
        labels=predicted.astype(np.int64),
        confidence=np.asarray(chunk.confidence, dtype=np.float32),
        finite=np.ones(n, dtype=bool),
        boxes=[box_fractions(boxes, width=size[0], height=size[1]) for boxes in chunk.boxes],
    )
