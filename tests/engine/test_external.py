"""External MLflow pyfunc models: a detector and a classifier logged to a temp sqlite store, loaded, scored."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.pyfunc import PythonModel

from engine.detection import Box
from engine.external import PyFuncClassifier, PyFuncDetector, parse_classifier_output, parse_detections
from engine.scoring import Batch, concat_chunks, iter_batches
from models_registry.registry import ModelRegistry


class BlobDetector(PythonModel):
    """Toy detector on [N, H, W] arrays: one "blob" box per bright row, confidence = the row's mean brightness."""

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would turn them into a schema
        images = np.asarray(model_input)
        out = []
        for img in images:
            boxes = []
            for r, row in enumerate(img):
                if row.mean() > 0.3:
                    conf = float(row.mean())
                    boxes.append(
                        {"label": "blob", "score": conf, "probs": [conf, 1 - conf], "bbox": [0, r, img.shape[1], 1]}
                    )
            out.append(boxes)
        return out


class MCClassifier(PythonModel):
    """Returns 5 "MC samples" of 3-class probabilities from the input's first two features."""

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would turn them into a schema
        x = np.asarray(model_input, dtype=np.float64)
        rng = np.random.default_rng(0)
        logits = np.stack([x[:, :1] * 3, x[:, 1:2] * 3, np.zeros((len(x), 1))], axis=1)  # [N, 3, 1]
        logits = logits + rng.normal(scale=0.5, size=(len(x), 3, 5))
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    # One store for the module: creating an MLflow sqlite schema takes seconds.
    root = tmp_path_factory.mktemp("mlflow")
    return ModelRegistry(f"sqlite:///{root}/mlflow.db", artifact_root=root / "artifacts")


def _log(reg: ModelRegistry, model: PythonModel, experiment: str) -> str:
    exp = reg.ensure_experiment(experiment)
    with reg.active(), mlflow.start_run(experiment_id=exp):
        info = mlflow.pyfunc.log_model(name="model", python_model=model, pip_requirements=["numpy"])
    return info.model_uri


def test_pyfunc_detector_registered_loaded_and_scored(registry: ModelRegistry) -> None:
    uri = _log(registry, BlobDetector(), "external-detector")
    version = registry.register_external(registered_name="proj-7-detector", model_uri=uri, kind="pyfunc-detector")
    assert version.version == 1 and version.champion and version.kind == "pyfunc-detector"
    model = registry.load_pyfunc(version.champion_uri)

    images = np.zeros((5, 4, 6))
    images[0, 1] = 0.95  # one confident box
    images[1, 0], images[1, 2] = 0.9, 0.4  # a confident and a doubtful box
    # images[2] empty: no box at all
    images[3, 3] = 0.6
    images[4, 0] = 0.99
    detector = PyFuncDetector(model, method="min_confidence")
    chunks = list(detector.score_chunks(iter_batches(images, 2, ids=["a", "b", "c", "d", "e"])))
    assert [c.index for c in chunks] == [0, 1, 2]
    unc = np.concatenate([c.uncertainty for c in chunks])
    np.testing.assert_allclose(unc, [0.05, 0.6, 1.0, 0.4, 0.01], atol=1e-6)
    assert chunks[1].labels == [None, "blob"] and chunks[1].ids == ["c", "d"]
    assert chunks[0].boxes[1][1].bbox == (0.0, 2.0, 6.0, 1.0)
    np.testing.assert_allclose(chunks[0].confidence, [0.95, 0.9], atol=1e-6)
    # Resume: chunk 1 skipped without loading; other methods read the per-box probabilities.
    resumed = list(PyFuncDetector(model, method="entropy").score_chunks(iter_batches(images, 2), skip={1}))
    assert [c.index for c in resumed] == [0, 2] and resumed[1].start == 4


def test_pyfunc_classifier_with_mc_samples_goes_through_the_engine(registry: ModelRegistry) -> None:
    uri = _log(registry, MCClassifier(), "external-classifier")
    model = registry.load_pyfunc(uri)
    x = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0], [1.0, 1.0]])
    chunk = concat_chunks(PyFuncClassifier(model).score_chunks([Batch(x)], heuristic="bald"))
    assert list(chunk.labels[:2]) == [0, 1]
    assert chunk.probs.shape == (4, 3) and (chunk.uncertainty > 0).all()


def test_output_parsers() -> None:
    probs = parse_classifier_output(pd.DataFrame({"a": [0.9, 0.2], "b": [0.1, 0.8]}))
    assert probs.shape == (2, 2, 1)
    np.testing.assert_allclose(parse_classifier_output([[0.0, 0.0]], output="logits")[:, :, 0], [[0.5, 0.5]])
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        parse_classifier_output(np.zeros(3))
    frame = pd.DataFrame({"image": [0, 0, 2], "label": ["x", "y", "x"], "confidence": [0.5, 0.7, 0.9]})
    boxes = parse_detections(frame, 3)
    assert [len(b) for b in boxes] == [2, 0, 1] and boxes[2][0] == Box("x", 0.9)
    with pytest.raises(ValueError, match="one box list per image"):
        parse_detections([[]], 2)
    with pytest.raises(ValueError, match="no confidence"):
        parse_detections([[{"label": "x"}]], 1)
